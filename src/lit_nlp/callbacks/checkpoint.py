"""Lightning's ModelCheckpoint with a `last.ckpt` that is always the last epoch."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class RunCheckpoint(ModelCheckpoint):
    """Keeps the best `save_top_k` checkpoints by `monitor`, judged at each validation, and
    rewrites `last.ckpt` at the end of every epoch and every `every_n_train_steps` steps,
    whatever the monitored metric did.

    Lightning's own `save_last=True` (2.6) rewrites last.ckpt only at a step where a top-k
    checkpoint was saved: with `save_top_k=1`, five epochs that did not improve left it five
    epochs back, and `resume=` lost them. And its `every_n_train_steps` judges top-k mid-epoch
    on the last validation's (stale) metric, so a best-* file could hold weights that were never
    validated; here those steps write last.ckpt only. Writes go through the trainer's checkpoint
    IO (`AtomicCheckpointIO`: a kill never leaves a half-written file)."""

    def __init__(self, *args, every_n_train_steps: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.last_every_n_train_steps = every_n_train_steps or 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)  # time-based saves
        every = self.last_every_n_train_steps
        if every >= 1 and trainer.global_step % every == 0:
            self._refresh_last(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        # after the epoch's validation (Lightning validates before this hook), so a resumed run
        # starts the next epoch, and the best-score bookkeeping in the file is current
        self._refresh_last(trainer)

    def _refresh_last(self, trainer: L.Trainer) -> None:
        # skipped when this step already saved a checkpoint (then last.ckpt was written with it),
        # and outside fitting, sanity checks and fast_dev_run
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
