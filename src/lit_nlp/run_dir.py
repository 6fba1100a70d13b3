"""A run dir and what lives in it: claiming it for a fresh run (never overwriting one), the
rules of `resume=<run dir>`, the saved `config.yaml` and `metrics.json`. train() and the sweep
jobs (lit_nlp.sweeps) both read these, so they live in neither."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lit_nlp.distributed import announce_run_dir, announce_sweep_job, launch_rank
from lit_nlp.errors import LitNlpError
from lit_nlp.run_layout import METRICS_FILE, SAVED_CONFIG, last_checkpoint

log = logging.getLogger(__name__)


# What `resume=<run dir>` may change: how long and where to train, never what is trained.
RESUME_OVERRIDABLE = (
    "resume", "resume_sweep", "trainer.max_epochs", "trainer.max_steps", "trainer.max_time", "trainer.accelerator",
    "trainer.devices", "trainer.num_nodes", "trainer.strategy", "data.num_workers", "data.pin_memory",
    "paths.cache_dir", "paths.log_dir", "callbacks.model_checkpoint.every_n_train_steps",
    "trainer.use_distributed_sampler", "model.gradient_checkpointing",  # memory and sharding, not results
    # speed: the same model to float rounding (tests/test_fast_path.py)
    "model.compile", "data.static_shapes", "data.length_buckets",
    # display and logging only
    "trainer.enable_progress_bar", "trainer.enable_model_summary", "trainer.log_every_n_steps", "logger", "hparams",
)


def resume_argv(argv: list[str]) -> list[str]:
    """Turn `train.py resume=<run dir> [overrides]` into a Hydra command line that composes the
    run's saved config (not conf/) and writes into the same run dir."""
    resume = [a for a in argv[1:] if a.startswith("resume=")]
    if not resume or resume[-1] in ("resume=", "resume=null"):
        return argv
    run_dir = Path(resume[-1].split("=", 1)[1]).expanduser().resolve()
    if not (run_dir / SAVED_CONFIG).is_file():
        raise LitNlpError(f"resume={run_dir}: no {SAVED_CONFIG} there; pass a run dir written by train.py")
    rest = [a for a in argv[1:] if not a.startswith("resume=")]
    return [argv[0], f"--config-path={run_dir}", f"--config-name={Path(SAVED_CONFIG).stem}",
            f"hydra.run.dir={run_dir}", "hydra.output_subdir=null", f"resume={run_dir}", *rest]


def _leaves(cfg: DictConfig) -> dict[str, object]:
    return flatten(OmegaConf.to_container(cfg, resolve=False))


def _prepare_run_dir(cfg: DictConfig, run_dir: Path) -> Path | None:
    """Fresh run: refuse a dir that already holds a run (nothing is overwritten silently).
    Resume: the saved config must match but for RESUME_OVERRIDABLE; returns last.ckpt."""
    last = last_checkpoint(run_dir)
    if not cfg.get("resume"):
        if last.exists() or (run_dir / METRICS_FILE).exists():
            raise LitNlpError(f"{run_dir} already holds a run; continue it with resume={run_dir} "
                              "or pick another hydra.run.dir")
        if (run_dir / SAVED_CONFIG).exists():  # resume would refuse it: say what does work
            raise LitNlpError(f"{run_dir} already holds a run that stopped before its first checkpoint, so there is "
                              f"nothing to resume; delete it (rm -r {run_dir}) or pick another hydra.run.dir")
        return None
    if Path(cfg.resume).resolve() != run_dir.resolve():
        raise LitNlpError(f"resume={cfg.resume} but the run dir is {run_dir}; they must be the same")
    saved = _leaves(OmegaConf.load(run_dir / SAVED_CONFIG))
    current = _leaves(cfg)
    changed = sorted(k for k in set(saved) | set(current)
                     if saved.get(k) != current.get(k) and not k.startswith(RESUME_OVERRIDABLE))
    if changed:
        raise LitNlpError(f"resume cannot change {', '.join(changed)}; only "
                          f"{', '.join(RESUME_OVERRIDABLE[1:])} may differ from the saved run")
    if not last.is_file():
        raise LitNlpError(f"nothing to resume in {run_dir}: no checkpoints/last.ckpt (the run stopped "
                          f"before its first checkpoint); delete it (rm -r {run_dir}) and start again without resume, "
                          "or start again in another hydra.run.dir")
    log.info("resuming %s from %s", run_dir, last)
    return last


def claim_run_dir(cfg: DictConfig, run_dir: Path) -> Path | None:
    """Rank 0 checks the run dir, saves config.yaml and tells torchrun's other ranks where the
    run is; the other ranks (already pointed here, see lit_nlp.distributed) write nothing here
    but their log, and resume from the same last.ckpt. Returns the checkpoint to resume."""
    if launch_rank() != 0:
        return last_checkpoint(run_dir) if cfg.get("resume") else None
    ckpt_path = _prepare_run_dir(cfg, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / SAVED_CONFIG)
    announce_run_dir(run_dir)
    announce_sweep_job(cfg.get("resume"), run_dir)
    return ckpt_path


def flatten(node: dict, prefix: str = "") -> dict:
    """Nested dicts as flat `a.b.c` keys (lists stay values)."""
    out = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def write_metrics(metrics: dict, run_dir: Path) -> Path:
    path = Path(run_dir) / METRICS_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True))
    tmp.replace(path)
    return path
