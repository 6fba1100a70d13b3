"""Pictures of a finished run and of a sweep, drawn only from files the run or sweep already
wrote, so they can be drawn again at any time:

    python -m lit_nlp.plots outputs/runs/<date>_<time>      # learning_curves.png, confusion_matrix.png
    python -m lit_nlp.plots outputs/multirun/<date>_<time>  # summary.csv/.md, sweep_objective.png, each job's PNGs

A run dir gets `learning_curves.png` (from its TensorBoard events, or `csv/metrics.csv` with
logger=csv) and `confusion_matrix.png` (from `confusion_matrix.json`, classification only).
A sweep dir gets `sweep_objective.png` from `summary.csv`. The command line is plots/__main__.py
(it rebuilds a sweep's summary through lit_nlp.sweeps, which draws through this module)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from lit_nlp.errors import LitNlpError
from lit_nlp.run_layout import (
    CONFUSION_JSON,
    CONFUSION_PNG,
    CSV_DIR,
    LEARNING_CURVES,
    METRICS_FILE,
    SAVED_CONFIG,
    TENSORBOARD_DIR,
)

log = logging.getLogger(__name__)

SWEEP_PNG = "sweep_objective.png"
SUMMARY_CSV = "summary.csv"
# columns of the sweep's summary.csv that are not swept hyperparameters (lit_nlp.sweeps.summary writes them)
SUMMARY_FIXED = ("job", "status", "objective", "error", "best")


def _figure(ncols: int, width: float = 5.0, height: float = 3.8):
    # a bare Figure draws with Agg and never touches pyplot's global state or a display
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


# ----------------------------------------------------------------- a run
def is_run_dir(path: Path) -> bool:
    return (Path(path) / METRICS_FILE).is_file() or (Path(path) / SAVED_CONFIG).is_file()


def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every logged scalar of a run as `{tag: [(step, value), ...]}` sorted by step, from the
    TensorBoard events under `<run>/tensorboard/` (else the CSV logger's `csv/metrics.csv`).
    A resumed run logs some steps twice; the later value wins."""
    run_dir = Path(run_dir)
    by_tag: dict[str, dict[int, float]] = {}
    tb_dir = run_dir / TENSORBOARD_DIR
    csv_file = run_dir / CSV_DIR / "metrics.csv"
    if tb_dir.is_dir() and any(tb_dir.glob("events.out.tfevents.*")):
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})  # 0: keep every point
        quiet = logging.getLogger("tensorboard")  # it logs every event file it opens, at INFO
        level = quiet.level
        quiet.setLevel(logging.WARNING)
        try:
            events.Reload()
        finally:
            quiet.setLevel(level)
        for tag in events.Tags()["scalars"]:
            by_tag[tag] = {e.step: e.value for e in events.Scalars(tag)}
    elif csv_file.is_file():
        import pandas as pd

        frame = pd.read_csv(csv_file)
        for tag in frame.columns.drop("step"):
            rows = frame[["step", tag]].dropna()
            by_tag[tag] = dict(zip(rows["step"].astype(int), rows[tag].astype(float)))
    return {tag: sorted(points.items()) for tag, points in by_tag.items()}


def run_monitor(run_dir: Path) -> str | None:
    """The run's monitored metric: `monitor` of its config.yaml, or, where that is null (the task
    picked it at run time), the one `<monitor>_best` key of metrics.json."""
    run_dir = Path(run_dir)
    if (run_dir / SAVED_CONFIG).is_file():
        from omegaconf import OmegaConf

        monitor = OmegaConf.load(run_dir / SAVED_CONFIG).get("monitor")
        if isinstance(monitor, str) and monitor:
            return monitor
    if (run_dir / METRICS_FILE).is_file():
        best = [k[:-len("_best")] for k in json.loads((run_dir / METRICS_FILE).read_text()) if k.endswith("_best")]
        if len(best) == 1:
            return best[0]
    return None


def _per_epoch(points: list[tuple[int, float]], epoch_at: dict[int, float]) -> tuple[list[float], str]:
    """x values for validation points: the epoch number (1 = after the first epoch) when there is
    one point per epoch, else the step (validation inside epochs, or no `epoch` scalar)."""
    epochs = [epoch_at.get(step) for step, _ in points]
    if None not in epochs and len(set(epochs)) == len(epochs):
        return [e + 1 for e in epochs], "epoch"
    return [step for step, _ in points], "step"


