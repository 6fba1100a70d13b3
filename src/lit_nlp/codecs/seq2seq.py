"""Text-to-text rows to tensors: fill the source template (truncating one column), tokenize, pad
sources and targets. Used by the data module, predict.py and the benchmark alike."""

from __future__ import annotations

import string

import torch

from lit_nlp.codecs.common import IGNORE_INDEX
from lit_nlp.data.shapes import padded_length


def template_fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def encode_sources(tokenizer, rows: list[dict], template: str, truncate_column: str | None,
                   max_length: int) -> dict:
    """Tokenize filled templates; a source longer than `max_length` loses tokens from the end
    of `truncate_column` only (cut at a token boundary found through the offsets)."""
    texts = [template.format(**row) for row in rows]
    if truncate_column:
        prefix = template.split("{" + truncate_column + "}")[0]
        # untruncated on purpose (to find the excess), so silence the too-long warning
        enc = tokenizer(texts, return_offsets_mapping=True, verbose=False)
        for i, ids in enumerate(enc["input_ids"]):
            excess = len(ids) - max_length
            if excess <= 0:
                continue
            row = dict(rows[i])
            start = len(prefix.format(**row))
            end = start + len(row[truncate_column])
            inside = [a for a, b in enc["offset_mapping"][i] if start <= a and b <= end and b > a]
            keep = len(inside) - excess
            row[truncate_column] = row[truncate_column][: inside[keep] - start].rstrip() if keep > 0 else ""
            texts[i] = template.format(**row)
    # truncation=True still guards the rare case where the template alone is too long
    return tokenizer(texts, truncation=True, max_length=max_length)


def pad_seq2seq(features: list[dict], pad_token_id: int, pad_to_multiple_of: int | None = None,
                buckets: list[int] | None = None, target_buckets: list[int] | None = None) -> dict:
    """Padding of sources (pad id) and labels (IGNORE_INDEX) to the batch's longest, rounded up to
    `pad_to_multiple_of`, or up to one of `buckets` / `target_buckets` (static shapes);
    references stay Python lists."""
    def pad(seqs, value, lengths):
        longest = padded_length(max(len(s) for s in seqs), pad_to_multiple_of, lengths)
        return torch.tensor([s + [value] * (longest - len(s)) for s in seqs])

    batch = {"input_ids": pad([f["input_ids"] for f in features], pad_token_id, buckets),
             "attention_mask": pad([f["attention_mask"] for f in features], 0, buckets)}
    if "labels" in features[0]:
        batch["labels"] = pad([f["labels"] for f in features], IGNORE_INDEX, target_buckets)
    if "references" in features[0]:
        batch["references"] = [f["references"] for f in features]
        batch["source"] = [f["source"] for f in features]
    return batch
