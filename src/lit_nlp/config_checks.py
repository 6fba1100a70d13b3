"""Types and ranges of the config keys users type most, checked before anything is built:
`model.optimizer.lr=abc` would otherwise reach AdamW and end in a torch traceback, and
`data.batch_size=0` in a DataLoader's. Every problem is collected and reported in one line."""

from __future__ import annotations

import math

from omegaconf import DictConfig, OmegaConf

from lit_nlp.errors import raise_if_any


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value) -> bool:
    # an int, as Hydra reads `32`; `32.0` would reach the DataLoader as a float and fail there
    return isinstance(value, int) and not isinstance(value, bool)


# key -> (test, what it must be); a key that the composed config lacks or sets to null is skipped
CHECKS = {
    "seed": (_whole, "a whole number"),
    "model.optimizer.lr": (lambda v: _number(v) and v > 0, "a positive number (e.g. 5e-5)"),
    "model.optimizer.weight_decay": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "model.scheduler.warmup_ratio": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "model.threshold": (lambda v: _number(v) and 0 < v < 1, "a number between 0 and 1"),
    "data.batch_size": (lambda v: _whole(v) and v >= 1, "a whole number >= 1"),
    "data.eval_batch_size": (lambda v: _whole(v) and v >= 1, "a whole number >= 1"),
    "data.max_length": (lambda v: _whole(v) and v >= 2, "a whole number >= 2"),
    "data.max_source_length": (lambda v: _whole(v) and v >= 2, "a whole number >= 2"),
    "data.max_target_length": (lambda v: _whole(v) and v >= 1, "a whole number >= 1"),
    "data.val_ratio": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "data.test_ratio": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "data.num_workers": (lambda v: _whole(v) and v >= 0, "a whole number >= 0"),
    "data.num_proc": (lambda v: _whole(v) and v >= 1, "a whole number >= 1"),
    "trainer.max_epochs": (lambda v: _whole(v) and v >= -1, "a whole number (-1: no limit)"),
    "trainer.max_steps": (lambda v: _whole(v) and v >= -1, "a whole number (-1: no limit)"),
    "trainer.accumulate_grad_batches": (lambda v: _whole(v) and v >= 1, "a whole number >= 1"),
    "trainer.gradient_clip_val": (lambda v: _number(v) and v >= 0, "a number >= 0"),
}


def check_config(cfg: DictConfig) -> None:
    """Raise one LitNlpError naming every key above whose value is of the wrong type or range,
    and an accelerator this machine does not have."""
    problems = []
    for key, (test, expected) in CHECKS.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and not test(value):
            problems.append(f"{key} must be {expected}, got {value!r}")
    problems.append(device_problem(cfg))
    problems.extend(lora_problems_of(cfg))
    raise_if_any(problems, prefix="config: ")


def lora_problems_of(cfg: DictConfig) -> list[str]:
    """With model.finetune=lora: the model.lora keys out of range, and a sharded strategy (FSDP's
    flat parameters and DeepSpeed's engine write checkpoints of their own, which the adapter-only
    checkpoints of models/lora.py are not written for)."""
    if OmegaConf.select(cfg, "model.finetune", default=None) != "lora":
        return []
    from lit_nlp.models.lora import lora_problems

    lora = OmegaConf.select(cfg, "model.lora", default=None)
    problems = lora_problems(OmegaConf.to_container(lora, resolve=True) if lora is not None else None)
    strategy = OmegaConf.select(cfg, "trainer.strategy", default=None)
    name = str(strategy.get("_target_", "") if isinstance(strategy, DictConfig) else strategy or "").lower()
    if "fsdp" in name or "deepspeed" in name:
        problems.append("model.finetune=lora trains on one device or under DDP (trainer=ddp, ddp_cpu); "
                        "FSDP and DeepSpeed are not supported with it: use trainer=ddp")
    return problems


def device_problem(cfg: DictConfig) -> str | None:
    """`trainer=gpu` on a machine (or a torch build) without CUDA, or more GPUs than it has:
    Lightning says "No supported gpu backend found!" only once the data is prepared."""
    import torch

    accelerator = str(OmegaConf.select(cfg, "trainer.accelerator", default="auto") or "auto")
    devices = OmegaConf.select(cfg, "trainer.devices", default="auto")
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            return (f"trainer.accelerator={accelerator} needs a CUDA GPU and torch {torch.__version__} ({build}) "
                    "sees none; use trainer=cpu (or trainer.accelerator=auto)")
        count = torch.cuda.device_count()
        if _whole(devices) and devices > count:
            return f"trainer.devices={devices} but this machine has {count} GPU(s); use trainer.devices={count} or -1"
    if accelerator == "mps" and not torch.backends.mps.is_available():
        return "trainer.accelerator=mps needs Apple's Metal backend, which this torch does not see; use trainer=cpu"
    return None
