"""Duplicates, conflicting labels and leakage on 128-bit hashes (lit_nlp.data.dedup) decide
exactly what the whole-frame rules on Python sets decided (lit_nlp.bench.data_baseline)."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from lit_nlp.bench.data_baseline import drop_rows_whole
from lit_nlp.data.cleaning import TextCleaner, drop_rows
from lit_nlp.data.dedup import duplicated, isin, repeated, text_hashes


def random_splits(rng: random.Random, pairs: bool, seq2seq: bool) -> dict[str, pd.DataFrame]:
    """Small vocabularies, so that repeats, conflicts, empties and shared texts are common."""
    texts = ["", "a", "b", "a b", "c", "d\x1fe", "d", "e"]

    def frame(n: int) -> pd.DataFrame:
        columns = {"text": [rng.choice(texts) for _ in range(n)]}
        if pairs:
            columns["text_pair"] = [rng.choice(texts) for _ in range(n)]
        if seq2seq:
            columns["target"] = [rng.choice(["", "x", "y"]) for _ in range(n)]
        else:
            columns["label"] = [rng.choice(["", "p", "n"]) for _ in range(n)]
        return pd.DataFrame(columns, dtype=str)

    return {split: frame(rng.randint(1, 30)) for split in ("train", "validation", "test")[:rng.randint(1, 3)]}


@pytest.mark.parametrize("pairs, seq2seq", [(False, False), (True, False), (False, True)])
def test_hashed_rules_equal_the_rules_on_sets(pairs, seq2seq):
    rng = random.Random(int(pairs) * 2 + int(seq2seq))
    for _ in range(150):
        splits = random_splits(rng, pairs, seq2seq)
        if not len(splits["train"]):
            continue
        flags = {key: rng.random() < 0.8 for key in ("drop_empty", "drop_duplicates", "drop_leakage")}
        cleaner = TextCleaner([], lowercase=False, filter_eval_files=rng.random() < 0.3, **flags)
        keys = ["text", "text_pair"] if pairs else ["text"]
        eval_splits = rng.sample([s for s in splits if s != "train"], rng.randint(0, len(splits) - 1))
        gold = {"target": "empty_target"} if seq2seq else {"label": "empty_label"}
        args = dict(gold_columns=gold, drop_conflicts=not seq2seq, eval_splits=eval_splits)
        new, new_dropped = drop_rows(splits, keys, cleaner, **args)
        old, old_dropped = drop_rows_whole(splits, keys, cleaner, **args)
        assert new_dropped == old_dropped and list(new_dropped) == list(old_dropped)
        assert all(new[s].equals(old[s]) for s in splits)


def test_hash_groups_keep_the_first_row_and_find_shared_texts():
    hashes = text_hashes(["a", "b", "a", "c", "b", "a"])
    assert hashes.shape == (6, 2) and hashes.dtype == np.uint64
    assert duplicated(hashes).tolist() == [False, False, True, False, True, True]
    among = np.array([True, True, False, True, False, True])
    assert repeated(hashes, among).tolist() == [True, False, False, False, False, True]
    assert isin(hashes, text_hashes(["c", "z"])).tolist() == [False, False, False, True, False, False]
    # the key separator between text and text_pair, and lone surrogates from JSON, hash too
    assert len({tuple(h) for h in text_hashes(["a\x1fb", "a\x1f", "\ud800"])}) == 3
