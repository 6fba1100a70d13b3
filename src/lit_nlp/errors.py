"""User-facing errors: one line that names the file, column or key and what to do."""

from __future__ import annotations

import functools
import logging
import sys
from typing import Callable, Iterable

from omegaconf.errors import GrammarParseError, InterpolationKeyError, UnsupportedInterpolationType

# a `${...}` that names no key or resolver, or does not parse: a typo in the config, not a bug
INTERPOLATION_MISTAKES = (InterpolationKeyError, UnsupportedInterpolationType, GrammarParseError)

log = logging.getLogger(__name__)


class LitNlpError(ValueError):
    """A problem with the user's data, files or config; the message says how to fix it."""


def raise_if_any(problems: Iterable[str], prefix: str = "") -> None:
    """Collect every problem first and report them together, once."""
    problems = [p for p in problems if p]
    if problems:
        raise LitNlpError(prefix + "; ".join(problems))


def user_error(err: BaseException | None) -> LitNlpError | None:
    """The project's own error behind `err`: `err` itself, or the cause of an exception that
    wraps it (Hydra's `instantiate` re-raises a constructor's error as an
    InstantiationException whose message is several lines of its own). A misspelt `${...}`
    interpolation counts as one too, named by its key."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, LitNlpError):
            return err
        if isinstance(err, INTERPOLATION_MISTAKES):
            reason = str(err).splitlines()[0]  # OmegaConf's next lines repeat the key and its type
            return LitNlpError(f"config: {err.full_key}: {reason}" if err.full_key else f"config: {reason}")
        seen.add(id(err))
        err = err.__cause__
    return None


def exit_on_user_error(fn: Callable) -> Callable:
    """For CLI entry points: a `LitNlpError`, also one wrapped by Hydra while it builds an
    object from the config, ends the program with its one-line message (exit code 2) instead
    of a traceback; any other exception is a bug and keeps its traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            own = user_error(err)
            if own is None:
                raise
            print(f"error: {own}", file=sys.stderr)
            sys.exit(2)

    return wrapper
