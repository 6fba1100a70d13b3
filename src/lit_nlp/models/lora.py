"""`model.finetune=lora`: LoRA adapters through peft, for every task, applied in one place
(`backbones.task_model`, which every task module builds its model through).

The base model stays frozen; low-rank adapters (rank `r`, scale `alpha / r`) on the attention
projections train, and so does the task's head (classifier, span head, tagger) in full, through
peft's `modules_to_save`, so that peft's own adapter folder holds it too. On MiniLM (22.7M
parameters) r=8 on query/key/value/output of its 6 layers is 6 x 4 x (384 x 8 x 2) = 147,456
adapter parameters plus a 770-parameter classifier: 0.65% of the model trains.

A checkpoint holds what trains (adapter, head, their optimizer state) and the base's name and a
sha256 of its weights, not the frozen base: a LoRA checkpoint of MiniLM weighs about 2 MB
instead of 270. Loading one (resume, trainer.test with the best checkpoint, predict.py) builds
the base from `model.backbone.pretrained` again, checks the hash and fills the frozen weights in.
A random-init base cannot be rebuilt, so there its weights stay in every checkpoint.

The task module keeps the Hugging Face model itself as `self.model` (peft replaced its target
layers in place), so forward, generate, the optimizer groups and compile see the same object as
for full fine-tuning; the PeftModel around it lives here, outside the module's state dict, for
the export: the adapter merged into a plain Hugging Face model, and the adapter in peft's format.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
from pathlib import Path

import torch
from torch import nn

from lit_nlp.errors import LitNlpError, raise_if_any

log = logging.getLogger(__name__)

# model.lora's keys and their defaults (conf/model/lora/default.yaml states the same values for
# the command line; these serve modules built without a config, as the tests build them)
SETTINGS = {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": None, "use_dora": False, "use_rslora": False}

# target_modules: null -> the attention projections, by the names each architecture gives them
# (matched as peft matches a list: a module's whole name or its end after a dot). Another
# architecture gets peft's "all-linear" (every linear layer but the output layer).
ATTENTION_PROJECTIONS = {
    "BERT family": ("query", "key", "value", "attention.output.dense"),  # BERT, MiniLM, RoBERTa, ELECTRA
    "DistilBERT": ("q_lin", "k_lin", "v_lin", "out_lin"),
    "T5": ("q", "k", "v", "o"),
}


def require_peft():
    try:
        import peft
    except ImportError:
        raise LitNlpError("model.finetune=lora needs peft, a dependency of lit_nlp: "
                          "pip install 'peft>=0.18,<0.22' (or pip install -e . again)") from None
    return peft


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def lora_problems(lora: dict | None) -> list[str]:
    """What is wrong with `model.lora`, one phrase per key (config_checks reports them before
    anything is built; `lora_settings` raises them for a module built without a config)."""
    lora = dict(lora or {})
    problems = [f"model.lora.{key} is not a LoRA setting ({', '.join(SETTINGS)})" for key in lora if key not in SETTINGS]
    settings = {**SETTINGS, **lora}
    r, alpha, dropout, targets = settings["r"], settings["alpha"], settings["dropout"], settings["target_modules"]
    if not (_whole(r) and r >= 1):
        problems.append(f"model.lora.r must be a whole number >= 1 (the adapters' rank, e.g. 8), got {r!r}")
    if not (_number(alpha) and alpha > 0):
        problems.append(f"model.lora.alpha must be a number > 0 (the adapters' scale is alpha / r), got {alpha!r}")
    if not (_number(dropout) and 0 <= dropout < 1):
        problems.append(f"model.lora.dropout must be a number in [0, 1), got {dropout!r}")
    if not (targets is None or (isinstance(targets, str) and targets)
            or (isinstance(targets, (list, tuple)) and targets and all(isinstance(t, str) and t for t in targets))):
        problems.append(f"model.lora.target_modules must be null (the attention projections), all-linear, a "
                        f"regular expression or a list of module names, got {targets!r}")
    for key in ("use_dora", "use_rslora"):
        if not isinstance(settings[key], bool):
            problems.append(f"model.lora.{key} must be true or false, got {settings[key]!r}")
    return problems


def lora_settings(lora: dict | None) -> dict:
    """`model.lora` completed with the defaults, or one LitNlpError naming every bad key."""
    raise_if_any(lora_problems(lora))
    settings = {**SETTINGS, **(lora or {})}
    if isinstance(settings["target_modules"], tuple):
        settings["target_modules"] = list(settings["target_modules"])
    return settings


def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)


def _matches_head(name: str, head: str) -> bool:
    return name == head or name.startswith(head + ".")


def head_modules(model: nn.Module, new_weights: set[str] | None) -> list[str]:
    """The modules that train in full beside the adapters: the task's head (the model's
    children outside its base model: `classifier`, `qa_outputs`, DistilBERT's `pre_classifier`;
    none for T5, whose LM head is its pretrained, tied vocabulary projection), and any module
    whose weights from_pretrained had to initialize (`new_weights`): those are random at every
    build, so they must train and be saved, or a checkpoint could not be loaded again."""
    base = model.base_model
    heads = [] if base is model else [name for name, child in model.named_children()
                                      if child is not base and next(child.parameters(), None) is not None]
    parameters = dict(model.named_parameters())
    for weight in sorted(w for w in new_weights or () if w in parameters):  # not a missing buffer
        owner = weight.rsplit(".", 1)[0]
        if not any(_matches_head(owner, h) for h in heads):
            heads.append(owner)
    return heads


def resolve_targets(model: nn.Module, targets, heads: list[str]):
    """`model.lora.target_modules` for this model: null -> its attention projections (see
    ATTENTION_PROJECTIONS); a list must name modules of the model outside the head, each entry;
    a string other than all-linear is a regular expression over full module names."""
    names = [name for name, _ in model.named_modules() if name and not any(_matches_head(name, h) for h in heads)]
    linear = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                     if isinstance(module, nn.Linear) and not any(_matches_head(name, h) for h in heads)})
    if targets is None:
        for projections in ATTENTION_PROJECTIONS.values():
            if all(any(_matches(name, p) for name in names) for p in projections):
                return list(projections)
        log.info("LoRA: no known attention projection names in %s; adapting all linear layers",
                 type(model).__name__)
        return "all-linear"
    if targets == "all-linear":
        return targets
    if isinstance(targets, str):
        if not any(re.fullmatch(targets, name) for name in names):
            raise LitNlpError(f"model.lora.target_modules={targets!r} matches no module of {type(model).__name__}; "
                              f"its linear layers are named {', '.join(linear)}")
        return targets
    missing = [t for t in targets if not any(_matches(name, t) for name in names)]
    if missing:
        raise LitNlpError(f"model.lora.target_modules names {missing}, which {type(model).__name__} does not have "
                          f"(outside its head); its linear layers are named {', '.join(linear)}")
    return list(targets)


def weights_sha256(model: nn.Module) -> str:
    """A hash of the frozen base weights (names, dtypes, shapes, bytes), in name order, leaving
    out the untrained originals that peft keeps beside the trained head copies. MiniLM's 90 MB
    hash in about 0.2 s."""
    digest = hashlib.sha256()
    for name, param in sorted(model.named_parameters(), key=lambda item: item[0]):
        if param.requires_grad or ".original_module." in name:
            continue
        tensor = param.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{tensor.dtype}|{tuple(param.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().data)
    return digest.hexdigest()


class LoraAdapter:
    """The PeftModel around a task module's model, and what a checkpoint needs to rebuild the
    base: `base` (model.backbone.pretrained; None for a random-init base, which every checkpoint
    then holds) and the sha256 of its weights. A plain object, not an nn.Module, so that the
    task module's state dict sees the model once."""

    def __init__(self, peft_model, base: str | None, settings: dict, targets, heads: list[str]):
        self.peft_model = peft_model
        self.base = base
        self.settings = settings
        self.targets = targets
        self.heads = heads
        self.base_sha256 = weights_sha256(peft_model.base_model.model) if base else None

    def describe(self) -> str:
        s = self.settings
        targets = self.targets if isinstance(self.targets, str) else ", ".join(self.targets)
        extras = "".join(f", {k}" for k in ("use_dora", "use_rslora") if s[k])
        heads = f"; in full: {', '.join(self.heads)}" if self.heads else ""
        return f"lora (r={s['r']}, alpha={s['alpha']}, dropout={s['dropout']}{extras}, on {targets}{heads})"

    # ---------------------------------------------------------------- checkpoints
    def strip_checkpoint(self, checkpoint: dict, module: nn.Module) -> None:
        """Drop the frozen base weights from a checkpoint's state dict (unless the base is
        random-init) and record which base it belongs to."""
        checkpoint["lora"] = {"base": self.base, "base_sha256": self.base_sha256, "base_saved": self.base is None}
        if self.base is None:
            return
        frozen = {name for name, p in module.named_parameters(remove_duplicate=False) if not p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k not in frozen}

    def complete_checkpoint(self, checkpoint: dict, module: nn.Module) -> None:
        """Before a checkpoint's state dict is loaded: check that it was trained on this base
        and fill the frozen base weights in from the model as built (strict loading still
        catches any other missing key)."""
        record = checkpoint.get("lora")
        if record is None or record.get("base_saved"):
            return  # a checkpoint with every weight
        if record.get("base_sha256") != self.base_sha256:
            raise LitNlpError(
                f"this LoRA checkpoint was trained on base model {record.get('base')} (weights sha256 "
                f"{str(record.get('base_sha256'))[:12]}), but model.backbone.pretrained={self.base} has other weights "
                f"({str(self.base_sha256)[:12]}); load it with the base it was trained on")
        state = checkpoint["state_dict"]
        frozen = {name for name, p in module.named_parameters(remove_duplicate=False) if not p.requires_grad}
        for name, tensor in module.state_dict().items():
            if name in frozen and name not in state:
                state[name] = tensor

    # ---------------------------------------------------------------- export
    def merged_model(self) -> nn.Module:
        """A copy of the model with the adapters merged into the base weights and the trained
        head in place of the original: a plain Hugging Face model (the training model is left
        as it is; the copy costs one model's memory for the time of the export)."""
        return copy.deepcopy(self.peft_model).merge_and_unload()

    def save_adapter(self, directory: str | Path) -> None:
        """The adapter and the head in peft's format: `PeftModel.from_pretrained(base, directory)`."""
        self.peft_model.save_pretrained(str(directory))


