"""The panel that ends a run: where the run dir, best checkpoint, test metrics, export and
plots are, and the commands to look at them; on the terminal and, as plain text, in train.log."""

from __future__ import annotations

import logging
from pathlib import Path

from lit_nlp.run_layout import CONFUSION_PNG, LEARNING_CURVES, export_dir, last_checkpoint

log = logging.getLogger(__name__)

PLOTS = (LEARNING_CURVES, CONFUSION_PNG)


def file_size(path) -> str:
    """1.3 MB, 840 kB: what a checkpoint weighs (a LoRA run's hold what trains, not the base)."""
    size = Path(path).stat().st_size
    return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.0f} kB"


def summary_rows(run_dir: Path, metrics: dict, monitor: str, best_path: str | None,
                 viewers: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """What a user looks for when a run ends, as (name, value) rows; `viewers`: the command that
    shows each logger's record of the run (lit_nlp.tracking.viewer_rows)."""
    run_dir = Path(run_dir)

    def short(path) -> str:  # paths inside the run dir are shown relative to it
        path = Path(path)
        return str(path.relative_to(run_dir)) if path.is_relative_to(run_dir) else str(path)

    rows = [("run dir", str(run_dir))]
    best = metrics.get(f"{monitor}_best")
    if best is not None:
        rows.append(("best", f"{monitor} = {best:.4f}"))
        checkpoint = short(best_path) if best_path else "none saved"
        if best_path and Path(best_path).is_file():
            checkpoint += f" ({file_size(best_path)})"
        rows.append(("checkpoint", checkpoint))
    last = last_checkpoint(run_dir)
    if last.is_file():
        rows.append(("last.ckpt", f"{short(last)} ({file_size(last)})"))
    tests = {k: v for k, v in metrics.items() if k.startswith("test/") and "/f1/" not in k and v is not None}
    if tests:
        rows.append(("test", "  ".join(f"{k[5:]}={v:.4f}" for k, v in sorted(tests.items()))))
    if export_dir(run_dir).is_dir():
        rows.append(("export", str(export_dir(run_dir))))
    plots = [name for name in PLOTS if (run_dir / name).is_file()]
    if plots:
        rows.append(("plots", "  ".join(plots)))
    rows.extend(viewers or [])
    rows.append(("predict", f"python predict.py model_path={run_dir} text=\"...\""))
    return rows


def print_summary(run_dir: Path, metrics: dict, monitor: str, best_path: str | None,
                  viewers: list[tuple[str, str]] | None = None) -> None:
    """One screen at the end of a run: a rich panel on the terminal and the same rows as plain
    text in the log file (train.log)."""
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table

    rows = summary_rows(run_dir, metrics, monitor, best_path, viewers)
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in rows:
        table.add_row(name, value)
    console = Console()
    if not console.is_terminal:  # a log has no width limit: keep each command on one line to copy
        console = Console(width=max(console.width, 12 + 2 + max(len(v) for _, v in rows) + 4))
    console.print(Panel(table, title="run finished", title_align="left", border_style="green", expand=False))
    # the file handlers only: the console handler would print the panel's content a second time
    text = "run finished\n  " + "\n  ".join(f"{name:<12} {value}" for name, value in rows)
    record = log.makeRecord(log.name, logging.INFO, __file__, 0, text, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and record.levelno >= handler.level:
            handler.handle(record)
