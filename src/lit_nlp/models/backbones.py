"""Building Hugging Face models (pretrained or random-init from a config) and freezing parts
of them for the fine-tuning strategies (LoRA: lit_nlp.models.lora). Plain functions, shared by
the task modules."""

from __future__ import annotations

import functools
import logging

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn
from transformers import AutoConfig, PretrainedConfig

from lit_nlp.errors import LitNlpError

log = logging.getLogger(__name__)

FREEZING_STRATEGIES = ("full", "freeze_embeddings", "freeze_lower", "head_only")
FINETUNE_STRATEGIES = (*FREEZING_STRATEGIES, "lora")  # lora: adapters through peft (models/lora.py)


def plain_config(value):
    """DictConfig -> dict, so hyperparameters (saved in every checkpoint) stay loadable with
    torch.load(weights_only=True)."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def json_safe_config(config: dict) -> dict:
    """HF config dicts may hold torch dtypes; keep checkpoints to plain types."""
    return {k: (str(v) if isinstance(v, torch.dtype) else v) for k, v in config.items()}


def _with_attention(build, attn_implementation: str | None):
    """Call `build(attn_implementation=...)`; a model class without that kernel (some remote or
    older architectures have no SDPA path) is built with the eager attention instead of failing."""
    if not attn_implementation:
        return build()
    try:
        return build(attn_implementation=attn_implementation)
    except (ValueError, ImportError) as err:
        if attn_implementation == "eager":
            raise
        log.warning("attention %s not available for this model (%s); using eager",
                    attn_implementation, str(err).splitlines()[0])
        return build(attn_implementation="eager")


def build_hf_model(auto_class, pretrained: str | None = None, config: dict | None = None,
                   trust_remote_code: bool = False, attn_implementation: str | None = "sdpa",
                   new_weights: set[str] | None = None, **config_kwargs) -> nn.Module:
    """`auto_class` (e.g. AutoModelForSequenceClassification) from `pretrained` (hub name or
    local folder), or random-init from `config` (a dict with `model_type` plus sizes).
    `config_kwargs` (num_labels, id2label, vocab_size, ...) go into the model config.
    `attn_implementation`: "sdpa" (PyTorch's fused scaled_dot_product_attention; BERT,
    DistilBERT and T5 have it in transformers 5), "eager", or null for the library's choice.
    `new_weights`: a set that receives the names of the weights from_pretrained initialized
    because the pretrained checkpoint lacks them (a new task head)."""
    if pretrained and config:
        raise LitNlpError("set model.backbone.pretrained or model.backbone.config, not both")
    if pretrained:
        try:
            model, info = _with_attention(functools.partial(
                auto_class.from_pretrained, pretrained, trust_remote_code=trust_remote_code,
                output_loading_info=True, **config_kwargs
            ), attn_implementation)
        except OSError as err:
            raise LitNlpError(
                f"cannot load model '{pretrained}' ({str(err).splitlines()[0]}); without hub access "
                "use model=minilm (offline, pretrained) or model=bert_tiny (random init)"
            ) from None
        if new_weights is not None:
            new_weights.update(info["missing_keys"], (key for key, *_ in info["mismatched_keys"]))
        return model
    if not config or "model_type" not in config:
        raise LitNlpError("model.backbone needs `pretrained` (name or folder) or `config` with a model_type")
    config = dict(config)
    hf_config = AutoConfig.for_model(config.pop("model_type"), **config, **config_kwargs)
    return _with_attention(functools.partial(auto_class.from_config, hf_config, trust_remote_code=trust_remote_code),
                           attn_implementation)


def model_from_config_dict(auto_class, config_dict: dict, attn_implementation: str | None = "sdpa") -> nn.Module:
    """Rebuild an architecture from a saved `config.to_dict()` (weights are loaded after)."""
    config_dict = dict(config_dict)
    hf_config = AutoConfig.for_model(config_dict.pop("model_type"), **config_dict)
    return _with_attention(functools.partial(auto_class.from_config, hf_config), attn_implementation)


def _layer_stack(encoder: nn.Module, config: PretrainedConfig) -> nn.ModuleList:
    """The list of transformer blocks: BERT's encoder.layer, DistilBERT's transformer.layer,
    T5's encoder.block, RoBERTa's, ... found by size instead of by name."""
    n_layers = getattr(config, "num_hidden_layers", None) or getattr(config, "num_layers", None)
    for module in encoder.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers:
            return module
    raise LitNlpError(f"cannot find the {n_layers} transformer layers of {type(encoder).__name__} to freeze")


def _embeddings(encoder: nn.Module) -> list[nn.Module]:
    embeddings = getattr(encoder, "embeddings", None)
    if embeddings is not None:
        return [embeddings]
    return [encoder.get_input_embeddings()]


def apply_finetune_strategy(model: nn.Module, strategy: str, num_frozen_layers: int = 0,
                            encoder: nn.Module | None = None) -> None:
    """Freeze parts of `model` (requires_grad=False) for the chosen strategy:
    full (nothing), freeze_embeddings, freeze_lower (embeddings + the lowest
    `num_frozen_layers` layers), head_only (the whole encoder: feature extraction)."""
    if strategy not in FREEZING_STRATEGIES:
        raise LitNlpError(f"model.finetune={strategy!r} is not one of {', '.join(FINETUNE_STRATEGIES)}")
    encoder = encoder or model.base_model
    frozen: list[nn.Module] = []
    if strategy == "head_only":
        frozen = [encoder]
    elif strategy in ("freeze_embeddings", "freeze_lower"):
        frozen = _embeddings(encoder)
        if strategy == "freeze_lower":
            layers = _layer_stack(encoder, model.config)
            if not 0 < num_frozen_layers <= len(layers):
                raise LitNlpError(f"model.num_frozen_layers must be in 1..{len(layers)} for freeze_lower, "
                                  f"got {num_frozen_layers}")
            frozen += list(layers[:num_frozen_layers])
    for module in frozen:
        for param in module.parameters():
            param.requires_grad_(False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log.info("fine-tuning strategy %s: %s of %s parameters trainable", strategy, f"{trainable:,}", f"{total:,}")


def enable_gradient_checkpointing(model: nn.Module) -> None:
    """Keep only each layer's input during the forward pass and recompute the rest in the
    backward: activation memory drops from about layers x activations per layer to one
    layer's worth, for about a third more compute per step. Non-reentrant checkpointing works
    with DDP/FSDP and with frozen embeddings (the reentrant kind needs inputs that require grad)."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise LitNlpError(f"model.gradient_checkpointing=true: {type(model).__name__} does not support it; "
                          "set it to false")
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5 renamed it
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def task_model(auto_class, backbone: dict, hf_config: dict | None, *, finetune: str, num_frozen_layers: int,
               gradient_checkpointing: bool, trust_remote_code: bool, attn_implementation: str | None,
               facts: dict, random_init_facts: dict, encoder=None, lora: dict | None = None):
    """A task module's Hugging Face model, its config dict and its LoRA adapter (None unless
    `finetune` is lora): built from `backbone` (a hub name or path, or a config for random init,
    which `random_init_facts` complete: vocabulary and special ids from the tokenizer trained on
    the data) with the task's `facts` (labels), or rebuilt from a checkpoint's saved `hf_config`;
    then frozen per `finetune` (`encoder`: which part of the model the freezing strategies see,
    a function of the model; default its base model) or given LoRA adapters per `lora`
    (lit_nlp.models.lora), gradient-checkpointed if asked, and in train mode: from_pretrained
    returns eval mode and Lightning keeps submodules' modes, so dropout would be off for the
    whole run.

    LoRA on a pretrained base always loads `pretrained`, even when a checkpoint's `hf_config`
    is given: its checkpoints hold the adapters and the head, not the frozen base weights."""
    if finetune not in FINETUNE_STRATEGIES:
        raise LitNlpError(f"model.finetune={finetune!r} is not one of {', '.join(FINETUNE_STRATEGIES)}")
    pretrained = backbone.get("pretrained")
    new_weights: set[str] = set()
    if hf_config is None or (finetune == "lora" and pretrained):
        extra = {**facts, **(random_init_facts if backbone.get("config") else {})}
        model = build_hf_model(auto_class, pretrained, backbone.get("config"), trust_remote_code,
                               attn_implementation, new_weights=new_weights, **extra)
        hf_config = model.config.to_dict()
    else:
        model = model_from_config_dict(auto_class, hf_config, attn_implementation)
    adapter = None
    if finetune == "lora":
        from lit_nlp.models.lora import apply_lora

        adapter = apply_lora(model, lora, base=pretrained or None, new_weights=new_weights if pretrained else None)
    else:
        apply_finetune_strategy(model, finetune, num_frozen_layers, encoder=encoder(model) if encoder else None)
    if gradient_checkpointing:
        enable_gradient_checkpointing(model)
    model.train()
    return model, hf_config, adapter


def count_parameters(model: nn.Module) -> dict[str, int]:
    return {"model/params_total": sum(p.numel() for p in model.parameters()),
            "model/params_trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}

