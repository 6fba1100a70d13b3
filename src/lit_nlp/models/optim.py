"""Optimizer parameter groups and learning-rate schedules, shared by both task modules."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from lit_nlp.errors import LitNlpError

SCHEDULES = ("linear", "cosine", "constant")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights with decay; biases and normalisation weights (LayerNorm, T5's RMS
    norm: all 1-D tensors) without, since decaying them only pulls them off their scale."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if _is_bias_or_norm(name, param) else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def _is_bias_or_norm(name: str, param: torch.Tensor) -> bool:
    if "_fsdp_wrapped_module." in name:
        # FSDP (use_orig_params) has turned every parameter into a flat 1-D view of its shard,
        # so the names decide: Hugging Face calls these `*.bias` and `*norm*.weight`
        return name.endswith("bias") or "norm" in name.lower()
    return param.ndim < 2


def warmup_schedule(optimizer: torch.optim.Optimizer, num_training_steps: int, name: str = "linear",
                    warmup_ratio: float = 0.0, warmup_steps: int | None = None) -> LambdaLR:
    """Linear warm-up over `warmup_steps` (or `warmup_ratio` of all steps), then linear decay
    to 0, half-cosine decay to 0, or constant."""
    if name not in SCHEDULES:
        raise LitNlpError(f"model.scheduler.name={name!r} is not one of {', '.join(SCHEDULES)}")
    warmup = warmup_steps if warmup_steps is not None else int(warmup_ratio * num_training_steps)
    total = max(num_training_steps, 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if name == "constant":
            return 1.0
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        return 1.0 - progress if name == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


# torch optimizers with a fused kernel (one pass over all parameters instead of several
# kernels per tensor) on CUDA and, since torch 2.4, on CPU, and a multi-tensor `foreach` path
FUSABLE = (torch.optim.AdamW, torch.optim.Adam)


def _fused_devices() -> tuple[str, ...]:
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
        return tuple(_get_fused_kernels_supported_devices())
    except ImportError:  # an older torch: CUDA only
        return ("cuda",)


def kernel_flags(optimizer_class, params: list[torch.Tensor]) -> dict:
    """`fused=True` when every parameter is on one device type that has the fused kernel (CUDA,
    CPU, ...), else `foreach=True`, for AdamW/Adam; none for other optimizers (Adafactor, ...).
    Called once the module is on its device. On 2 CPU cores the per-tensor AdamW arithmetic
    (sqrt, addcdiv, lerp over 105 tensors) took a quarter of a MiniLM step with `foreach`."""
    if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, FUSABLE)):
        return {}
    device_types = {p.device.type for p in params}
    if len(device_types) == 1 and device_types <= set(_fused_devices()) and all(p.is_floating_point() for p in params):
        return {"fused": True}
    return {"foreach": True}


def build_optimization(model: nn.Module, optimizer: dict, scheduler: dict, num_training_steps: int) -> dict:
    """What `configure_optimizers` returns: the configured optimizer (`_target_`, e.g. AdamW
    or Adafactor) over `param_groups`, stepped by `warmup_schedule` every step. AdamW gets the
    fused or foreach kernel (`kernel_flags`) unless the config sets `fused`/`foreach` itself."""
    from hydra.utils import get_class, instantiate

    optimizer = dict(optimizer)
    weight_decay = optimizer.pop("weight_decay", 0.0)
    groups = param_groups(model, weight_decay)
    if "fused" not in optimizer and "foreach" not in optimizer:
        params = [p for group in groups for p in group["params"]]
        optimizer.update(kernel_flags(get_class(optimizer["_target_"]), params))
    built = instantiate(optimizer, _partial_=True)(groups)
    schedule = warmup_schedule(built, num_training_steps, **scheduler)
    return {"optimizer": built, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
