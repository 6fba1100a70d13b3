"""Where a run's numbers go besides metrics.json: the loggers of conf/logger/ (TensorBoard, CSV,
MLflow, Weights & Biases), the hyperparameters they list, and what they are handed when the run
ends (TensorBoard's HParams tab with the final metrics; MLflow's final metrics and artifacts)."""

from __future__ import annotations

import fnmatch
import importlib.util
import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lit_nlp.errors import raise_if_any
from lit_nlp.run_dir import flatten
from lit_nlp.run_layout import CONFUSION_JSON, CONFUSION_PNG, LEARNING_CURVES, METRICS_FILE, SAVED_CONFIG, export_dir

log = logging.getLogger(__name__)

# logger class -> (module it imports, extra of pyproject.toml that installs it)
OPTIONAL_LOGGERS = {"MLFlowLogger": ("mlflow", "mlflow"), "WandbLogger": ("wandb", "wandb")}
# command-line overrides that say where or how a run is logged, not what it learns
NOT_HPARAMS = ("logger", "paths", "hparams_search", "hydra", "resume", "resume_sweep")
# what MLflow keeps of a run besides its params and metrics (the export is added when there)
ARTIFACTS = (SAVED_CONFIG, METRICS_FILE, LEARNING_CURVES, CONFUSION_PNG, CONFUSION_JSON)
# in the run dir: the MLflow run that `resume=<run dir>` continues
MLFLOW_RUN_FILE = "mlflow_run_id.txt"


def build_loggers(cfg: DictConfig) -> list:
    """The loggers selected in `logger` (one or several: logger=[tensorboard,mlflow]); a logger
    whose package is missing stops the run with the extra that installs it."""
    nodes = {name: node for name, node in (cfg.get("logger") or {}).items() if node}
    problems = []
    for name, node in nodes.items():
        module, extra = OPTIONAL_LOGGERS.get(str(node.get("_target_", "")).rsplit(".", 1)[-1], (None, None))
        if module and importlib.util.find_spec(module) is None:
            problems.append(f"logger {name} needs the {module} package: pip install -e '.[{extra}]'")
    raise_if_any(problems)
    loggers = []
    for node in nodes.values():
        extra = {}
        if str(node.get("_target_", "")).endswith("MLFlowLogger"):
            uri = str(node.get("tracking_uri") or "")
            if uri.startswith("sqlite:///"):  # SQLite creates the file, not its folder
                Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            saved = Path(cfg.paths.output_dir) / MLFLOW_RUN_FILE
            if cfg.get("resume") and saved.is_file():  # continue the run's MLflow run, not a new one
                extra["run_id"] = saved.read_text().strip()
        loggers.append(instantiate(node, **extra))
    return loggers


