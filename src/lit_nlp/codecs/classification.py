"""Classification text to tensors: tokenize (sentence or sentence pair) and pad a batch. Used by
the data module, predict.py and the benchmark alike."""

from __future__ import annotations

import torch

from lit_nlp.codecs.padding import pad_inputs


def tokenize(tokenizer, texts: list[str], pairs: list[str] | None, max_length: int) -> dict:
    """Truncate to max_length, no padding (the collator pads each batch to its own longest)."""
    return tokenizer(texts, pairs, truncation=True, max_length=max_length)


def tokenize_to_arrow(tokenizer, texts: list[str], pairs: list[str] | None, max_length: int) -> dict:
    """`tokenize` for building the cache: the same ids, as Arrow list arrays typed as datasets
    types them (input_ids int32, token_type_ids and attention_mask int8). transformers turns
    every encoding into a dict of Python lists (19 of the 46 us an SST-2 row took on this
    2-core machine); here the fast tokenizer's encodings go into flat arrays instead, and
    offsets, which nothing stores, are not computed. Equal to `tokenize` (tests/codecs)."""
    from itertools import chain

    import numpy as np
    import pyarrow as pa

    if not texts:
        return {key: pa.array([], type=pa.list_(pa.int32() if key == "input_ids" else pa.int8()))
                for key in tokenize(tokenizer, [""], None, max_length)}
    # one row through transformers sets the backend's truncation, padding and special-token
    # handling exactly as a call with these arguments does
    tokenize(tokenizer, texts[:1], pairs[:1] if pairs is not None else None, max_length)
    inputs = list(zip(texts, pairs)) if pairs is not None else list(texts)
    encodings = tokenizer.backend_tokenizer.encode_batch_fast(inputs, add_special_tokens=True)

    def column(values: list[list[int]], dtype) -> pa.ListArray:
        offsets = np.zeros(len(values) + 1, dtype=np.int32)
        np.cumsum(np.fromiter(map(len, values), dtype=np.int32, count=len(values)), out=offsets[1:])
        flat = np.fromiter(chain.from_iterable(values), dtype=dtype, count=int(offsets[-1]))
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))

    out = {"input_ids": column([e.ids for e in encodings], np.int32)}
    if "token_type_ids" in tokenizer.model_input_names:
        out["token_type_ids"] = column([e.type_ids for e in encodings], np.int8)
    if "attention_mask" in tokenizer.model_input_names:
        out["attention_mask"] = column([e.attention_mask for e in encodings], np.int8)
    return out


def pad_batch(features: list[dict], pad_token_id: int, pad_to_multiple_of: int | None = None,
              buckets: list[int] | None = None) -> dict:
    """Stack a list of tokenized rows into padded tensors: to the batch's longest row (dynamic
    padding), rounded up to `pad_to_multiple_of`, or up to one of `buckets` (static shapes)."""
    batch, _ = pad_inputs(features, pad_token_id, pad_to_multiple_of, buckets)
    if "labels" in features[0]:
        batch["labels"] = torch.tensor([f["labels"] for f in features])
    return batch
