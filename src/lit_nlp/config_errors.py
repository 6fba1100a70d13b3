"""A command line Hydra cannot compose stops with one line that names the option or key and
the close matches, not Hydra's page (config search path, `object_type=dict`, "Set the
environment variable HYDRA_FULL_ERROR=1"):

    error: model=bert_tinyy is not a model config (did you mean bert_tiny?); options: bert_base, ...
    error: data.batchsize is not a key of data (did you mean data.batch_size?)

Hydra prints that page and exits inside `@hydra.main` unless HYDRA_FULL_ERROR is set, in which
case it raises; `one_line_config_errors` sets it and turns what Hydra raises while composing (on
the command line, for each job of a sweep before any runs, and for `resume=`'s saved config.yaml)
into a LitNlpError. Errors raised by a run itself keep their tracebacks."""

from __future__ import annotations

import contextlib
import difflib
import os
import re
from pathlib import Path
from typing import Iterator

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from hydra.plugins.sweeper import Sweeper
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from lit_nlp.errors import LitNlpError

FULL_ERROR = "HYDRA_FULL_ERROR"
# what a sweeper writes into the sweep dir before it checks that every job composes
SWEEP_START_FILES = ("multirun.yaml", "optuna.db")
SHOWN_KEYS = 10  # keys listed when nothing is close to a misspelt one


@contextlib.contextmanager
def one_line_config_errors() -> Iterator[None]:
    """Around the `@hydra.main` function: a composition error becomes a LitNlpError of one line.
    HYDRA_FULL_ERROR=1 set by the user keeps Hydra's full traceback."""
    user_set = os.environ.get(FULL_ERROR)
    os.environ[FULL_ERROR] = "1"
    try:
        yield
    except Exception as err:
        if user_set == "1" or not isinstance(err, (ConfigCompositionException, OverrideParseException)):
            raise
        _remove_unstarted_sweep(err)
        raise LitNlpError(config_error_line(err)) from err
    finally:
        if user_set is None:
            os.environ.pop(FULL_ERROR, None)
        else:
            os.environ[FULL_ERROR] = user_set


def config_error_line(err: Exception) -> str:
    """One line for a ConfigCompositionException or OverrideParseException of Hydra."""
    cause = err.__cause__
    if isinstance(err, MissingConfigException) and err.missing_cfg_file and err.options:
        return _missing_option(err.missing_cfg_file, list(err.options))
    # Hydra's "Could not override 'data.batchsize'.\nTo append to your config use +data.batchsize=3"
    add = re.search(r"^To append to your config use (\S+)$", str(err), re.MULTILINE)
    if add and isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and cause.full_key:
        siblings = [str(k) for k in cause.parent_node] if cause.parent_node is not None else []
        return _missing_key(cause.full_key, siblings, add.group(1))
    if isinstance(err, OverrideParseException):
        return f"{err.override} is not an override Hydra can parse: {_one_line(err.message)}"
    line = _one_line(str(err))
    if isinstance(cause, OmegaConfBaseException) and cause.msg:
        line += f": {_one_line(cause.msg)}"
    return line


def _missing_option(missing_cfg_file: str, options: list[str]) -> str:
    """`model/bert_tinyy` with conf/model/'s options; nested groups (`data/cleaning/defaultt`) and
    Hydra's own (`hydra/launcher/slurmm`) alike."""
    group, _, option = missing_cfg_file.rpartition("/")
    close = _closest(option, options)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return f"{group}={option} is not a {group} config{hint}; options: {', '.join(options)}"


def _missing_key(full_key: str, siblings: list[str], add: str) -> str:
    """`data.batchsize` with the keys that `data` has in the composed config; `add`: the
    override with Hydra's `+`, for a key that is meant to be new."""
    if "/" in full_key:  # `data/cleaningg=...`: Hydra tried the group name as a key
        return f"{full_key} is not a config group; the groups are the folders of conf/"
    parent, _, name = full_key.rpartition(".")
    where = parent or "the config"
    prefix = f"{parent}." if parent else ""
    close = _closest(name, siblings)
    if close:
        return f"{full_key} is not a key of {where} (did you mean {', '.join(prefix + c for c in close)}?)"
    shown = [k for k in siblings if not k.startswith("_")]
    listed = ", ".join(shown[:SHOWN_KEYS]) + (", ..." if len(shown) > SHOWN_KEYS else "")
    keys = f"its keys: {listed}; " if shown else ""
    return f"{full_key} is not a key of {where} ({keys}{add} adds it)"


def _closest(name: str, choices: list[str]) -> list[str]:
    """The most similar of `choices` (several only when tied): `batchsize` gives `batch_size`
    (similarity 0.95), not also `eval_batch_size` (0.75)."""
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    ratios = [difflib.SequenceMatcher(None, name, c).ratio() for c in close]
    return [c for c, ratio in zip(close, ratios) if ratio == max(ratios)]


def _one_line(text: str) -> str:
    """Hydra's message without its config search path, its lines joined."""
    lines = [line.strip().rstrip(".") for line in text.split("Config search path:")[0].splitlines()]
    # OmegaConf's lines after its message repeat the key and name types
    details = ("full_key:", "reference_type=", "object_type=")
    return "; ".join(line for line in lines if line and not line.startswith(details))


def _remove_unstarted_sweep(err: BaseException) -> None:
    """A sweeper saves multirun.yaml (and the Optuna study) before it checks that every job
    composes; when that check fails no job has run, so a sweep dir holding only those files is
    removed rather than left behind as an empty sweep."""
    sweep_dir = _sweep_dir(err)
    if sweep_dir is None or not sweep_dir.is_dir():
        return
    files = list(sweep_dir.iterdir())
    if not files or any(f.name not in SWEEP_START_FILES or not f.is_file() for f in files):
        return
    for f in files:
        f.unlink()
    with contextlib.suppress(OSError):
        sweep_dir.rmdir()


def _sweep_dir(err: BaseException) -> Path | None:
    """The sweep dir of the sweeper whose job check raised `err`, from the sweeper's own config
    (the default dir is named by the time the sweep started), or None outside a sweep."""
    tb = err.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, Sweeper) and getattr(owner, "config", None) is not None:
            return Path(str(owner.config.hydra.sweep.dir))
        tb = tb.tb_next
    return None
