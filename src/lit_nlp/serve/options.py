"""serve.py's command line: key=value arguments as predict.py takes them, every problem
reported together in one line before torch or LitServe is imported."""

from __future__ import annotations

import os

from lit_nlp.errors import LitNlpError, raise_if_any
from lit_nlp.onnx import BACKENDS

API_KEY_ENV = "LIT_NLP_API_KEY"
# LitServer.run binds only these (0.2.19); localhost is read as 127.0.0.1
HOSTS = ("127.0.0.1", "0.0.0.0", "::")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")

# key -> (default, help); the type of the default is the type of the value
OPTIONS: dict[str, tuple[object, str]] = {
    "model_path": (None, "run dir, .ckpt or export dir (required)"),
    "host": ("127.0.0.1", "127.0.0.1 (this machine only, the default), 0.0.0.0 or :: (every interface)"),
    "port": (8000, "1024-65535"),
    "backend": ("torch", "torch | onnx | onnx-int8 (the export's ONNX files: python -m lit_nlp.onnx <run dir>)"),
    "max_batch_size": (32, "requests a worker collects into one batch"),
    "batch_size": (16, "texts per model call: a batch's texts, sorted by length, run in calls of this many"),
    "batch_timeout": (0.005, "seconds a worker collects requests into one batch"),
    "workers": (1, "model copies (processes), each batching on its own"),
    "device": ("auto", "auto | cpu | cuda | cuda:1"),
    "api_key": (None, f"requests must send it (Authorization: Bearer <key> or X-API-Key); or set {API_KEY_ENV}"),
    "max_chars": (10_000, "the longest text (any one field) a request may send"),
    "max_items": (64, "the most inputs one request may send as a list"),
    "log_level": ("warning", "warning (default) | info (one line per request) | debug | error | critical"),
}
POSITIVE = ("port", "max_batch_size", "batch_size", "workers", "max_chars", "max_items")


def parse_args(argv: list[str], environ: dict | None = None) -> dict:
    """`key=value` arguments over the defaults, converted and checked; the API key from
    api_key= or, failing that, LIT_NLP_API_KEY. A misspelt key is named without its value, and
    an argument without `=` by its position (either may hold the API key)."""
    environ = os.environ if environ is None else environ
    opts = {key: default for key, (default, _) in OPTIONS.items()}
    problems = []
    for number, arg in enumerate(argv, 1):
        key, sep, value = arg.partition("=")
        if not sep:
            problems.append(f"argument {number} is not key=value (keys: {', '.join(OPTIONS)})")
            continue
        if key not in OPTIONS:
            problems.append(f"unknown argument {key!r} (use key=value with keys: {', '.join(OPTIONS)})")
            continue
        default = OPTIONS[key][0]
        try:
            opts[key] = type(default)(value) if default is not None else value
        except ValueError:
            kind = "a whole number" if isinstance(default, int) else "a number"
            problems.append(f"{key} must be {kind}, got {value!r}")
    if opts["model_path"] is None:
        problems.append("model_path=<run dir | .ckpt | export dir> is required")
    if opts["api_key"] is None:
        opts["api_key"] = environ.get(API_KEY_ENV) or None
    elif not opts["api_key"]:
        problems.append(f"api_key= is empty; give a key, or leave it out (and {API_KEY_ENV} unset) to serve "
                        "without one")
    opts["host"] = "127.0.0.1" if opts["host"] == "localhost" else opts["host"]
    problems += _value_problems(opts)
    raise_if_any(problems)
    return opts


def _value_problems(opts: dict) -> list[str]:
    problems = [f"{key} must be at least 1, got {opts[key]}" for key in POSITIVE
                if isinstance(opts[key], int) and opts[key] < 1]
    if isinstance(opts["port"], int) and not 1024 <= opts["port"] <= 65535:
        problems.append(f"port must be from 1024 to 65535 (LitServe's range), got {opts['port']}")
    if opts["host"] not in HOSTS:
        problems.append(f"host={opts['host']}: LitServe binds {', '.join(HOSTS)} (or localhost)")
    if opts["backend"] not in BACKENDS:
        problems.append(f"backend={opts['backend']} is not one of {', '.join(BACKENDS)}")
    # LitServe answers 504 to a request that waited 30 s for a worker: a batch must fill sooner
    if isinstance(opts["batch_timeout"], float) and not 0 < opts["batch_timeout"] < 30:
        # and at 0 LitServe's batching loop asks its queue again and again, keeping a core busy
        problems.append(f"batch_timeout must be above 0 and under 30 seconds, got {opts['batch_timeout']}")
    if opts["log_level"] not in LOG_LEVELS:
        problems.append(f"log_level={opts['log_level']} is not one of {', '.join(LOG_LEVELS)}")
    return problems


def require_serve_packages() -> None:
    """A one-line error naming the extra when LitServe or its server packages are missing."""
    try:
        import fastapi  # noqa: F401
        import litserve  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise LitNlpError(f"serve.py needs {err.name or 'litserve'}: pip install -e \".[serve]\"") from None
