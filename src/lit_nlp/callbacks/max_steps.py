"""Validate at the step where `trainer.max_steps` ends training."""

from __future__ import annotations

import lightning as L


class ValidateAtMaxSteps(L.Callback):
    """Lightning validates at the end of each epoch (or every `val_check_interval`), and stops at
    `max_steps` without validating: `trainer.max_steps=30` on 65 batches per epoch ended with no
    validation metric, no best checkpoint and the test run on unvalidated weights. Asking the
    trainer to stop at that step instead makes Lightning validate (and checkpoint) first, as it
    does for early stopping. `check_val_every_n_epoch` and `limit_val_batches=0` still apply."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
            trainer.should_stop = True
