"""`train(cfg)`: build data, model, callbacks, loggers and trainer from the composed config,
fit, test the best checkpoint, export it and write the run summary. `train.py` at the project
root only hands Hydra's config to this function; tests call it directly."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig

from lit_nlp.callbacks import Throughput
from lit_nlp.config_checks import check_config
from lit_nlp.final_panel import print_summary
from lit_nlp.models.backbones import count_parameters
from lit_nlp.plots import write_run_plots
from lit_nlp.run_dir import claim_run_dir, write_metrics
from lit_nlp.tracking import build_loggers, log_hparams, log_run_end, viewer_rows
from lit_nlp.trainer_args import build_trainer

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> float:
    """Fit, test with the best checkpoint, export, write metrics.json; returns the best value
    of the monitored metric (what Hydra sweepers optimise)."""
    check_config(cfg)  # before the run dir is claimed: a typo leaves nothing behind
    run_dir = Path(cfg.paths.output_dir)
    ckpt_path = claim_run_dir(cfg, run_dir)
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
    loggers = build_loggers(cfg)
    plugins = [instantiate(p) for p in cfg.trainer.get("plugins") or []]
    trainer: L.Trainer = build_trainer(cfg.trainer, plugins, callbacks=callbacks, logger=loggers or False)
    if trainer.is_global_zero:
        log_hparams(trainer.loggers, cfg)

    # our checkpoints hold only tensors and plain types, so the safe loader reads them
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    throughput = next((c for c in callbacks if isinstance(c, Throughput)), None)
    # read before testing: restoring the best checkpoint to test it restores the callbacks' state too
    throughput_summary = throughput.summary() if throughput else {}
    checkpoint = trainer.checkpoint_callback
    best_path = checkpoint.best_model_path if checkpoint and checkpoint.best_model_path else None
    # verbose=False: the final panel shows the test metrics; Lightning's table would repeat them
    test_results = trainer.test(model, datamodule=datamodule, ckpt_path=best_path, weights_only=True, verbose=False)

    monitor = cfg.monitor
    best = checkpoint.best_model_score if checkpoint and checkpoint.best_model_score is not None else \
        trainer.callback_metrics.get(monitor)
    metrics = {
        **{k: float(v) for k, v in (test_results[0] if test_results else {}).items()},
        f"{monitor}_best": float(best) if best is not None else None,
        "epochs": _epochs_trained(trainer),
        "global_step": trainer.global_step,
        **datamodule.report(),
        **throughput_summary,
        **count_parameters(model),
    }
    if trainer.is_global_zero:
        log.debug("test metrics: %s", test_results)
        if cfg.get("export", {}).get("onnx"):
            metrics.update(onnx_export(run_dir))
        write_metrics(metrics, run_dir)
        for logger in trainer.loggers:
            logger.save()  # the plots read the TensorBoard events (or csv/metrics.csv)
        write_run_plots(run_dir, monitor)
        viewers = viewer_rows(trainer.loggers, run_dir)
        log_run_end(trainer.loggers, cfg, metrics, trainer.global_step, run_dir)
        print_summary(run_dir, metrics, monitor, best_path, viewers)
    return metrics[f"{monitor}_best"]


def _epochs_trained(trainer: L.Trainer) -> float:
    """Epochs of training data seen, counted in batches: 30 steps of a 65-batch epoch are
    0.46 epochs (trainer.current_epoch says 1 once the stopped epoch is closed)."""
    batches = trainer.fit_loop.epoch_loop.batch_progress.total.completed
    per_epoch = trainer.num_training_batches
    if not per_epoch or per_epoch == float("inf"):
        return trainer.current_epoch
    epochs = round(batches / per_epoch, 3)
    return int(epochs) if epochs == int(epochs) else epochs


def onnx_export(run_dir: Path) -> dict:
    """export.onnx=true: `python -m lit_nlp.onnx <run dir>` in a process of its own (it scores
    the test split with fresh Trainers, which a DDP rank's process group would get in the way
    of); the main test metric per backend and the label agreement, for metrics.json."""
    import json
    import subprocess
    import sys

    from lit_nlp.errors import LitNlpError
    from lit_nlp.run_layout import ONNX_DIR, ONNX_PARITY, export_dir

    done = subprocess.run([sys.executable, "-m", "lit_nlp.onnx", str(run_dir)], capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise LitNlpError(f"export.onnx=true: python -m lit_nlp.onnx {run_dir} failed: {last}")
    log.info("ONNX export and parity:\n%s", done.stdout.strip())
    report = json.loads((export_dir(run_dir) / ONNX_DIR / ONNX_PARITY).read_text())
    out = {}
    for backend in ("onnx", "onnx-int8"):
        out[f"{backend}/agreement"] = report[backend]["agreement"]
        out.update({f"{backend}/{k}": v for k, v in report[backend]["metrics"].items() if k.count("/") == 1})
    return out
