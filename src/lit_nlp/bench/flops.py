"""Model FLOPs and MFU (model FLOPs utilisation): the FLOPs a step needs by the model's
arithmetic, whatever the kernels do, divided by what the device could do in the step time.

Per real (unpadded) token of a sequence of length s, training (forward + backward = 3x forward):
    6 x N          N = non-embedding parameters the token passes through (2 FLOPs per
                   multiply-add, x3 for fwd+bwd); lookups in embedding tables are free
  + 12 x L x s x d attention scores (QK^T) and weighted values (AV): 2 x s x d FLOPs each per
                   token per layer forward, x3 for fwd+bwd; d = heads x head width
Encoder-only (BERT, DistilBERT): N = all non-embedding parameters (the classifier head, used by
one token per sequence, is counted for every token: < 0.1% of bert-base).
Encoder-decoder (T5), source length S, target length T:
    source token:  6 x N_enc + 12 x L_enc x S x d
    target token:  6 x (N_dec + V x d_model) + 12 x L_dec x (T + S) x d
                   (decoder self-attention over T, cross-attention over S; the LM head's V x
                   d_model matmul counts even when tied to the embedding table)
Padding is not counted: a padded step does the same useful work in more time, so MFU falls.
"""

from __future__ import annotations

from torch import nn

# Dense (no sparsity) peak TFLOP/s from the vendors' spec sheets: (bf16/fp16 tensor core, TF32).
# Checked in order, so the more specific names come first. The issue's own measurement on an
# H100 SXM reached 798 TFLOP/s in a bf16 matmul, 81% of the 989 on paper.
PEAK_TFLOPS = [
    ("H100 PCIe", (756.0, 378.0)),
    ("H100", (989.0, 494.7)),       # SXM (name "NVIDIA H100 80GB HBM3")
    ("H200", (989.0, 494.7)),
    ("A100", (312.0, 156.0)),
    ("L40S", (362.0, 183.0)),
    ("L4", (121.0, 60.0)),
    ("A10", (125.0, 62.5)),
]


def peak_tflops(device_name: str, precision: str) -> float | None:
    """The device's dense peak for `precision` (bf16/16 mixed: tensor-core half precision;
    32: TF32, which lit_nlp turns on for CUDA); None for an unknown device or a CPU."""
    for key, (half, tf32) in PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return half if precision.startswith(("bf16", "16")) else tf32
    return None


def _non_embedding(module: nn.Module) -> int:
    embedding = {id(p) for m in module.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    return sum(p.numel() for p in module.parameters() if id(p) not in embedding)


def model_shape(model: nn.Module) -> dict:
    """What the FLOPs formula needs of a Hugging Face model: non-embedding parameters, layers and
    attention width, per stack for encoder-decoders."""
    config = model.config
    if config.is_encoder_decoder:
        width = config.num_heads * config.d_kv
        return {"kind": "encoder_decoder",
                "n_enc": _non_embedding(model.get_encoder()), "n_dec": _non_embedding(model.get_decoder()),
                "lm_head": config.vocab_size * config.d_model,
                "layers_enc": config.num_layers, "layers_dec": config.num_decoder_layers, "width": width}
    # DistilBERT's n_layers/dim answer to these names through the config's attribute map
    return {"kind": "encoder", "n": _non_embedding(model), "layers": config.num_hidden_layers,
            "width": config.hidden_size}


def training_flops(shape: dict, counts: dict) -> float:
    """Model FLOPs of the training steps whose batches `counts` sums up: `tokens` (real source
    tokens), `tokens_sq` (sum over sequences of length^2) and, for encoder-decoders,
    `target_tokens`, `target_sq` and `cross` (sum of source length x target length)."""
    if shape["kind"] == "encoder":
        return 6 * shape["n"] * counts["tokens"] + 12 * shape["layers"] * shape["width"] * counts["tokens_sq"]
    source = 6 * shape["n_enc"] * counts["tokens"] + 12 * shape["layers_enc"] * shape["width"] * counts["tokens_sq"]
    target = (6 * (shape["n_dec"] + shape["lm_head"]) * counts["target_tokens"]
              + 12 * shape["layers_dec"] * shape["width"] * (counts["target_sq"] + counts["cross"]))
    return source + target
