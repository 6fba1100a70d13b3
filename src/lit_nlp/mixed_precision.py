"""Mixed precision (bf16-mixed, 16-mixed) that works with fused optimizers and gradient clipping.

Lightning's own AMP plugin refuses to clip gradients for any optimizer that "handles
unscaling" (`_step_supports_amp_scaling`: torch's fused AdamW/Adam), even in bf16-mixed, where no
scaler exists and nothing needs unscaling: with the defaults (fused AdamW on CUDA and CPU,
`trainer.gradient_clip_val: 1.0`) every mixed-precision run stopped at its first optimizer step.

The semantics here:
- bf16-mixed: no scaler; gradients are clipped as they are.
- 16-mixed: the loss is scaled; after the backward the scaler unscales the gradients in place
  (and records infs on the device), the gradients are clipped, and `scaler.step` runs the
  optimizer. A fused optimizer then gets `found_inf` and skips its update on the device when a
  gradient overflowed, with no host sync; the scaler backs off. Without clipping, a fused
  optimizer is left to unscale inside its own kernel (one pass fewer).

`precision_plugin(trainer_cfg)` decides, from the trainer config, whether this plugin replaces
Lightning's for a run; `train()` and the benchmark both go through it.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from lightning.pytorch.plugins.precision import MixedPrecision as LightningMixedPrecision
from lightning.pytorch.plugins.precision import Precision
from lightning.pytorch.utilities import GradClipAlgorithmType

log = logging.getLogger(__name__)

# spellings Lightning accepts for the two mixed modes
MIXED = {"16-mixed": "16-mixed", "16": "16-mixed", "bf16-mixed": "bf16-mixed", "bf16": "bf16-mixed"}
# strategies that bring a precision plugin of their own (sharded scaler, DeepSpeed's engine)
OWN_PRECISION = ("fsdp", "deepspeed")


def _handles_unscaling(optimizer) -> bool:
    return bool(getattr(optimizer, "_step_supports_amp_scaling", False))


class MixedPrecision(LightningMixedPrecision):
    """Lightning's MixedPrecision with clipping allowed for fused optimizers (see module doc)."""

    def optimizer_step(self, optimizer, model, closure, **kwargs: Any) -> Any:
        if self.scaler is None:  # bf16: the plain path, which clips in `_after_closure`
            return Precision.optimizer_step(self, optimizer, model=model, closure=closure, **kwargs)
        closure_result = closure()
        # automatic optimization returns None when training_step skipped the batch: no backward ran
        skipped = closure_result is None and model.automatic_optimization
        if not skipped and (not _handles_unscaling(optimizer) or self._clipping(model)):
            self.scaler.unscale_(optimizer)  # clipping must see the true gradients
        self._after_closure(model, optimizer)
        if skipped:
            return closure_result
        step_output = self.scaler.step(optimizer, **kwargs)
        self.scaler.update()
        return step_output

    @staticmethod
    def _clipping(model) -> bool:
        trainer = getattr(model, "_trainer", None)
        return bool(trainer is not None and trainer.gradient_clip_val)

    def clip_gradients(self, optimizer, clip_val: int | float = 0.0,
                       gradient_clip_algorithm: GradClipAlgorithmType = GradClipAlgorithmType.NORM) -> None:
        # the gradients are already unscaled (or were never scaled): plain clipping is right
        Precision.clip_gradients(self, optimizer, clip_val, gradient_clip_algorithm)


def _device_type(accelerator: str) -> str | None:
    accelerator = str(accelerator).lower()
    if accelerator in ("gpu", "cuda"):
        return "cuda"
    if accelerator == "cpu":
        return "cpu"
    if accelerator == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return None if mps is not None and mps.is_available() else "cpu"
    return None  # mps, tpu, ...: Lightning's own plugins


def _own_precision_strategy(strategy) -> bool:
    if strategy is None:
        return False
    name = strategy if isinstance(strategy, str) else str(strategy.get("_target_", ""))
    return any(word in name.lower() for word in OWN_PRECISION)


def precision_plugin(precision, accelerator: str = "auto", strategy=None) -> MixedPrecision | None:
    """Our MixedPrecision for a mixed `precision` on CUDA or CPU under the single-device or DDP
    strategies; None where Lightning's choice stands (full precision, FSDP, DeepSpeed, MPS...).
    On CPU, 16-mixed is real fp16 autocast with a CPU GradScaler (Lightning itself would switch
    it to bf16), so the scaler path runs, and is tested, without a GPU."""
    mode = MIXED.get(str(precision))
    device = _device_type(accelerator)
    if mode is None or device is None or _own_precision_strategy(strategy):
        return None
    return MixedPrecision(mode, device=device)


def precision_arguments(trainer_cfg, plugins: list) -> dict:
    """Keyword arguments for the Trainer (trainer_args.build_trainer): with our plugin, `precision` goes
    (Lightning refuses both) and the plugin joins `plugins` (already instantiated); {} otherwise."""
    plugin = precision_plugin(trainer_cfg.get("precision"), trainer_cfg.get("accelerator", "auto"),
                              trainer_cfg.get("strategy"))
    if plugin is None:
        return {}
    return {"precision": None, "plugins": [*plugins, plugin]}
