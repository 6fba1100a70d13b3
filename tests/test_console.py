"""The quiet console: transformers' LOAD REPORT becomes one line, Lightning's tips and device
lines and deprecation warnings leave the terminal, and all of it is in the log file at DEBUG."""

from __future__ import annotations

import io
import logging
import warnings

import pytest


@pytest.fixture
def handlers(tmp_path, monkeypatch):
    """A console and a log file on the root logger, as Hydra's job logging sets them up;
    the logging state that quiet_console changes is put back afterwards. Lightning's rank is 0,
    as in a single-process run: rank_zero_info says nothing on another rank, and a test run
    earlier in this process may have left another (a strategy sets it process-wide)."""
    import transformers
    from lightning_utilities.core.rank_zero import rank_zero_only

    monkeypatch.setattr(rank_zero_only, "rank", 0, raising=False)  # set when Lightning is imported

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    console_stream = io.StringIO()
    console = logging.StreamHandler(console_stream)
    logfile = logging.FileHandler(tmp_path / "train.log")
    fmt = logging.Formatter("[%(name)s][%(levelname)s] - %(message)s")
    for handler in (console, logfile):
        handler.setFormatter(fmt)
    root.handlers[:] = [console, logfile]
    root.setLevel(logging.INFO)
    yield console_stream, tmp_path / "train.log"
    logfile.close()
    root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    logging.captureWarnings(False)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.disable_propagation()
    transformers.utils.logging.enable_progress_bar()


def test_details_go_to_the_log_file_at_debug(handlers, tmp_path):
    from lightning.pytorch.utilities import rank_zero_info
    from transformers import AutoModelForSequenceClassification, BertConfig, BertModel

    from lit_nlp.console import quiet_console

    console, logfile = handlers
    quiet_console()
    # a pretrained encoder without a classification head, as all-MiniLM-L6-v2 is
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    BertModel(config).save_pretrained(tmp_path / "encoder")
    AutoModelForSequenceClassification.from_pretrained(tmp_path / "encoder", num_labels=2)
    rank_zero_info("💡 Tip: For seamless cloud logging, try installing [something]")
    rank_zero_info("GPU available: False, used: False")
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # pytest's settings ignore these categories
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use TreeSpec", FutureWarning)
        warnings.warn("the data has 3 rows: too few to split", UserWarning)
    logging.getLogger("lit_nlp.data.classification").info("data: 96/12/12 rows")
    for handler in logging.getLogger().handlers:
        handler.flush()

    shown, log = console.getvalue(), logfile.read_text()
    assert shown.splitlines()[0] == ("[lit_nlp.console][INFO] - newly initialised (not in the pretrained "
                                     "checkpoint, trained from scratch): classifier.bias, classifier.weight")
    for quiet in ("LOAD REPORT", "Tip", "GPU available", "LeafSpec", "Loading weights"):
        assert quiet not in shown, quiet
    assert "too few to split" in shown and "data: 96/12/12 rows" in shown  # warnings and our lines stay
    assert sum(line.startswith("[") for line in shown.splitlines()) == 3, shown  # three records
    # nothing is lost: the details are in the log file, at DEBUG
    assert "[transformers.modeling_utils][DEBUG] - " in log and "LOAD REPORT" in log and "| MISSING" in log
    assert "[lightning.pytorch.utilities.rank_zero][DEBUG] - 💡 Tip" in log
    assert "[lightning.pytorch.utilities.rank_zero][DEBUG] - GPU available" in log
    assert "[py.warnings][DEBUG] - " in log and "LeafSpec" in log
    assert "[lit_nlp.console][INFO] - newly initialised" in log


def test_closing_absls_handler_leaves_pytests_capture_open(capsys):
    """The harness, not lit_nlp (tests/conftest.py): absl's handler is closed here as Hydra's job
    logging closes every handler, while capsys holds sys.stderr; pytest's capture file must
    stay open, or every later test of this worker errors in pytest's capture."""
    import sys

    import absl.logging

    handler = absl.logging.get_absl_handler().python_handler
    stream = handler.stream
    handler.close()
    assert not stream.closed and stream is sys.__stderr__
