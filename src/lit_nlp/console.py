"""A quiet console for `python train.py`: the terminal shows what a user acts on (the data
summary, one line about weights the model starts from scratch, warnings, the progress bar, the
final panel); what libraries print besides (transformers' LOAD REPORT table, Lightning's
device lines and tips, deprecation warnings meant for library authors, our cache lines) is
written to train.log at DEBUG level instead, so nothing is lost."""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

# (logger name prefix, message prefix): INFO and WARNING records that go to train.log only, at DEBUG
DETAILS = (
    ("lightning", "GPU available"),
    ("lightning", "TPU available"),
    ("lightning", "HPU available"),
    ("lightning", "💡 Tip"),
    ("lightning", "Loading `train_dataloader`"),
    ("lightning", "Restoring states from the checkpoint"),
    ("lightning", "Loaded model weights from the checkpoint"),
    ("lightning", "`Trainer.fit` stopped"),
    ("lightning", "Seed set to"),
    ("lightning", "Trainer already configured with model summary callbacks"),
    ("lightning.pytorch.callbacks.model_summary", ""),  # the layer table (conf/callbacks: model_summary)
    ("lightning.pytorch.loggers.mlflow", "Experiment with name"),
    ("lit_nlp.data.cache", "data cache hit"),
    ("lit_nlp.data.cache", "preparing data into"),
    ("lit_nlp.callbacks.export", "exported model to"),
    ("mlflow", ""),
    ("alembic", ""),  # MLflow creating its SQLite tables: 40 lines on a run's first use
)
DEPRECATION = re.compile(r"deprecat", re.IGNORECASE)
LOAD_REPORT = "LOAD REPORT"
# transformers' report table rows: "classifier.weight | MISSING | ..."
MISSING_ROW = re.compile(r"^\s*(\S+)\s*\|\s*MISSING\b", re.MULTILINE)


def _is_detail(record: logging.LogRecord) -> bool:
    """A DETAILS line, transformers' LOAD REPORT (a WARNING), or a deprecation warning."""
    message = record.getMessage()
    if record.name.startswith("transformers"):
        return LOAD_REPORT in message
    if record.name == "py.warnings":
        return bool(DEPRECATION.search(message))
    return record.levelno <= logging.WARNING and any(
        record.name.startswith(name) and message.startswith(prefix) for name, prefix in DETAILS)


def _head_weights_line(record: logging.LogRecord) -> None:
    """One console line in place of transformers' LOAD REPORT: which weights are new."""
    message = record.getMessage()
    if LOAD_REPORT not in message or getattr(record, "lit_nlp_summarised", False):
        return
    record.lit_nlp_summarised = True
    missing = MISSING_ROW.findall(message)
    if missing:
        log.info("newly initialised (not in the pretrained checkpoint, trained from scratch): %s",
                 ", ".join(sorted(missing)))
    else:
        log.info("the pretrained weights loaded with notes (transformers' load report is in the log file)")


class DetailsToLogFile(logging.Filter):
    """On every handler of the root logger: library details become DEBUG records (idempotent,
    so the order of the handlers does not matter); a console handler drops what is below INFO."""

    def __init__(self, console: bool):
        super().__init__()
        self.console = console

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG and _is_detail(record):
            _head_weights_line(record)
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return not (self.console and record.levelno < logging.INFO)


def quiet_console() -> None:
    """Route library output through the root logger's handlers (Hydra's console and train.log)
    and install DetailsToLogFile on them. Call after logging is configured (in the Hydra task)."""
    import os

    import transformers

    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")  # else MLflow gives its loggers their own stderr handler
    transformers.utils.logging.disable_default_handler()  # its own stderr handler
    transformers.utils.logging.enable_propagation()
    transformers.utils.logging.disable_progress_bar()  # "Loading weights" and "Writing model shards" bars
    # Lightning gives its loggers their own stderr handlers when imported before logging is
    # configured (here: before Hydra's job logging); their lines then never reach train.log
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if type(h) is logging.StreamHandler]:
            logger.removeHandler(handler)
        logger.propagate = True
    logging.captureWarnings(True)  # warnings become py.warnings records, in train.log too
    logging.getLogger("lit_nlp").setLevel(logging.DEBUG)  # our own details (log.debug) reach train.log
    for handler in logging.getLogger().handlers:
        console = not isinstance(handler, logging.FileHandler)
        if not any(isinstance(f, DetailsToLogFile) for f in handler.filters):
            handler.addFilter(DetailsToLogFile(console))
        if console and handler.level < logging.INFO:
            handler.setLevel(logging.INFO)
