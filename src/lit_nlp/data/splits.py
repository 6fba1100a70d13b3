"""Seeded, stratified splits: train/validation/test by ratios, and fold i of k."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _shuffled_by_class(labels: Sequence, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    # sorted() makes the result independent of the order classes first appear in
    return {c: rng.permutation(np.flatnonzero(labels == c)) for c in sorted(set(labels.tolist()))}


def stratified_split(labels: Sequence, ratios: Sequence[float], seed: int) -> list[np.ndarray]:
    """Split row indices into len(ratios) parts (ratios sum to 1) with each class spread in
    proportion; every part gets at least one row of a class that has enough rows."""
    parts: list[list[int]] = [[] for _ in ratios]
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
            parts[j].extend(idx[start:start + count].tolist())
            start += count
    return [np.sort(np.asarray(p, dtype=int)) for p in parts]


def stratified_fold(labels: Sequence, num_folds: int, fold: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices) of fold `fold` of `num_folds`: each class is dealt
    round-robin over the folds, so fold sizes per class differ by at most one."""
    train, val = [], []
    for idx in _shuffled_by_class(labels, seed).values():
        in_fold = np.arange(len(idx)) % num_folds == fold
        val.extend(idx[in_fold].tolist())
        train.extend(idx[~in_fold].tolist())
    return np.sort(np.asarray(train, dtype=int)), np.sort(np.asarray(val, dtype=int))


def carve_splits(frames: dict, stratify_by: str | None, val_ratio: float, test_ratio: float, seed: int,
                 num_folds: int | None = None, fold: int = 0) -> dict:
    """Complete {split: DataFrame} to train/validation/test. A missing test split is carved from
    train by `test_ratio`; then validation is fold `fold` of `num_folds` over train (+ any given
    validation rows), or, when missing, carved by `val_ratio` (a share of all rows). Splits are
    stratified by the `stratify_by` column, or plain seeded random ones when it is None."""
    import pandas as pd

    from lit_nlp.errors import LitNlpError

    def strata(frame):
        return frame[stratify_by] if stratify_by else np.zeros(len(frame), dtype=int)

    frames = dict(frames)
    train = frames["train"]
    test_carved = "test" not in frames and test_ratio > 0
    if test_carved:
        rest, test = stratified_split(strata(train), [1 - test_ratio, test_ratio], seed)
        frames["test"], train = train.iloc[test], train.iloc[rest]
    if num_folds:
        if "validation" in frames:  # folds are drawn from all labelled non-test rows
            train = pd.concat([train, frames["validation"]], ignore_index=True)
        rest, val = stratified_fold(strata(train), num_folds, fold, seed)
        frames["validation"], train = train.iloc[val], train.iloc[rest]
    elif "validation" not in frames:
        # val_ratio is a share of all rows, so rescale it to the rows left after the test cut
        share = val_ratio / (1 - test_ratio) if test_carved else val_ratio
        rest, val = stratified_split(strata(train), [1 - share, share], seed + 1)
        frames["validation"], train = train.iloc[val], train.iloc[rest]
    frames["train"] = train
    out = {s: frames[s].reset_index(drop=True) for s in ("train", "validation", "test") if s in frames}
    for split, frame in out.items():
        if frame.empty:
            raise LitNlpError(f"the {split} split is empty after splitting {len(train)} rows; "
                              "use more data or change data.val_ratio / data.test_ratio")
    return out


def ratio_problems(val_ratio: float, test_ratio: float) -> list[str]:
    """What is wrong with data.val_ratio and data.test_ratio, one line each."""
    problems = [f"data.{name} must be in [0, 1), got {ratio}"
                for name, ratio in (("val_ratio", val_ratio), ("test_ratio", test_ratio)) if not 0 <= ratio < 1]
    if val_ratio + test_ratio >= 1:
        problems.append("data.val_ratio + data.test_ratio must leave rows for training")
    return problems