def _overridden_keys() -> dict[str, str]:
    """The keys set on the command line (in a sweep: the job's, swept keys included), without
    those Hydra leaves out of job dir names (file paths, devices) and NOT_HPARAMS."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not HydraConfig.initialized():
        return {}
    hydra_cfg = HydraConfig.get()
    excluded = set(hydra_cfg.job.config.override_dirname.exclude_keys or [])
    keys = {}
    for line in hydra_cfg.overrides.task:
        try:
            (override,) = OverridesParser.create().parse_overrides([line])
        except Exception:  # noqa: BLE001  (an odd override is no reason to fail the run)
            continue
        key = override.key_or_group
        if override.is_delete() or key in excluded or key.split(".")[0].split("/")[0] in NOT_HPARAMS:
            continue
        keys[key] = override.get_value_element_as_str()
    return keys


def hparams(cfg: DictConfig) -> dict[str, object]:
    """What loggers list as the run's hyperparameters: the config keys matching the `hparams`
    patterns (model, optimizer, schedule, lengths, batch size, seed, ...) and every key set on
    the command line (a sweep's swept keys), resolved; `_target_`s and nulls left out. The whole
    config stays in config.yaml."""
    flat = flatten(OmegaConf.to_container(cfg, resolve=True))
    patterns = list(cfg.get("hparams") or [])
    chosen = {k: v for k, v in flat.items()
              if any(fnmatch.fnmatchcase(k, p) for p in patterns) and not k.rsplit(".", 1)[-1].startswith("_")}
    if flat.get("model.finetune") != "lora":  # model.lora is read by LoRA runs only: noise elsewhere
        chosen = {k: v for k, v in chosen.items() if not k.startswith("model.lora.")}
    for key, value in _overridden_keys().items():
        chosen[key] = flat.get(key, value)  # a group choice (model=bert_tiny) is not a config key
    return {k: v if isinstance(v, (int, float, str, bool)) else str(v)
            for k, v in sorted(chosen.items()) if v is not None}


def log_hparams(loggers: list, cfg: DictConfig) -> None:
    """At the start: every logger but TensorBoard, whose HParams tab wants the final metrics
    with them and gets both in `log_run_end`."""
    from lightning.pytorch.loggers import TensorBoardLogger

    from lightning.pytorch.loggers import MLFlowLogger

    params = hparams(cfg)
    for logger in loggers:
        if isinstance(logger, MLFlowLogger):
            (Path(cfg.paths.output_dir) / MLFLOW_RUN_FILE).write_text(logger.run_id + "\n")
            if cfg.get("resume"):
                continue  # MLflow refuses to log a param again with another value (resume: max_epochs)
        if not isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params)


def log_run_end(loggers: list, cfg: DictConfig, metrics: dict, step: int, run_dir: Path) -> None:
    """The final metrics (best validation value, test metrics, data counts, throughput) to every
    logger; TensorBoard's HParams tab with them; MLflow's artifacts."""
    from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger

    numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and v is not None}
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            _tensorboard_hparams(logger, hparams(cfg), numeric, step)
            continue
        logger.log_metrics(numeric, step)
        if isinstance(logger, MLFlowLogger):
            _mlflow_artifacts(logger, Path(run_dir))
        logger.save()
        if isinstance(logger, WandbLogger):
            # end the W&B run now: the next job of a sweep would otherwise log into this one
            logger.experiment.finish()


def _tensorboard_hparams(logger, params: dict, numeric: dict, step: int) -> None:
    """The HParams tab reads metric values from scalars of the same tag, so every final metric
    is also written as a scalar."""
    from torch.utils.tensorboard.summary import hparams as hparams_summaries

    writer = logger.experiment
    for key, value in numeric.items():
        writer.add_scalar(key, value, step)
    for summary in hparams_summaries(params, numeric):
        writer.file_writer.add_summary(summary)
    writer.flush()


def _mlflow_artifacts(logger, run_dir: Path) -> None:
    client, run_id = logger.experiment, logger.run_id
    for name in ARTIFACTS:
        if (run_dir / name).is_file():
            client.log_artifact(run_id, str(run_dir / name))
    if export_dir(run_dir).is_dir():
        client.log_artifacts(run_id, str(export_dir(run_dir)), artifact_path="export")
    log.debug("logged the artifacts of %s to MLflow run %s", run_dir, run_id)


def viewer_rows(loggers: list, run_dir: Path) -> list[tuple[str, str]]:
    """For the final panel: the command that shows each logger's record of this run."""
    from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger

    rows = []
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            rows.append(("tensorboard", f"tensorboard --logdir {run_dir}"))
        elif isinstance(logger, MLFlowLogger):
            uri = logger._tracking_uri or ""  # Lightning keeps no public copy of it
            command = f"mlflow ui --backend-store-uri {uri}" if uri.startswith("sqlite:") else f"open {uri}"
            rows.append(("mlflow", f"{command}  (run {logger.run_id})"))
        elif isinstance(logger, WandbLogger):
            run = logger.experiment  # run.dir is <save_dir>/wandb/<offline-run-...>/files
            rows.append(("wandb", f"wandb sync {Path(run.dir).parent}" if run.offline else str(run.url)))
    return rows
