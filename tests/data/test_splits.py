"""Seeded stratified splits and k-fold."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from lit_nlp.data.splits import stratified_fold, stratified_split

# 200 / 100 / 50 rows, interleaved so that a split by position would not be stratified
LABELS = np.array(["a"] * 200 + ["b"] * 100 + ["c"] * 50)[np.random.default_rng(0).permutation(350)].tolist()


def counts(labels, idx):
    return Counter(labels[i] for i in idx)


def test_split_proportions_per_class():
    train, val, test = stratified_split(LABELS, [0.8, 0.1, 0.1], seed=1)
    assert counts(LABELS, train) == {"a": 160, "b": 80, "c": 40}
    assert counts(LABELS, val) == {"a": 20, "b": 10, "c": 5}
    assert counts(LABELS, test) == {"a": 20, "b": 10, "c": 5}


def test_split_disjoint_and_covering():
    parts = stratified_split(LABELS, [0.7, 0.2, 0.1], seed=3)
    joined = np.concatenate(parts)
    assert len(joined) == len(set(joined.tolist())) == len(LABELS)
    assert sorted(joined.tolist()) == list(range(len(LABELS)))
    for part in parts:
        assert np.all(np.diff(part) > 0)  # sorted, no repeats


def test_split_rounding_adds_up():
    labels = ["x"] * 7 + ["y"] * 3
    parts = stratified_split(labels, [0.5, 0.25, 0.25], seed=0)
    assert sum(len(p) for p in parts) == 10
    # each class still reaches every part
    for part in parts:
        assert set(counts(labels, part)) == {"x", "y"}


def test_split_small_class_reaches_evaluation_parts():
    labels = ["big"] * 100 + ["rare"] * 3
    train, val, test = stratified_split(labels, [0.9, 0.05, 0.05], seed=0)
    assert counts(labels, val)["rare"] == 1 and counts(labels, test)["rare"] == 1
    assert counts(labels, train)["rare"] == 1


def test_split_seeded():
    first = stratified_split(LABELS, [0.8, 0.1, 0.1], seed=7)
    again = stratified_split(LABELS, [0.8, 0.1, 0.1], seed=7)
    other = stratified_split(LABELS, [0.8, 0.1, 0.1], seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    assert not all(np.array_equal(x, y) for x, y in zip(first, other))
    assert not np.array_equal(first[2], other[2])


def test_split_independent_of_class_first_appearance():
    labels = ["a", "b"] * 20
    flipped = ["b" if x == "a" else "a" for x in labels]
    # same positions per class, classes named so they first appear in the other order
    renamed = ["a" if x == "b" else "b" for x in flipped]
    assert all(np.array_equal(x, y) for x, y in zip(stratified_split(labels, [0.5, 0.5], 0),
                                                    stratified_split(renamed, [0.5, 0.5], 0)))


@pytest.mark.parametrize("k", [2, 5])
def test_folds_cover_every_row_once(k):
    seen = Counter()
    for i in range(k):
        train, val = stratified_fold(LABELS, k, i, seed=0)
        assert not set(train.tolist()) & set(val.tolist())
        assert sorted(train.tolist() + val.tolist()) == list(range(len(LABELS)))
        seen.update(val.tolist())
    assert sorted(seen) == list(range(len(LABELS)))
    assert set(seen.values()) == {1}


def test_folds_pairwise_disjoint_and_balanced():
    k = 5
    vals = [stratified_fold(LABELS, k, i, seed=2)[1] for i in range(k)]
    for i in range(k):
        for j in range(i + 1, k):
            assert not set(vals[i].tolist()) & set(vals[j].tolist())
    # 200/100/50 rows over 5 folds: exactly 40/20/10 of each class per fold
    for val in vals:
        assert counts(LABELS, val) == {"a": 40, "b": 20, "c": 10}


def test_folds_uneven_class_sizes_differ_by_at_most_one():
    labels = ["a"] * 13 + ["b"] * 7
    sizes = {c: [] for c in "ab"}
    for i in range(3):
        _, val = stratified_fold(labels, 3, i, seed=0)
        for c in "ab":
            sizes[c].append(counts(labels, val)[c])
    for c, per_fold in sizes.items():
        assert max(per_fold) - min(per_fold) <= 1
        assert sum(per_fold) == labels.count(c)


def test_folds_seeded():
    a = stratified_fold(LABELS, 4, 1, seed=0)[1]
    assert np.array_equal(a, stratified_fold(LABELS, 4, 1, seed=0)[1])
    assert not np.array_equal(a, stratified_fold(LABELS, 4, 1, seed=1)[1])
