"""Stop a run whose loss turns NaN or inf, naming the step and the likely cause, before any
checkpoint can save the broken weights (the last good checkpoint stays the newest one).

The check stays on the device and is read every `check_every_n_steps` steps and before every
validation (checkpoints are written after validation), so the step itself never waits for the
host; the reported step is the first bad one, not the one where it was noticed."""

from __future__ import annotations

import lightning as L
import torch

from lit_nlp.errors import LitNlpError


class NaNGuard(L.Callback):
    def __init__(self, check_every_n_steps: int = 50):
        self.check_every_n_steps = check_every_n_steps
        self._first_bad: torch.Tensor | None = None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module, batch, batch_idx) -> None:
        # the step this batch's loss belongs to (global_step counts the optimizer step after it)
        self._step = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        if self._first_bad is None or self._first_bad.device != loss.device:
            self._first_bad = torch.tensor(-1, device=loss.device)
        bad = ~torch.isfinite(loss.detach())
        # the step goes in as a scalar kernel argument: torch.tensor(step, device=cuda) would be
        # a blocking host-to-device copy every step
        self._first_bad = self._first_bad.masked_fill(bad & (self._first_bad < 0), self._step)
        if trainer.global_step % self.check_every_n_steps == 0:
            self._check(trainer, pl_module)

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._check(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._check(trainer, pl_module)

    def _check(self, trainer: L.Trainer, pl_module) -> None:
        if self._first_bad is None:
            return
        step = int(self._first_bad)
        if step < 0:
            return
        precision = str(trainer.precision)
        cause = ("fp16 overflow: use trainer.precision=bf16-mixed or 32-true" if precision.startswith("16")
                 else "a learning rate too high for this model (lower model.optimizer.lr) or bad input data")
        ckpt = trainer.checkpoint_callback
        last = (ckpt.last_model_path or ckpt.best_model_path) if ckpt else ""
        raise LitNlpError(f"the training loss became NaN/inf at step {step}; likely cause: {cause}; "
                          f"last good checkpoint: {last or 'none yet'}")
