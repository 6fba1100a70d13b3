"""Padding an encoder's inputs into a batch, as every task's collate does."""

from __future__ import annotations

import torch

from lit_nlp.data.shapes import padded_length

# an encoder's inputs and the value each is padded with (input_ids: the tokenizer's pad id)
INPUT_PADDING = (("input_ids", None), ("attention_mask", 0), ("token_type_ids", 0))


def pad_inputs(features: list[dict], pad_token_id: int, pad_to_multiple_of: int | None = None,
               buckets: list[int] | None = None) -> tuple[dict[str, torch.Tensor], int]:
    """The rows' input_ids, attention_mask and (where the tokenizer makes them) token_type_ids as
    tensors padded to the batch's longest row (dynamic padding), rounded up to
    `pad_to_multiple_of`, or up to one of `buckets` (static shapes); and that length, for the
    task's own padded columns."""
    longest = padded_length(max(len(f["input_ids"]) for f in features), pad_to_multiple_of, buckets)
    batch = {}
    for key, value in INPUT_PADDING:
        if key in features[0]:
            value = pad_token_id if value is None else value
            batch[key] = torch.tensor([f[key] + [value] * (longest - len(f[key])) for f in features])
    return batch, longest