def plot_learning_curves(run_dir: Path, monitor: str | None = None) -> Path | None:
    """`learning_curves.png`: train loss per step with validation loss, and the monitored
    metric per epoch (best marked). None when the run logged no losses (fast_dev_run, no logger)."""
    run_dir = Path(run_dir)
    scalars = read_scalars(run_dir)
    train_loss = scalars.get("train/loss_step") or scalars.get("train/loss")
    val_loss = scalars.get("val/loss")
    if not train_loss and not val_loss:
        if not (run_dir / TENSORBOARD_DIR).is_dir() and not (run_dir / CSV_DIR).is_dir():
            log.info("no learning curves for %s: they are drawn from the tensorboard or csv logger's files; "
                     "add one, e.g. 'logger=[wandb,tensorboard]'", run_dir)
        else:
            log.info("no learning curves for %s: it logged no train/val loss", run_dir)
        return None
    monitor = monitor or run_monitor(run_dir)
    metric = scalars.get(monitor) if monitor and monitor not in ("val/loss", "train/loss") else None
    epoch_at = dict(scalars.get("epoch", []))

    fig, axes = _figure(2 if metric else 1)
    ax = axes[0]
    if train_loss:
        ax.plot(*zip(*train_loss), lw=1, alpha=0.8, label="train/loss (per step)")
    if val_loss:
        ax.plot(*zip(*val_loss), "o-", label="val/loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    if metric:
        ax = axes[1]
        x, xlabel = _per_epoch(metric, epoch_at)
        y = [v for _, v in metric]
        ax.plot(x, y, "o-", color="tab:green", label=monitor)
        mode = _monitor_mode(run_dir)
        best = (max if mode == "max" else min)(range(len(y)), key=y.__getitem__)
        ax.plot([x[best]], [y[best]], "*", ms=16, color="tab:red", label=f"best {y[best]:.4f}")
        ax.set_xlabel(xlabel)
        ax.set_title(f"{monitor} (validation)")
        ax.grid(alpha=0.3)
        ax.legend()
        if xlabel == "epoch":
            ax.set_xticks(x)
    fig.suptitle(run_dir.name)
    path = run_dir / LEARNING_CURVES
    fig.savefig(path, dpi=110)
    return path


def _monitor_mode(run_dir: Path) -> str:
    if (Path(run_dir) / SAVED_CONFIG).is_file():
        from omegaconf import OmegaConf

        return OmegaConf.load(Path(run_dir) / SAVED_CONFIG).get("monitor_mode") or "max"
    return "max"


def confusion_matrix_figure(matrix, label_names: list[str], title: str):
    """Counts (rows: true label, columns: predicted; a CPU tensor or nested lists) as a heat map
    with the numbers written in; the callback logs it to TensorBoard and saves it on test."""
    import numpy as np

    matrix = np.asarray(matrix)
    n = len(label_names)
    size = 2.5 + 0.5 * n
    fig, (ax,) = _figure(1, width=size, height=size)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), label_names, rotation=45, ha="right")
    ax.set_yticks(range(n), label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    top = matrix.max() or 1
    for i in range(n):
        for j in range(n):
            value = int(matrix[i, j])
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > top / 2 else "black")
    return fig


def plot_confusion_matrix(run_dir: Path) -> Path | None:
    """`confusion_matrix.png` again from the test counts in `confusion_matrix.json`
    (classification runs write it on test; seq2seq runs have none: None)."""
    source = Path(run_dir) / CONFUSION_JSON
    if not source.is_file():
        return None
    counts = json.loads(source.read_text())
    fig = confusion_matrix_figure(counts["matrix"], counts["labels"],
                                  f"{counts.get('stage', 'test')} (step {counts.get('step', '?')})")
    path = Path(run_dir) / CONFUSION_PNG
    fig.savefig(path, dpi=120)
    return path


def write_run_plots(run_dir: Path, monitor: str | None = None) -> list[Path]:
    """Every picture of one run that its files allow; returns the PNGs written."""
    return [p for p in (plot_learning_curves(run_dir, monitor), plot_confusion_matrix(run_dir)) if p]


