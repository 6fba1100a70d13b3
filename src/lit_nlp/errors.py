"""User-facing errors: one line that names the file, column or key and what to do."""

from __future__ import annotations

import functools
import logging
import sys
from typing import Callable, Iterable

log = logging.getLogger(__name__)


class LitNlpError(ValueError):
    """A problem with the user's data, files or config; the message says how to fix it."""


def raise_if_any(problems: Iterable[str], prefix: str = "") -> None:
    """Collect every problem first and report them together, once."""
    problems = [p for p in problems if p]
    if problems:
        raise LitNlpError(prefix + "; ".join(problems))


def exit_on_user_error(fn: Callable) -> Callable:
    """For CLI entry points: a `LitNlpError` ends the program with its one-line message
    (exit code 2) instead of a traceback; any other exception is a bug and keeps its traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LitNlpError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper
