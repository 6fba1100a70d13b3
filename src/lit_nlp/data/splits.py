"""Seeded, stratified splits: train/validation/test by ratios, and fold i of k."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _shuffled_by_class(labels: Sequence, seed: int) -> dict:
    """{class: its row indices, shuffled}, classes in sorted order, one generator for all: the
    rows of a class found by one stable sort rather than a scan of all rows per class (the same
    indices, in the same order, as np.flatnonzero(labels == c))."""
    rng = np.random.default_rng(seed)
    classes, inverse = np.unique(np.asarray(labels), return_inverse=True)
    by_class = np.argsort(inverse.ravel(), kind="stable")
    bounds = np.cumsum(np.bincount(inverse.ravel(), minlength=len(classes)))[:-1]
    return {c: rng.permutation(idx) for c, idx in zip(classes.tolist(), np.split(by_class, bounds))}


def stratified_split(labels: Sequence, ratios: Sequence[float], seed: int) -> list[np.ndarray]:
    """Split row indices into len(ratios) parts (ratios sum to 1) with each class spread in
    proportion; every part gets at least one row of a class that has enough rows."""
    parts: list[list[np.ndarray]] = [[] for _ in ratios]
    for idx in _shuffled_by_class(labels, seed).values():
        n = len(idx)
        # Largest remainder rounding so the counts add up to n exactly.
        raw = np.asarray(ratios, dtype=float) * n
        counts = np.floor(raw).astype(int)
        for j in np.argsort(-(raw - counts))[: n - counts.sum()]:
            counts[j] += 1
        # A class with a few rows still reaches the evaluation splits when it can.
        for j in range(1, len(counts)):
            if counts[j] == 0 and ratios[j] > 0 and counts[0] > 1:
                counts[j], counts[0] = 1, counts[0] - 1
        start = 0
        for j, count in enumerate(counts):
            parts[j].append(idx[start:start + count])
            start += count
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, dtype=int) for p in parts]


def stratified_fold(labels: Sequence, num_folds: int, fold: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices) of fold `fold` of `num_folds`: each class is dealt
    round-robin over the folds, so fold sizes per class differ by at most one."""
    train, val = [np.zeros(0, dtype=int)], [np.zeros(0, dtype=int)]
    for idx in _shuffled_by_class(labels, seed).values():
        in_fold = np.arange(len(idx)) % num_folds == fold
        val.append(idx[in_fold])
        train.append(idx[~in_fold])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


# an output split: its rows as (source split, sorted row positions in it), in order
Parts = list[tuple[str, np.ndarray]]


def _select(parts: Parts, positions: np.ndarray) -> Parts:
    """The rows at sorted `positions` of the concatenation of `parts`."""
    out, start = [], 0
    for source, rows in parts:
        inside = positions[(positions >= start) & (positions < start + len(rows))]
        out.append((source, rows[inside - start]))
        start += len(rows)
    return out


def carve_indices(sizes: dict[str, int], strata: dict[str, np.ndarray] | None, val_ratio: float, test_ratio: float,
                  seed: int, num_folds: int | None = None, fold: int = 0) -> dict[str, Parts]:
    """`carve_splits` on row positions: `sizes` {given split: rows}, `strata` {given split: one
    stratum per row} or None for plain seeded random splits. Returns {split: parts} for train,
    validation and test, each split's rows in the order of the given splits' rows."""
    from lit_nlp.errors import LitNlpError

    def stratum(split: str) -> np.ndarray:
        return strata[split] if strata is not None else np.zeros(sizes[split], dtype=int)

    out: dict[str, Parts] = {split: [(split, np.arange(sizes[split]))] for split in ("validation", "test")
                             if split in sizes}
    train: Parts = [("train", np.arange(sizes["train"]))]
    train_strata = stratum("train")
    test_carved = "test" not in sizes and test_ratio > 0
    if test_carved:
        rest, test = stratified_split(train_strata, [1 - test_ratio, test_ratio], seed)
        out["test"], train, train_strata = _select(train, test), _select(train, rest), train_strata[rest]
    if num_folds:
        if "validation" in sizes:  # folds are drawn from all labelled non-test rows
            train, train_strata = train + out["validation"], np.concatenate([train_strata, stratum("validation")])
        rest, val = stratified_fold(train_strata, num_folds, fold, seed)
        out["validation"], train = _select(train, val), _select(train, rest)
    elif "validation" not in sizes:
        # val_ratio is a share of all rows, so rescale it to the rows left after the test cut
        share = val_ratio / (1 - test_ratio) if test_carved else val_ratio
        rest, val = stratified_split(train_strata, [1 - share, share], seed + 1)
        out["validation"], train = _select(train, val), _select(train, rest)
    out["train"] = train
    out = {split: out[split] for split in ("train", "validation", "test") if split in out}
    train_rows = sum(len(rows) for _, rows in train)
    for split, parts in out.items():
        if not sum(len(rows) for _, rows in parts):
            raise LitNlpError(f"the {split} split is empty after splitting {train_rows} rows; "
                              "use more data or change data.val_ratio / data.test_ratio")
    return out


def carve_splits(frames: dict, stratify_by: str | None, val_ratio: float, test_ratio: float, seed: int,
                 num_folds: int | None = None, fold: int = 0) -> dict:
    """Complete {split: DataFrame} to train/validation/test. A missing test split is carved from
    train by `test_ratio`; then validation is fold `fold` of `num_folds` over train (+ any given
    validation rows), or, when missing, carved by `val_ratio` (a share of all rows). Splits are
    stratified by the `stratify_by` column, or plain seeded random ones when it is None."""
    import pandas as pd

    strata = {split: frame[stratify_by].to_numpy() for split, frame in frames.items()} if stratify_by else None
    parts = carve_indices({split: len(frame) for split, frame in frames.items()}, strata, val_ratio, test_ratio,
                          seed, num_folds, fold)
    return {split: pd.concat([frames[source].iloc[rows] for source, rows in split_parts]).reset_index(drop=True)
            for split, split_parts in parts.items()}


def ratio_problems(val_ratio: float, test_ratio: float) -> list[str]:
    """What is wrong with data.val_ratio and data.test_ratio, one line each."""
    problems = [f"data.{name} must be in [0, 1), got {ratio}"
                for name, ratio in (("val_ratio", val_ratio), ("test_ratio", test_ratio)) if not 0 <= ratio < 1]
    if val_ratio + test_ratio >= 1:
        problems.append("data.val_ratio + data.test_ratio must leave rows for training")
    return problems
