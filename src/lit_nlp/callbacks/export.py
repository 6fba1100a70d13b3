"""Export the tested model as a plain Hugging Face folder: `transformers.pipeline` and
`from_pretrained` load it with no lit_nlp import; `lit_nlp.json` adds what predict.py needs
to prepare raw text exactly as training did (cleaning, max length, columns)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import lightning as L
from lightning.pytorch.strategies import FSDPStrategy

from lit_nlp.run_layout import SETTINGS_FILE

log = logging.getLogger(__name__)



def export_hf(model, tokenizer, text_settings: dict, directory: str | Path, state_dict: dict | None = None) -> Path:
    """Write model (with `state_dict` instead of its own, when given), tokenizer and settings
    to `directory` (replaced as a whole)."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, state_dict=state_dict)
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

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        weights = None
        if isinstance(trainer.strategy, FSDPStrategy):
            # each rank holds a shard: gathering the whole weights is a collective that every
            # rank joins (rank 0 receives them); under DDP every rank holds them already
            full = trainer.strategy.lightning_module_state_dict()
            weights = {k.removeprefix("model."): v for k, v in full.items() if k.startswith("model.")}
        if not trainer.is_global_zero:
            return
        dm = trainer.datamodule
        # the model's own settings too (classification: class weights, multi-label threshold)
        settings = {**dm.text_settings(), **getattr(pl_module, "export_settings", dict)()}
        path = export_hf(pl_module.model, dm.tokenizer, settings, self.directory, state_dict=weights)
        log.info("exported model to %s", path)
