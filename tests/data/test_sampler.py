"""LengthGroupedSampler: a permutation per epoch, length-homogeneous batches, seeded."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import DataLoader

from lit_nlp.data.sampler import LengthGroupedSampler

N, BATCH = 1003, 16  # 62 full batches and a short one of 11
_RNG = random.Random(0)
LENGTHS = [_RNG.randint(3, 128) for _ in range(N)]


def loader_batches(sampler, batch_size=BATCH):
    loader = DataLoader(list(range(N)), batch_size=batch_size, sampler=sampler)
    return [b.tolist() for b in loader]


def mean_spread(batches, lengths=LENGTHS):
    return float(np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches]))


def padding_share(batches, lengths=LENGTHS):
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - sum(lengths) / padded


def test_every_index_once_per_epoch():
    sampler = LengthGroupedSampler(LENGTHS, BATCH, seed=0, window_batches=10)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert len(order) == len(sampler) == N
        assert sorted(order) == list(range(N))


def test_dataloader_recuts_into_length_homogeneous_batches():
    # default window of 50 batches = 800 rows: two windows here, the second partial
    sampler = LengthGroupedSampler(LENGTHS, BATCH, seed=0)
    batches = loader_batches(sampler)
    # the DataLoader cuts the stream back into exactly the sampler's batches
    assert batches == sampler.batches()
    assert all(len(b) == BATCH for b in batches[:-1])

    shuffled = [list(range(N))[i:i + BATCH] for i in range(0, N, BATCH)]
    order = torch.randperm(N, generator=torch.Generator().manual_seed(0)).tolist()
    shuffled = [[order[i] for i in b] for b in shuffled]
    # lengths 3..128: a random batch of 16 spans ~110 tokens and is ~45% padding;
    # a grouped one spans a few tokens and pads a few percent
    assert mean_spread(batches) < 0.1 * mean_spread(shuffled)
    assert padding_share(batches) < 0.05 and padding_share(shuffled) > 0.3


def test_short_last_batch_is_last():
    sampler = LengthGroupedSampler(LENGTHS, BATCH, seed=3, window_batches=4)
    for epoch in range(4):
        sampler.set_epoch(epoch)
        sizes = [len(b) for b in loader_batches(sampler)]
        assert sizes[-1] == N % BATCH
        assert set(sizes[:-1]) == {BATCH}


def test_order_changes_with_epoch_and_is_seeded():
    sampler = LengthGroupedSampler(LENGTHS, BATCH, seed=5)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert epoch0 != epoch1

    same = LengthGroupedSampler(LENGTHS, BATCH, seed=5)
    same.set_epoch(1)
    assert list(same) == epoch1
    same.set_epoch(0)
    assert list(same) == epoch0
    other_seed = LengthGroupedSampler(LENGTHS, BATCH, seed=6)
    assert list(other_seed) != epoch0


def test_batch_membership_changes_across_epochs():
    sampler = LengthGroupedSampler(LENGTHS, BATCH, seed=0, window_batches=10)
    first = {frozenset(b) for b in sampler.batches()}
    sampler.set_epoch(1)
    second = {frozenset(b) for b in sampler.batches()}
    assert len(first & second) < len(first) // 2


def test_without_grouping_plain_shuffle():
    sampler = LengthGroupedSampler(LENGTHS, BATCH, seed=0, group_by_length=False)
    order = list(sampler)
    assert sorted(order) == list(range(N))
    assert order != list(range(N))
    batches = loader_batches(sampler)
    grouped = loader_batches(LengthGroupedSampler(LENGTHS, BATCH, seed=0))
    # batches are as mixed as a random shuffle's
    assert mean_spread(batches) > 0.6 * (max(LENGTHS) - min(LENGTHS))
    assert mean_spread(batches) > 5 * mean_spread(grouped)


def test_no_shuffle_is_sequential_order_when_not_grouping():
    sampler = LengthGroupedSampler(LENGTHS, BATCH, shuffle=False, group_by_length=False)
    assert list(sampler) == list(range(N))


def test_replicas_split_batches_evenly():
    ranks = [LengthGroupedSampler(LENGTHS, BATCH, seed=0, num_replicas=2, rank=r) for r in range(2)]
    per_rank = [r.batches() for r in ranks]
    assert len(per_rank[0]) == len(per_rank[1])
    covered = {i for batches in per_rank for b in batches for i in b}
    assert covered == set(range(N))
