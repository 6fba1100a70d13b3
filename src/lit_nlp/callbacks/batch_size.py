"""Lightning's batch-size finder, for the training batch only."""

from __future__ import annotations

from lightning.pytorch.callbacks import BatchSizeFinder


class TrainBatchSizeFinder(BatchSizeFinder):
    """Before training, doubles `data.batch_size` while a few steps still fit in memory and
    trains with the largest that did. Lightning's finder would search again before `test`,
    but evaluation reads `data.eval_batch_size`, which it does not change: a search for
    nothing, so it stays off there."""

    def on_test_start(self, trainer, pl_module) -> None:
        pass

    def on_predict_start(self, trainer, pl_module) -> None:
        pass
