"""Duplicates, conflicting labels and leakage between splits, found through fixed-size hashes of
the cleaned rows: 16 bytes a text (xxh3-128) where a set of the texts held the texts themselves
(an SST-2 row: about 60 bytes of text and 50 more of Python string object, in a set that adds
its own slots). Two different texts share a 128-bit hash with probability about n^2 / 2^129:
1e-22 for 100M rows.

`RowHashes` holds what `drop_masks` needs of one split's rows; `drop_masks` decides, with the
same rules as lit_nlp.data.cleaning.drop_rows (which runs on it), which rows stay."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xxhash

# between the key columns of a row (text, text_pair), as the key has always been spelled
KEY_SEPARATOR = "\x1f"


def text_hashes(texts: Iterable[str]) -> np.ndarray:
    """(n, 2) uint64: the xxh3-128 hash of each text's UTF-8 bytes (lone surrogates, which a
    JSON file can hold, passed through)."""
    digest = xxhash.xxh3_128_digest
    data = b"".join(digest(text.encode("utf-8", "surrogatepass")) for text in texts)
    return np.frombuffer(data, dtype=np.uint64).reshape(-1, 2).copy()


@dataclass
class RowHashes:
    """One split's rows as drop_masks sees them: `key` hashes the key columns (the text a model
    reads: leakage and conflicting labels), `row` every column (exact duplicates), `empty`
    marks rows with an empty required column, `no_gold` {reason: mask} rows without a gold
    value (a label, a target)."""

    key: np.ndarray
    row: np.ndarray
    empty: np.ndarray
    no_gold: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.key)

    @classmethod
    def of(cls, frame: pd.DataFrame, key_columns: Sequence[str], required_columns: Sequence[str],
           gold_columns: dict[str, str] | None = None) -> RowHashes:
        """The hashes of a DataFrame of cleaned rows (string columns, a multi-label column of
        tuples); `gold_columns` maps column -> the reason its empty rows are dropped for."""
        # plain lists: pandas 3 keeps strings in Arrow, and iterating such a column costs 1.3 us an element
        values = {column: frame[column].tolist() for column in frame.columns}
        keys = [map(str, values[c]) for c in key_columns]  # as astype(str) spells them
        key_texts = keys[0] if len(keys) == 1 else map(KEY_SEPARATOR.join, zip(*keys))
        # repr of the row's values: one text per distinct row, whatever its fields hold
        rows = map(repr, zip(*values.values())) if values else ()
        empty = np.zeros(len(frame), dtype=bool)
        for column in required_columns:
            empty |= _empty(values[column])
        return cls(key=text_hashes(key_texts), row=text_hashes(rows), empty=empty,
                   no_gold={reason: _empty(values[column]) for column, reason in (gold_columns or {}).items()})

    @classmethod
    def concat(cls, parts: list[RowHashes]) -> RowHashes:
        """The parts end to end; each field's parts are let go of as soon as it is joined, so
        the peak is the parts plus one joined field, not twice the whole."""
        def join(field: str, empty: np.ndarray) -> np.ndarray:
            joined = np.concatenate([getattr(p, field) for p in parts]) if parts else empty
            for part in parts:
                setattr(part, field, None)
            return joined

        reasons = list(parts[0].no_gold) if parts else []
        no_gold = {}
        for reason in reasons:
            no_gold[reason] = np.concatenate([p.no_gold[reason] for p in parts])
            for part in parts:
                del part.no_gold[reason]
        return cls(key=join("key", np.zeros((0, 2), np.uint64)), row=join("row", np.zeros((0, 2), np.uint64)),
                   empty=join("empty", np.zeros(0, bool)), no_gold=no_gold)


def _empty(values: list) -> np.ndarray:
    return np.fromiter((len(value) == 0 for value in values), dtype=bool, count=len(values))


# ----------------------------------------------------------------------------- hash groups
def group_ids(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group of each row, whether the row is its group's first), groups numbered in hash
    order. A stable sort on both halves: 10M rows take about 3 s and 400 MB of temporaries."""
    if len(hashes) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    order = np.lexsort((hashes[:, 1], hashes[:, 0]))
    ordered = hashes[order]
    starts = np.empty(len(hashes), dtype=bool)
    starts[0] = True
    np.any(ordered[1:] != ordered[:-1], axis=1, out=starts[1:])
    del ordered
    groups, first = np.empty(len(hashes), dtype=np.int64), np.empty(len(hashes), dtype=bool)
    groups[order] = np.cumsum(starts) - 1
    first[order] = starts  # stable: a group's first row in sorted order is its first in the file
    return groups, first


def duplicated(hashes: np.ndarray) -> np.ndarray:
    """Rows whose hash occurred on an earlier row (pandas' `duplicated()`, keep="first")."""
    return ~group_ids(hashes)[1]


def repeated(hashes: np.ndarray, among: np.ndarray) -> np.ndarray:
    """Rows of `among` whose hash occurs on another row of `among` (pandas' `duplicated(keep=False)`
    over those rows); False outside `among`."""
    groups, _ = group_ids(hashes[among])
    out = np.zeros(len(hashes), dtype=bool)
    out[among] = np.bincount(groups)[groups] > 1
    return out


def isin(hashes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Rows whose hash is one of `others`'."""
    if len(hashes) == 0 or len(others) == 0:
        return np.zeros(len(hashes), dtype=bool)
    groups, _ = group_ids(np.concatenate([others, hashes]))
    marked = np.zeros(groups.max() + 1, dtype=bool)
    marked[groups[:len(others)]] = True
    return marked[groups[len(others):]]


# ----------------------------------------------------------------------------- the rules
def drop_masks(splits: dict[str, RowHashes], drop_empty: bool = True, drop_duplicates: bool = True,
               drop_leakage: bool = True, drop_conflicts: bool = True,
               whole: Sequence[str] = ()) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """({split: rows kept}, {"<split>/<reason>": rows dropped}): the rules of
    lit_nlp.data.cleaning.drop_rows, over hashes. `splits` in priority order (train first);
    `whole`: the evaluation splits kept whole (only rows without gold leave them)."""
    dropped: dict[str, int] = {}
    keep = {name: np.ones(len(rows), dtype=bool) for name, rows in splits.items()}

    def drop(name: str, reason: str, mask: np.ndarray) -> None:
        dropped[f"{name}/{reason}"] = int(np.count_nonzero(keep[name] & mask))
        keep[name] &= ~mask

    for name, rows in splits.items():
        for reason, mask in rows.no_gold.items():
            drop(name, reason, mask)
    # text of the evaluation files kept whole: training rows must not repeat it
    earlier = [splits[name].key[keep[name]] for name in splits if name in whole]
    for name, rows in splits.items():
        if name in whole:
            continue
        if drop_empty:
            drop(name, "empty", rows.empty)
        if drop_duplicates:
            drop(name, "duplicate", duplicated(rows.row))
            if drop_conflicts:
                drop(name, "conflicting_labels", repeated(rows.key, keep[name]))
        if drop_leakage and sum(map(len, earlier)):
            drop(name, "leakage", isin(rows.key, np.concatenate(earlier)))
        earlier.append(rows.key[keep[name]])
    return keep, {k: v for k, v in dropped.items() if v}
