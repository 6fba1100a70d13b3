"""Any argument of Lightning's Trainer from the command line: `trainer.max_steps=30` works like
`trainer.max_epochs=5` although conf/trainer/ does not list max_steps. Hydra refuses a key that
the composed config lacks unless it is written `+key=` (add) or `++key=` (add or override);
`trainer.<argument>=` is rewritten to `++trainer.<argument>=` when <argument> is a parameter of
`lightning.pytorch.Trainer`, and a misspelt one stops with the close matches. A value the
Trainer refuses (`trainer.precision=bf17`) stops with Lightning's reason in one line."""

from __future__ import annotations

import difflib
import functools
import inspect
import re

from lit_nlp.errors import LitNlpError, raise_if_any

# train() hands these over itself (conf/callbacks/, conf/logger/)
SET_BY_TRAIN = ("callbacks", "logger")
# `trainer.<name>=<value>` without a prefix; deeper keys (trainer.strategy.stage=3) must exist
TRAINER_KEY = re.compile(r"^trainer\.([A-Za-z_][A-Za-z0-9_]*)=")


@functools.cache
def trainer_arguments() -> tuple[str, ...]:
    from lightning.pytorch import Trainer

    return tuple(n for n in inspect.signature(Trainer.__init__).parameters if n not in ("self", *SET_BY_TRAIN))


def trainer_overrides(overrides: list[str]) -> list[str]:
    """Hydra overrides with every `trainer.<Trainer argument>=...` made `++trainer....`; one
    error for all misspelt names. Lightning is imported only when there is such an override, so
    a command line without one reaches Hydra's config checks before torch loads."""
    out, problems = [], []
    for override in overrides:
        match = TRAINER_KEY.match(override)
        if not match or match.group(1).startswith("_"):
            out.append(override)
            continue
        name, known = match.group(1), trainer_arguments()
        if name in known:
            out.append("++" + override)
            continue
        if name in SET_BY_TRAIN:
            problems.append(f"trainer.{name} is built from conf/{name}/ (choose {name}=<option> instead)")
            continue
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(f'trainer.{c}' for c in close)}?" if close else \
            "see the arguments of lightning.pytorch.Trainer"
        problems.append(f"trainer.{name} is not an argument of Lightning's Trainer ({hint})")
    raise_if_any(problems)
    return out


def trainer_argv(argv: list[str]) -> list[str]:
    """sys.argv of train.py with trainer_overrides applied to its overrides."""
    return [argv[0], *trainer_overrides(argv[1:])]


def build_trainer(trainer_cfg, plugins: list, **kwargs):
    """`instantiate(trainer_cfg, **kwargs)` with the project's mixed-precision plugin when the
    precision calls for it (mixed_precision.py; `plugins`: the config's, already built). The
    Trainer checks its arguments in its constructor
    and raises ValueError or Lightning's MisconfigurationException (ImportError for an accelerator
    or strategy whose package is missing), which Hydra wraps in several lines of its own; those
    become one LitNlpError naming Lightning's reason."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from lit_nlp.mixed_precision import precision_arguments

    try:
        return instantiate(trainer_cfg, **kwargs, **precision_arguments(trainer_cfg, plugins))
    except InstantiationException as err:
        cause = err.__cause__
        if not isinstance(cause, (ValueError, ImportError, MisconfigurationException)):
            raise
        reason = " ".join(str(cause).split())
        raise LitNlpError(f"trainer: {reason}") from err
