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
