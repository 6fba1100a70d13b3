"""`train(cfg)`: build data, model, callbacks, loggers and trainer from the composed config,
fit, test the best checkpoint, export it and write the run summary. `train.py` at the project
root only hands Hydra's config to this function; tests call it directly."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig, OmegaConf

from lit_nlp.callbacks import Throughput
from lit_nlp.config_checks import check_config
from lit_nlp.distributed import announce_run_dir, announce_sweep_job, launch_rank
from lit_nlp.errors import LitNlpError
from lit_nlp.models.backbones import count_parameters
from lit_nlp.report import write_run_plots
from lit_nlp.reporting import flatten, log_final_hparams, print_summary, write_metrics

log = logging.getLogger(__name__)

# What `resume=<run dir>` may change: how long and where to train, never what is trained.
RESUME_OVERRIDABLE = (
    "resume", "resume_sweep", "trainer.max_epochs", "trainer.max_steps", "trainer.max_time", "trainer.accelerator",
    "trainer.devices", "trainer.num_nodes", "trainer.strategy", "data.num_workers", "data.pin_memory",
    "paths.cache_dir", "callbacks.model_checkpoint.every_n_train_steps",
    "trainer.use_distributed_sampler", "model.gradient_checkpointing",  # memory and sharding, not results
    # display only
    "trainer.enable_progress_bar", "trainer.enable_model_summary", "trainer.log_every_n_steps",
)
SAVED_CONFIG = "config.yaml"


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
    last = run_dir / "checkpoints" / "last.ckpt"
    if not cfg.get("resume"):
        if (run_dir / SAVED_CONFIG).exists() or last.exists():
            raise LitNlpError(f"{run_dir} already holds a run; continue it with resume={run_dir} "
                              "or pick another hydra.run.dir")
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
                          "before its first checkpoint); start it again without resume")
    log.info("resuming %s from %s", run_dir, last)
    return last


def _claim_run_dir(cfg: DictConfig, run_dir: Path) -> Path | None:
    """Rank 0 checks the run dir, saves config.yaml and tells torchrun's other ranks where the
    run is; the other ranks (already pointed here, see lit_nlp.distributed) write nothing here
    but their log, and resume from the same last.ckpt. Returns the checkpoint to resume."""
    if launch_rank() != 0:
        return run_dir / "checkpoints" / "last.ckpt" if cfg.get("resume") else None
    ckpt_path = _prepare_run_dir(cfg, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / SAVED_CONFIG)
    announce_run_dir(run_dir)
    announce_sweep_job(cfg.get("resume"), run_dir)
    return ckpt_path


def train(cfg: DictConfig) -> float:
    """Fit, test with the best checkpoint, export, write metrics.json; returns the best value
    of the monitored metric (what Hydra sweepers optimise)."""
    check_config(cfg)  # before the run dir is claimed: a typo leaves nothing behind
    run_dir = Path(cfg.paths.output_dir)
    ckpt_path = _claim_run_dir(cfg, run_dir)
    L.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data, tokenizer=instantiate(cfg.tokenizer))
    datamodule.prepare_data()
    datamodule.setup("fit")
    if cfg.monitor is None:
        cfg.monitor = datamodule.main_metric  # before callbacks interpolate ${monitor}
    model = instantiate(cfg.model, **datamodule.model_facts())
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    if not cfg.trainer.get("enable_progress_bar", True):  # Lightning refuses a bar callback then
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    # our checkpoints hold only tensors and plain types, so the safe loader reads them
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    checkpoint = trainer.checkpoint_callback
    best_path = checkpoint.best_model_path if checkpoint and checkpoint.best_model_path else None
    test_results = trainer.test(model, datamodule=datamodule, ckpt_path=best_path, weights_only=True)

    monitor = cfg.monitor
    best = checkpoint.best_model_score if checkpoint and checkpoint.best_model_score is not None else \
        trainer.callback_metrics.get(monitor)
    throughput = next((c for c in callbacks if isinstance(c, Throughput)), None)
    metrics = {
        **{k: float(v) for k, v in (test_results[0] if test_results else {}).items()},
        f"{monitor}_best": float(best) if best is not None else None,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        **datamodule.report(),
        **(throughput.summary() if throughput else {}),
        **count_parameters(model),
    }
    if trainer.is_global_zero:
        write_metrics(metrics, run_dir)
        log_final_hparams(trainer.loggers, cfg, metrics, trainer.global_step)
        write_run_plots(run_dir, monitor)
        print_summary(run_dir, metrics, monitor, best_path)
    return metrics[f"{monitor}_best"]
