"""The LightningModule plumbing every task shares, and nothing else: a task's module writes its
forward, loss, `training_step`, `eval_step(batch, batch_idx, stage)` and
`eval_epoch_end(stage)` (stage "val" or "test"); this base routes Lightning's validation and
test hooks to them, compiles the model once the device is known and builds the optimizer and
schedule from the config. No task-specific behaviour lives here (see lit_nlp/tasks.py)."""

from __future__ import annotations

import lightning as L

from lit_nlp.models.compiled import compile_for, module_device_type
from lit_nlp.models.optim import build_optimization


class TaskModule(L.LightningModule):
    """Subclasses set `self.model` (the Hugging Face model) and save `optimizer`, `scheduler`
    and `compile` in their hparams."""

    def eval_step(self, batch: dict, batch_idx: int, stage: str) -> None:
        raise NotImplementedError

    def eval_epoch_end(self, stage: str) -> None:
        raise NotImplementedError

    def export_settings(self) -> dict:
        """What travels with the exported model beside the data module's text settings."""
        return {}

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.eval_step(batch, batch_idx, "val")

    def on_validation_epoch_end(self) -> None:
        self.eval_epoch_end("val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self.eval_step(batch, batch_idx, "test")

    def on_test_epoch_end(self) -> None:
        self.eval_epoch_end("test")

    def configure_model(self) -> None:
        # here rather than in __init__: Lightning calls this in fit/validate/test (once the
        # device is known), while predict.py rebuilds the module and decides itself
        if getattr(self, "_compiled", None) is None:
            self._compiled = compile_for(self.model, self.hparams.get("compile"), module_device_type(self))

    def configure_optimizers(self):
        return build_optimization(self.model, self.hparams.optimizer, self.hparams.scheduler,
                                  self.trainer.estimated_stepping_batches)
