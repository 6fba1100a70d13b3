"""Classification text to tensors: tokenize (sentence or sentence pair) and pad a batch. Used by
the data module, predict.py and the benchmark alike."""

from __future__ import annotations

import torch

from lit_nlp.codecs.padding import pad_inputs


def tokenize(tokenizer, texts: list[str], pairs: list[str] | None, max_length: int) -> dict:
    """Truncate to max_length, no padding (the collator pads each batch to its own longest)."""
    return tokenizer(texts, pairs, truncation=True, max_length=max_length)


def pad_batch(features: list[dict], pad_token_id: int, pad_to_multiple_of: int | None = None,
              buckets: list[int] | None = None) -> dict:
    """Stack a list of tokenized rows into padded tensors: to the batch's longest row (dynamic
    padding), rounded up to `pad_to_multiple_of`, or up to one of `buckets` (static shapes)."""
    batch, _ = pad_inputs(features, pad_token_id, pad_to_multiple_of, buckets)
    if "labels" in features[0]:
        batch["labels"] = torch.tensor([f["labels"] for f in features])
    return batch
