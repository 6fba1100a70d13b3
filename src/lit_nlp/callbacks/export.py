"""Export the tested model as a plain Hugging Face folder: `transformers.pipeline` and
`from_pretrained` load it with no lit_nlp import; `lit_nlp.json` adds what predict.py needs
to prepare raw text exactly as training did (cleaning, max length, columns). A LoRA run exports
its adapters merged into the base, so the folder is the same plain model, and the adapter
alone in peft's format beside it, in `adapter/`."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import lightning as L
from lightning.pytorch.strategies import FSDPStrategy

from lit_nlp.model_card import write_model_card
from lit_nlp.run_layout import ADAPTER_DIR, SETTINGS_FILE

log = logging.getLogger(__name__)



def export_hf(model, tokenizer, text_settings: dict, directory: str | Path, state_dict: dict | None = None,
              lora=None) -> Path:
    """Write model (with `state_dict` instead of its own, when given), tokenizer and settings
    to `directory` (replaced as a whole). With `lora` (a models.lora.LoraAdapter around `model`),
    the model written is a merged copy, and the adapter goes to `<directory>/adapter`."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if lora is not None:
        model = lora.merged_model()
        lora.save_adapter(tmp / ADAPTER_DIR)
    model.save_pretrained(tmp, state_dict=state_dict)
    tokenizer.save_pretrained(tmp)
    (tmp / SETTINGS_FILE).write_text(json.dumps(text_settings, indent=2))
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)
    return directory


class HFExport(L.Callback):
    """Runs at the end of `trainer.test`, which `train()` calls with the best checkpoint, so
    the export holds the best weights; its model card (README.md) lists every epoch's
    validation metrics, which this callback keeps (in checkpoints too, for resumed runs)."""

    def __init__(self, directory: str):
        self.directory = directory
        self.validation: list[dict] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.validation.append({k: float(v) for k, v in trainer.callback_metrics.items()
                                    if k.startswith("val/") and v.numel() == 1})

    def state_dict(self) -> dict:
        return {"validation": self.validation}

    def load_state_dict(self, state: dict) -> None:
        # testing restores the best checkpoint, whose history may stop before the last epoch:
        # the longer one is the run's
        if len(state.get("validation", [])) > len(self.validation):
            self.validation = list(state["validation"])

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
        path = export_hf(pl_module.model, dm.tokenizer, settings, self.directory, state_dict=weights,
                         lora=getattr(pl_module, "lora", None))
        write_model_card(path, task=settings["task"], backbone=dict(pl_module.hparams.get("backbone") or {}),
                         hparams=dict(pl_module.hparams), data=dm.report(), files=dict(dm.files),
                         labels=settings.get("label_names") or list(pl_module.model.config.id2label.values()),
                         settings=dm.text_settings(), validation=self.validation,
                         test={k: float(v) for k, v in trainer.callback_metrics.items()
                               if k.startswith("test/") and v.numel() == 1},
                         trainer={"epochs": trainer.current_epoch, "global_step": trainer.global_step,
                                  "precision": str(trainer.precision), "devices": trainer.world_size,
                                  "accumulate_grad_batches": trainer.accumulate_grad_batches})
        log.info("exported model to %s", path)
