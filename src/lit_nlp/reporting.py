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


def print_summary(run_dir: Path, metrics: dict, monitor: str, best_path: str | None) -> None:
    lines = [f"run dir      {run_dir}"]
    best = metrics.get(f"{monitor}_best")
    if best is not None:
        lines.append(f"best         {monitor} = {best:.4f}  ({best_path or 'no checkpoint'})")
    tests = {k: v for k, v in metrics.items() if k.startswith("test/") and "/f1/" not in k and v is not None}
    if tests:
        lines.append("test         " + "  ".join(f"{k[5:]}={v:.4f}" for k, v in sorted(tests.items())))
    if (Path(run_dir) / "export").is_dir():
        lines.append(f"export       {Path(run_dir) / 'export'}")
    lines.append(f"tensorboard  tensorboard --logdir {run_dir}")
    lines.append(f"predict      python predict.py model_path={run_dir} text=\"...\"")
    log.info("run finished\n  %s", "\n  ".join(lines))
