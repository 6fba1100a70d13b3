"""Export the tested model as a plain Hugging Face folder: `transformers.pipeline` and
`from_pretrained` load it with no lit_nlp import; `lit_nlp.json` adds what predict.py needs
to prepare raw text exactly as training did (cleaning, max length, columns)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

log = logging.getLogger(__name__)

SETTINGS_FILE = "lit_nlp.json"


def export_hf(model, tokenizer, text_settings: dict, directory: str | Path) -> Path:
    """Write model, tokenizer and settings to `directory` (replaced as a whole)."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / SETTINGS_FILE).write_text(json.dumps(text_settings, indent=2))
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)
    return directory


class HFExport(L.Callback):
    """Runs at the end of `trainer.test`, which `train()` calls with the best checkpoint, so
    the export holds the best weights."""

    def __init__(self, directory: str):
        self.directory = directory

    @rank_zero_only
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dm = trainer.datamodule
        path = export_hf(pl_module.model, dm.tokenizer, dm.text_settings(), self.directory)
        log.info("exported model to %s", path)