def apply_lora(model: nn.Module, lora: dict | None, base: str | None, new_weights: set[str] | None) -> LoraAdapter:
    """Wrap `model` with LoRA adapters per `lora` (model.lora), in place: afterwards only the
    adapters and the head modules train. `base`: the pretrained name or folder the model was
    loaded from (None: random init); `new_weights`: what from_pretrained initialized."""
    peft = require_peft()
    settings = lora_settings(lora)
    if base is None:
        log.warning("model.finetune=lora on a random-init model (no model.backbone.pretrained): LoRA adapts "
                    "pretrained weights, so a random frozen base learns little; and since it cannot be rebuilt, "
                    "every checkpoint saves its weights too")
    heads = head_modules(model, new_weights)
    targets = resolve_targets(model, settings["target_modules"], heads)
    config = peft.LoraConfig(r=settings["r"], lora_alpha=settings["alpha"], lora_dropout=settings["dropout"],
                             target_modules=targets, modules_to_save=heads or None,
                             use_dora=settings["use_dora"], use_rslora=settings["use_rslora"])
    peft_model = peft.get_peft_model(model, config)
    adapter = LoraAdapter(peft_model, base, settings, targets, heads)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log.info("fine-tuning strategy %s: %s of %s parameters trainable (%.2f%%)", adapter.describe(),
             f"{trainable:,}", f"{total:,}", 100 * trainable / total)
    return adapter