# ----------------------------------------------------------------- a sweep
def job_dirs(sweep_dir: Path) -> list[Path]:
    """The sweep's job dirs: sub-dirs that hold a run, in job order (`<num>_<overrides>`, or a
    bare number), so that 10_... comes after 9_..."""
    subdirs = [p for p in Path(sweep_dir).iterdir() if p.is_dir() and is_run_dir(p)]

    def job_number(path: Path) -> tuple:
        head = path.name.split("_", 1)[0]
        return (not head.isdigit(), int(head) if head.isdigit() else 0, path.name)

    return sorted(subdirs, key=job_number)


def swept_keys(columns) -> list[str]:
    """The summary columns that are swept override keys (`model.optimizer.lr`, `data.batch_size`,
    `model`): every metric name here has a `/` (`test/acc`), except the run counters."""
    return [c for c in columns if c not in SUMMARY_FIXED and "/" not in c and c not in ("epochs", "global_step")]


def _is_true(value) -> bool:
    return str(value).strip().lower() in ("true", "1", "1.0", "yes", "*", "best")


def _log_scale(values: list[float]) -> bool:
    """Log axis when positive values span two decades or more (lr 1e-5..1e-3, not batch 16..64)."""
    return all(v > 0 for v in values) and max(values) / min(values) >= 100


def plot_sweep(sweep_dir: Path) -> Path:
    """`sweep_objective.png`: the objective against each swept key, one panel per key; failed
    jobs are left out and the best job is a red star."""
    import pandas as pd

    sweep_dir = Path(sweep_dir)
    summary = pd.read_csv(sweep_dir / SUMMARY_CSV)
    if "objective" not in summary.columns:
        raise LitNlpError(f"{sweep_dir / SUMMARY_CSV} has no objective column; rebuild it with "
                          "lit_nlp.sweeps.summary.write_summary")
    ok = summary[summary["status"].astype(str) == "ok"] if "status" in summary.columns else summary
    ok = ok[pd.to_numeric(ok["objective"], errors="coerce").notna()]
    keys = swept_keys(summary.columns) or ["job"]
    # the objective is the jobs' monitored metric: name it when a job dir tells which
    monitor = next((m for m in map(run_monitor, job_dirs(sweep_dir)) if m), None)
    ylabel = f"objective ({monitor})" if monitor else "objective"
    fig, axes = _figure(len(keys), width=4.2)
    for ax, key in zip(axes, keys):
        objective = pd.to_numeric(ok["objective"]).tolist()
        numeric = pd.to_numeric(ok[key], errors="coerce")
        if len(ok) and numeric.notna().all():
            x = numeric.tolist()
            if _log_scale(x):
                ax.set_xscale("log")
            values = sorted(set(x))
            if len(values) <= 8:  # a grid's few values: ticks at them (matplotlib's crowd at 3e-4..1e-3)
                from matplotlib.ticker import NullFormatter

                ax.set_xticks(values, [f"{v:g}" for v in values], rotation=30 if len(values) > 4 else 0)
                ax.xaxis.set_minor_formatter(NullFormatter())
        else:  # strings (model=bert_tiny, ...): one slot per value, in order of first appearance
            categories = list(dict.fromkeys(ok[key].astype(str)))
            x = [categories.index(v) for v in ok[key].astype(str)]
            ax.set_xticks(range(len(categories)), categories, rotation=30, ha="right")
            ax.set_xlim(-0.5, len(categories) - 0.5)
        ax.scatter(x, objective, s=36, alpha=0.8)
        best = [i for i, b in enumerate(ok["best"]) if _is_true(b)] if "best" in ok.columns else []
        if not best and objective:  # no best column: the highest objective (monitor_mode max)
            best = [max(range(len(objective)), key=objective.__getitem__)]
        for i in best:
            ax.plot([x[i]], [objective[i]], "*", ms=16, color="tab:red",
                    label=f"best {objective[i]:.4f}" if i == best[0] else None)
        ax.set_xlabel(key)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if best:
            ax.legend()
    failed = len(summary) - len(ok)
    fig.suptitle(f"{sweep_dir.name}: {len(ok)} jobs" + (f" ({failed} failed, not shown)" if failed else ""))
    path = sweep_dir / SWEEP_PNG
    fig.savefig(path, dpi=110)
    return path
