"""LengthGroupedBatchSampler and ShardSampler: a permutation per epoch, length-homogeneous
batches, seeded; under DDP every index once per epoch across the ranks, equal step counts, and
the same global batches as one process with the global batch size."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lit_nlp.data.sampler import LengthGroupedBatchSampler, ShardSampler, make_loader

N, BATCH = 1003, 16  # 62 full batches and a short one of 11
_RNG = random.Random(0)
LENGTHS = [_RNG.randint(3, 128) for _ in range(N)]


def loader_batches(sampler):
    loader = DataLoader(list(range(N)), batch_sampler=sampler)
    return [b.tolist() for b in loader]


def rank_samplers(world: int, batch: int = BATCH, lengths=LENGTHS, **kwargs):
    return [LengthGroupedBatchSampler(lengths, batch, num_replicas=world, rank=r, **kwargs) for r in range(world)]


def mean_spread(batches, lengths=LENGTHS):
    return float(np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches]))


def padding_share(batches, lengths=LENGTHS):
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - sum(lengths[i] for b in batches for i in b) / padded


def test_every_index_once_per_epoch():
    sampler = LengthGroupedBatchSampler(LENGTHS, BATCH, seed=0, window_batches=10)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        order = [i for b in sampler for i in b]
        assert len(list(sampler)) == len(sampler) == 63
        assert sorted(order) == list(range(N))


def test_dataloader_keeps_length_homogeneous_batches():
    # default window of 50 batches = 800 rows: two windows here, the second partial
    sampler = LengthGroupedBatchSampler(LENGTHS, BATCH, seed=0)
    batches = loader_batches(sampler)
    # a batch sampler: the DataLoader yields exactly the sampler's batches
    assert batches == list(sampler)
    assert sorted(len(b) for b in batches)[1:] == [BATCH] * 62  # one short batch, anywhere

    order = torch.randperm(N, generator=torch.Generator().manual_seed(0)).tolist()
    shuffled = [order[i:i + BATCH] for i in range(0, N, BATCH)]
    # lengths 3..128: a random batch of 16 spans ~110 tokens and is ~45% padding;
    # a grouped one spans a few tokens and pads a few percent
    assert mean_spread(batches) < 0.1 * mean_spread(shuffled)
    assert padding_share(batches) < 0.05 and padding_share(shuffled) > 0.3


def test_order_changes_with_epoch_and_is_seeded():
    sampler = LengthGroupedBatchSampler(LENGTHS, BATCH, seed=5)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert epoch0 != epoch1

    same = LengthGroupedBatchSampler(LENGTHS, BATCH, seed=5)
    same.set_epoch(1)
    assert list(same) == epoch1
    same.set_epoch(0)
    assert list(same) == epoch0
    other_seed = LengthGroupedBatchSampler(LENGTHS, BATCH, seed=6)
    assert list(other_seed) != epoch0


def test_lightning_reaches_set_epoch_through_the_loader():
    """Lightning calls set_epoch on `loader.sampler` and `loader.batch_sampler.sampler` only."""
    from lightning.fabric.utilities.data import _set_sampler_epoch

    sampler = LengthGroupedBatchSampler(LENGTHS, BATCH, seed=5)
    loader = DataLoader(list(range(N)), batch_sampler=sampler)
    _set_sampler_epoch(loader, 3)
    assert sampler.epoch == 3


def test_batch_membership_changes_across_epochs():
    sampler = LengthGroupedBatchSampler(LENGTHS, BATCH, seed=0, window_batches=10)
    first = {frozenset(b) for b in sampler}
    sampler.set_epoch(1)
    second = {frozenset(b) for b in sampler}
    assert len(first & second) < len(first) // 2


def test_without_grouping_plain_shuffle():
    sampler = LengthGroupedBatchSampler(LENGTHS, BATCH, seed=0, group_by_length=False)
    order = [i for b in sampler for i in b]
    assert sorted(order) == list(range(N))
    assert order != list(range(N))
    grouped = list(LengthGroupedBatchSampler(LENGTHS, BATCH, seed=0))
    # batches are as mixed as a random shuffle's
    assert mean_spread(list(sampler)) > 0.6 * (max(LENGTHS) - min(LENGTHS))
    assert mean_spread(list(sampler)) > 5 * mean_spread(grouped)


def test_no_shuffle_is_sequential_order_when_not_grouping():
    sampler = LengthGroupedBatchSampler(LENGTHS, BATCH, shuffle=False, group_by_length=False)
    assert [i for b in sampler for i in b] == list(range(N))


# ----------------------------------------------------------------- DDP: several ranks
@pytest.mark.parametrize("world,batch,n", [(2, 16, 1003), (2, 8, 1024), (3, 5, 1003), (4, 16, 1001), (4, 300, 2)])
def test_ranks_cover_every_index_once_with_equal_steps(world, batch, n):
    """Every index once per epoch across the ranks; the only repeats are the explicit top-up
    of the last global batch (fewer than `world`), and every rank takes the same steps."""
    lengths = LENGTHS[:n] if n <= N else [LENGTHS[i % N] for i in range(n)]
    for epoch in range(2):
        samplers = rank_samplers(world, batch, lengths, seed=epoch)
        for s in samplers:
            s.set_epoch(epoch)
        per_rank = [list(s) for s in samplers]
        assert len({len(batches) for batches in per_rank}) == 1, "ranks would take different step counts"
        assert all(len(batches) == len(s) for batches, s in zip(per_rank, samplers))
        # the ranks' batches at one step have the same size, so DDP's mean of means is the global mean
        for step in zip(*per_rank):
            assert len({len(b) for b in step}) == 1
        seen = Counter(i for batches in per_rank for b in batches for i in b)
        assert set(seen) == set(range(n))
        repeats = sum(seen.values()) - n
        assert repeats == -n % world if n % (batch * world) else repeats == 0
        assert repeats < world


def test_ranks_slice_the_global_batches_of_one_process():
    """2 ranks x batch 8 train on the same global batches as 1 process x batch 16, in the same
    order, every epoch: what makes a DDP run match a single-process run (tests/test_distributed.py
    checks it again on the batches a real 2-process run trains on)."""
    lengths = LENGTHS[:1000]  # 62 global batches of 16 and one of 8: no top-up
    single = LengthGroupedBatchSampler(lengths, 16, seed=3)
    ranks = rank_samplers(2, 8, lengths, seed=3)
    for epoch in range(2):
        for sampler in (single, *ranks):
            sampler.set_epoch(epoch)
        r0, r1 = (list(s) for s in ranks)
        assert [sorted(a + b) for a, b in zip(r0, r1)] == [sorted(b) for b in single], f"epoch {epoch}"


def test_rank_batches_are_length_homogeneous_and_reshuffled():
    samplers = rank_samplers(2, BATCH, seed=0)
    batches = [b for s in samplers for b in s]
    order = torch.randperm(N, generator=torch.Generator().manual_seed(0)).tolist()
    shuffled = [order[i:i + BATCH] for i in range(0, N, BATCH)]
    assert mean_spread(batches) < 0.1 * mean_spread(shuffled)
    epoch0 = list(samplers[0])
    samplers[0].set_epoch(1)
    assert list(samplers[0]) != epoch0


def test_bad_rank_is_refused():
    with pytest.raises(ValueError, match="rank must be in"):
        LengthGroupedBatchSampler(LENGTHS, BATCH, num_replicas=2, rank=2)


@pytest.mark.parametrize("world,n", [(2, 33), (3, 10), (2, 1)])
def test_shard_sampler_reads_every_row_once_without_padding(world, n):
    shards = [list(ShardSampler(n, world, r)) for r in range(world)]
    assert sorted(i for shard in shards for i in shard) == list(range(n))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_make_loader_shards_train_and_eval():
    import datasets

    rows = datasets.Dataset.from_dict({"x": list(range(50)), "length": LENGTHS[:50]})
    collate = lambda feats: [f["x"] for f in feats]  # noqa: E731
    train = [make_loader(rows, collate, 4, train=True, num_replicas=2, rank=r) for r in range(2)]
    assert len(train[0]) == len(train[1]) == 7  # ceil(50 / 8) global batches
    seen = sorted(x for loader in train for b in loader for x in b)
    assert set(seen) == set(range(50)) and len(seen) == 50  # 50 = 6 x 8 + 2: splits evenly
    evals = [make_loader(rows, collate, 4, train=False, num_replicas=2, rank=r) for r in range(2)]
    assert sorted(x for loader in evals for b in loader for x in b) == list(range(50))
