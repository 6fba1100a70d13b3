"""Reseed every epoch, so a run resumed from an end-of-epoch checkpoint draws the same
dropout masks as a run that never stopped (the global RNG state is not in the checkpoint)."""

from __future__ import annotations

import lightning as L
from lightning.fabric.utilities.seed import seed_everything


class EpochSeed(L.Callback):
    def __init__(self, seed: int):
        self.seed = seed

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # distinct per epoch and per rank, the same on every restart
        seed_everything(self.seed + 1000 * trainer.current_epoch + trainer.global_rank, verbose=False)
