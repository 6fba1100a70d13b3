"""Length-grouped sampling: each batch holds texts of similar length, so dynamic padding pads
little, while batch order and membership are still shuffled every epoch."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Sampler


class LengthGroupedSampler(Sampler[int]):
    """Yields indices batch after batch, for a DataLoader with the same `batch_size` (which
    cuts them back into exactly these batches). Each epoch: shuffle all indices, cut them into
    windows of `batch_size * window_batches`, sort each window by length, cut it into batches
    and shuffle the batches. A window of 50 batches keeps most of the shuffling while padding
    falls to a few percent of the tokens.

    Deterministic in (seed, epoch): Lightning calls `set_epoch` before every epoch, so a run
    resumed from a checkpoint sees the same batches as one that never stopped. Under DDP give
    `num_replicas`/`rank` (and turn off Lightning's distributed sampler): every rank gets the
    same number of whole batches. `group_by_length=False` gives a plain seeded shuffle.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, shuffle: bool = True,
                 window_batches: int = 50, group_by_length: bool = True, num_replicas: int = 1, rank: int = 0):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.lengths = torch.as_tensor(list(lengths))
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.group_by_length = group_by_length
        # a multiple of batch_size, so only the very last batch of an epoch can be short
        self.window = batch_size * window_batches
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        """This rank's batches for the current epoch."""
        n = len(self.lengths)
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        batches = []
        for start in range(0, n, self.window):
            window = order[start:start + self.window]
            if self.group_by_length:
                # stable sort keeps the shuffled order among equal lengths
                window = window[torch.sort(self.lengths[window], descending=True, stable=True).indices]
            batches.extend(window[i:i + self.batch_size].tolist() for i in range(0, len(window), self.batch_size))
        if self.shuffle:
            # the short last batch stays last, so a DataLoader re-cuts the stream into these batches
            last = batches.pop() if len(batches[-1]) < self.batch_size else None
            batches = [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]
            if last is not None:
                batches.append(last)
        if self.num_replicas > 1:
            per_rank = math.ceil(len(batches) / self.num_replicas)
            # repeat the first batches so every rank takes the same number of steps
            batches = (batches * 2)[: per_rank * self.num_replicas]
            batches = batches[self.rank::self.num_replicas]
        return batches

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches():
            yield from batch

    def __len__(self) -> int:
        if self.num_replicas == 1:
            return len(self.lengths)
        return sum(len(b) for b in self.batches())


def make_loader(dataset, collate_fn, batch_size: int, train: bool, seed: int = 0, group_by_length: bool = True,
                num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """A DataLoader over a tokenized split with a `length` column: length-grouped shuffled
    batches for training, the split's order for evaluation."""
    common = dict(collate_fn=collate_fn, num_workers=num_workers, pin_memory=pin_memory,
                  persistent_workers=num_workers > 0)
    rows = dataset.remove_columns(["length"])
    if train:
        sampler = LengthGroupedSampler(dataset["length"], batch_size, seed=seed, group_by_length=group_by_length)
        return DataLoader(rows, batch_size=batch_size, sampler=sampler, **common)
    return DataLoader(rows, batch_size=batch_size, shuffle=False, **common)
