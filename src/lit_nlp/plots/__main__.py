"""python -m lit_nlp.plots <run dir | sweep dir>: draw a finished run's PNGs again, or rebuild a
sweep's summary and draw its objective plot and every job's PNGs."""

from __future__ import annotations

import sys
from pathlib import Path

from lit_nlp.errors import LitNlpError, exit_on_user_error
from lit_nlp.plots import SUMMARY_CSV, job_dirs, plot_sweep, write_run_plots
from lit_nlp.run_layout import METRICS_FILE, SAVED_CONFIG
from lit_nlp.sweeps import summary


def write_sweep_plots(sweep_dir: Path) -> list[Path]:
    """Rebuild the summary from the job dirs that Hydra wrote (with their .hydra/; a sweep copied
    without them keeps the summary.csv it has), draw the sweep's objective plot and every
    finished job's own PNGs."""
    sweep_dir = Path(sweep_dir)
    written = []
    if any((p / ".hydra").is_dir() for p in sweep_dir.iterdir()):
        written.append(Path(summary.write_summary(sweep_dir)))
    elif not (sweep_dir / SUMMARY_CSV).is_file():
        raise LitNlpError(f"{sweep_dir} has no {SUMMARY_CSV} and no job dirs written by Hydra to build it from")
    written.append(plot_sweep(sweep_dir))
    for job in job_dirs(sweep_dir):
        if (job / METRICS_FILE).is_file():  # failed jobs have no metrics and often no curves
            written.extend(write_run_plots(job))
    return written


# ----------------------------------------------------------------- CLI
def draw(path: str | Path) -> list[Path]:
    """Draw what `path` allows: a run dir's PNGs, or a sweep dir's summary and PNGs."""
    path = Path(path)
    if not path.exists():
        raise LitNlpError(f"{path} does not exist; pass a run dir (outputs/runs/<time>) or a sweep dir")
    if not path.is_dir():
        raise LitNlpError(f"{path} is a file; pass a run dir (outputs/runs/<time>) or a sweep dir")
    if (path / METRICS_FILE).is_file():
        return write_run_plots(path)
    if (path / SUMMARY_CSV).is_file() or job_dirs(path):
        return write_sweep_plots(path)
    if (path / SAVED_CONFIG).is_file():
        raise LitNlpError(f"{path} holds an unfinished run (no metrics.json); finish it with "
                          f"python train.py resume={path}")
    raise LitNlpError(f"{path} is not a run dir (no metrics.json) or a sweep dir (no job dirs)")


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print("usage: python -m lit_nlp.plots <run dir | sweep dir>", file=sys.stderr)
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    for written in draw(argv[0]):
        print(written)


if __name__ == "__main__":
    main()
