"""Training speed and learning rate, logged without a host-device sync of their own: batch
sizes are read from tensor shapes, time from the host clock, and both are logged only on the
steps Lightning sends to the loggers anyway."""

from __future__ import annotations

import time

import lightning as L

from lit_nlp.data.shapes import real_rows


class Throughput(L.Callback):
    """Logs `train/samples_per_sec` (over the last `log_every_n_steps` steps) and `lr`, and
    keeps whole-fit totals (`train_samples`, `train_seconds`) for metrics.json; the totals are in
    every checkpoint, so a resumed run reports the whole run's, not only what it trained itself."""

    def __init__(self):
        self.train_samples = 0
        self.train_seconds = 0.0
        self._window_samples = 0
        self._window_start: float | None = None
        self._epoch_start: float | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        # a run resumed mid-epoch gets no on_train_epoch_start for the epoch it finishes
        self.on_train_epoch_start(trainer, pl_module)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_start = self._window_start = time.perf_counter()
        self._window_samples = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # at each step every rank trains a batch of the same size (data/sampler.py), so the
        # whole job's rate is world_size times this rank's
        n = real_rows(batch, batch["input_ids"].shape[0]) * trainer.world_size  # filler rows are no samples
        self.train_samples += n
        self._window_samples += n
        # only on the steps whose metrics go to the loggers: on a GPU, logging a Python number
        # copies it to the device, and that copy blocks the host until the queued work is done
        if (trainer.global_step % trainer.log_every_n_steps) == 0:
            now = time.perf_counter()
            elapsed = now - self._window_start
            if elapsed > 0:
                pl_module.log("train/samples_per_sec", self._window_samples / elapsed, on_step=True, on_epoch=False)
            self._window_start, self._window_samples = now, 0
            pl_module.log("lr", trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._epoch_start is not None:
            self.train_seconds += time.perf_counter() - self._epoch_start
            self._epoch_start = None

    def state_dict(self) -> dict:
        # a mid-epoch checkpoint also counts the open epoch's seconds so far
        open_epoch = time.perf_counter() - self._epoch_start if self._epoch_start is not None else 0.0
        return {"train_samples": self.train_samples, "train_seconds": self.train_seconds + open_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.train_samples = state["train_samples"]
        self.train_seconds = state["train_seconds"]

    def summary(self) -> dict:
        rate = self.train_samples / self.train_seconds if self.train_seconds else 0.0
        return {"train/samples": self.train_samples, "train/seconds": round(self.train_seconds, 3),
                "train/samples_per_sec": round(rate, 2)}
