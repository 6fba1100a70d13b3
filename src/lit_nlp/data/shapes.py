"""Fixed batch shapes, for compiled models replayed as CUDA graphs.

A CUDA graph replays one recorded shape; with dynamic padding every batch has its own length,
and the last batch of an epoch its own size. With `static_shapes` the collators pad lengths up
to one of a few bucket lengths and fill short batches up to the batch size, so a whole run
sees at most `length_buckets` shapes per loader (at max_length 128 with 8 buckets: 16, 32, ...,
128; SST-2's median sentence of about 25 word pieces pads to 32, not 128).

Filler rows are copies of the batch's first row with every label set to IGNORE_INDEX: the
losses ignore them (cross-entropy's ignore_index, masked BCE) and the modules score only the
first `batch["real_rows"]` rows. Copies of a real row rather than blank rows: an all-padding
row has no position to attend to, and a NaN in an ignored row still poisons the gradient (NaN x 0).
"""

from __future__ import annotations

from lit_nlp.codecs.common import IGNORE_INDEX

# per-row training targets a filler row must not contribute to
LABEL_KEYS = ("labels", "start_positions", "end_positions")
REAL_ROWS = "real_rows"  # batch key: how many leading rows are real (the rest are filler)


def bucket_lengths(max_length: int, num_buckets: int, multiple: int = 8) -> list[int]:
    """`num_buckets` evenly spaced lengths up to `max_length`, each rounded up to a multiple of
    `multiple` (tensor-core friendly) and never above `max_length`, which is always the last."""
    if num_buckets < 1:
        raise ValueError(f"length_buckets must be at least 1, got {num_buckets}")
    lengths = {min(max_length, -(-max_length * k // num_buckets // multiple) * multiple)
               for k in range(1, num_buckets + 1)}
    return sorted(lengths | {max_length})


def padded_length(longest: int, pad_to_multiple_of: int | None = None, buckets: list[int] | None = None) -> int:
    """The length a batch whose longest row is `longest` is padded to: the smallest bucket that
    holds it, else `longest` rounded up to `pad_to_multiple_of`."""
    if buckets:
        return next((b for b in buckets if b >= longest), longest)
    if pad_to_multiple_of:
        return -(-longest // pad_to_multiple_of) * pad_to_multiple_of
    return longest


def _ignored(value):
    if isinstance(value, (list, tuple)):
        return [IGNORE_INDEX] * len(value)
    return IGNORE_INDEX


def fill_rows(features: list[dict], rows: int) -> list[dict]:
    """`features` topped up to `rows` rows with copies of the first whose labels are ignored."""
    if len(features) >= rows:
        return features
    filler = {k: (_ignored(v) if k in LABEL_KEYS else v) for k, v in features[0].items()}
    return features + [filler] * (rows - len(features))


def collate_full_batch(features: list[dict], collate, rows: int) -> dict:
    """`collate` over `features` filled up to `rows`, with `real_rows` set (a Python int: the
    modules slice their metrics with it without a host-device sync)."""
    batch = collate(fill_rows(features, rows))
    batch[REAL_ROWS] = len(features)
    return batch


def real_rows(batch: dict, default: int) -> int:
    """How many leading rows of `batch` are real (all of them without filler)."""
    return batch.get(REAL_ROWS, default)
