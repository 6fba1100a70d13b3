"""The end of a run: metrics.json, the TensorBoard hparams tab with the real final metrics,
and a short summary of where everything is."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"


def write_metrics(metrics: dict, run_dir: Path) -> Path:
    path = Path(run_dir) / METRICS_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True))
    tmp.replace(path)
    return path


def flatten(node: dict, prefix: str = "") -> dict:
    """Nested dicts as flat `a.b.c` keys (lists stay values)."""
    out = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def flat_hparams(cfg: DictConfig) -> dict:
    """The resolved config as flat `a.b.c` keys with scalar values (lists become text)."""
    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("paths", None)  # machine-specific, not a hyperparameter
    return {k: "null" if v is None else v if isinstance(v, (int, float, str, bool)) else str(v)
            for k, v in flatten(container).items()}


def log_final_hparams(loggers, cfg: DictConfig, metrics: dict, step: int) -> None:
    """Write the hparams tab once, at the end, with the final metrics. The tab reads metric
    values from scalars of the same tag, so every final metric is also written as a scalar."""
    from torch.utils.tensorboard.summary import hparams

    numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and v is not None}
    for logger in loggers:
        if not isinstance(logger, TensorBoardLogger):
            continue
        writer = logger.experiment
        for key, value in numeric.items():
            writer.add_scalar(key, value, step)
        experiment, start, end = hparams(flat_hparams(cfg), numeric)
        for summary in (experiment, start, end):
            writer.file_writer.add_summary(summary)
        writer.flush()


PLOTS = ("learning_curves.png", "confusion_matrix.png")


def summary_rows(run_dir: Path, metrics: dict, monitor: str, best_path: str | None) -> list[tuple[str, str]]:
    """What a user looks for when a run ends, as (name, value) rows."""
    run_dir = Path(run_dir)

    def short(path) -> str:  # paths inside the run dir are shown relative to it
        path = Path(path)
        return str(path.relative_to(run_dir)) if path.is_relative_to(run_dir) else str(path)

    rows = [("run dir", str(run_dir))]
    best = metrics.get(f"{monitor}_best")
    if best is not None:
        rows.append(("best", f"{monitor} = {best:.4f}"))
        rows.append(("checkpoint", short(best_path) if best_path else "none saved"))
    tests = {k: v for k, v in metrics.items() if k.startswith("test/") and "/f1/" not in k and v is not None}
    if tests:
        rows.append(("test", "  ".join(f"{k[5:]}={v:.4f}" for k, v in sorted(tests.items()))))
    if (run_dir / "export").is_dir():
        rows.append(("export", str(run_dir / "export")))
    plots = [name for name in PLOTS if (run_dir / name).is_file()]
    if plots:
        rows.append(("plots", "  ".join(plots)))
    rows.append(("tensorboard", f"tensorboard --logdir {run_dir}"))
    rows.append(("predict", f"python predict.py model_path={run_dir} text=\"...\""))
    return rows


def print_summary(run_dir: Path, metrics: dict, monitor: str, best_path: str | None) -> None:
    """One screen at the end of a run: a rich panel on the terminal and the same rows as plain
    text in the log file (train.log)."""
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table

    rows = summary_rows(run_dir, metrics, monitor, best_path)
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
