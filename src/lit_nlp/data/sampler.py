"""Length-grouped batching: each batch holds texts of similar length, so dynamic padding pads
little, while batch order and membership are still shuffled every epoch. Under DDP every rank
takes its slice of the same global batches, so N processes with batch B train on exactly the
batches that one process with batch N x B would."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Sampler

from lit_nlp.data.shapes import collate_full_batch
from lit_nlp.errors import LitNlpError


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Yields this rank's batches of indices (a DataLoader's `batch_sampler`, so the loader
    never re-cuts them). Each epoch: shuffle all indices, cut them into windows of
    `window_batches` global batches, sort each window by length, cut it into global batches of
    `batch_size * num_replicas` and shuffle those. Rank r takes the r-th contiguous slice of
    every global batch, so its batches are length-homogeneous too. A window of 50 batches keeps
    most of the shuffling while padding falls to a few percent of the tokens.

    Every index comes once per epoch across the ranks, and every rank takes the same number of
    steps (DDP would hang otherwise). The one exception: when the last, short global batch does
    not split evenly, it is topped up with indices of the epoch's first batch (at most num_replicas - 1
    repeats per epoch), so the ranks' slices are equal and DDP's gradient average is the mean
    over the global batch.

    Deterministic in (seed, epoch): Lightning calls `set_epoch` before every epoch, so a run
    resumed from a checkpoint sees the same batches as one that never stopped. A resumed run
    builds its loader (and, with workers, fetches its first batches) before that call, so
    `resume_at` places the sampler where the checkpoint left off: the epoch to run and, after a
    mid-epoch checkpoint, how many of its batches were already trained (skipped once).
    `group_by_length=False` gives a plain seeded shuffle.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, shuffle: bool = True,
                 window_batches: int = 50, group_by_length: bool = True, num_replicas: int = 1, rank: int = 0):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, num_replicas), got rank={rank} num_replicas={num_replicas}")
        self.lengths = torch.as_tensor(list(lengths))
        self.batch_size = batch_size
        self.global_batch = batch_size * num_replicas
        self.seed = seed
        self.shuffle = shuffle
        self.group_by_length = group_by_length
        # a multiple of the global batch, so only the very last global batch can be short
        self.window = self.global_batch * window_batches
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self._skip: tuple[int, int] | None = None  # (epoch, batches) already trained before a restart

    @property
    def sampler(self) -> LengthGroupedBatchSampler:
        # Lightning calls `set_epoch` on `loader.sampler` and `loader.batch_sampler.sampler`,
        # never on the batch sampler itself: this makes it reach us
        return self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, batches_done: int = 0) -> None:
        """Start at `epoch`, leaving out its first `batches_done` batches (those trained before
        the checkpoint); later epochs are whole."""
        self.epoch = epoch
        self._skip = (epoch, batches_done) if batches_done else None

    def global_batches(self) -> list[list[int]]:
        """All ranks' batches of the current epoch, before slicing (what one process with
        batch `batch_size * num_replicas` would train on)."""
        n = len(self.lengths)
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        batches = []
        for start in range(0, n, self.window):
            window = order[start:start + self.window]
            if self.group_by_length:
                # stable sort keeps the shuffled order among equal lengths
                window = window[torch.sort(self.lengths[window], descending=True, stable=True).indices]
            batches.extend(window[i:i + self.global_batch].tolist() for i in range(0, len(window), self.global_batch))
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.global_batches()
        skip = self._skip[1] if self._skip and self._skip[0] == self.epoch else 0
        self._skip = None
        for position, batch in enumerate(batches):
            if position < skip:
                continue
            short = -len(batch) % self.num_replicas
            if short:  # top up from the epoch's first batch (repeated, should that one be this short one)
                batch = batch + (batches[0] * self.num_replicas)[:short]
            size = len(batch) // self.num_replicas
            yield batch[self.rank * size:(self.rank + 1) * size]

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.global_batch)


class ShardSampler(Sampler[int]):
    """Evaluation under DDP: rank r reads rows r, r + num_replicas, ... in order. Unlike
    torch's DistributedSampler it never pads with repeated rows, so metrics synced across ranks
    count every row exactly once, as one process would (ranks may differ by one row)."""

    def __init__(self, size: int, num_replicas: int = 1, rank: int = 0):
        self.indices = range(rank, size, num_replicas)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def trainer_shard(trainer) -> tuple[int, int]:
    """(num_replicas, rank) of the running trainer; (1, 0) outside one (tests, notebooks)."""
    if trainer is None:
        return 1, 0
    return trainer.world_size, trainer.global_rank


def make_loader(dataset, collate_fn, batch_size: int, train: bool, seed: int = 0, group_by_length: bool = True,
                num_workers: int = 0, pin_memory: bool = False, num_replicas: int = 1, rank: int = 0,
                full_batches: bool = False) -> DataLoader:
    """A DataLoader over a tokenized split with a `length` column: length-grouped shuffled
    batches for training, the split's order for evaluation; this rank's share under DDP (the
    trainer configs turn off Lightning's own sampler replacement: use_distributed_sampler).
    `full_batches`: every batch has `batch_size` rows, short ones filled with ignored rows
    (data/shapes.py), for static shapes."""
    if full_batches:
        collate_fn = functools.partial(collate_full_batch, collate=collate_fn, rows=batch_size)
    # the loader's own generator: building an iterator draws its workers' base seed from it, not
    # from torch's global generator, whose stream (dropout) would then depend on when Lightning
    # builds the iterator (after the epoch's reseed in a straight run, before it when resuming)
    common = dict(collate_fn=collate_fn, num_workers=num_workers, pin_memory=pin_memory,
                  persistent_workers=num_workers > 0, generator=torch.Generator().manual_seed(seed))
    rows = dataset.remove_columns(["length"])
    if train:
        batches = LengthGroupedBatchSampler(dataset["length"], batch_size, seed=seed, group_by_length=group_by_length,
                                            num_replicas=num_replicas, rank=rank)
        return DataLoader(rows, batch_sampler=batches, **common)
    return DataLoader(rows, batch_size=batch_size, sampler=ShardSampler(len(rows), num_replicas, rank), **common)


def split_loader(dm, split: str, train: bool) -> DataLoader:
    """The loader of one split of a data module `dm` (its datasets, batch sizes, seed, loader
    settings and `collate`), this rank's share under its trainer's DDP; the training loader
    starts where `dm.resume_position` (restored from a checkpoint) says."""
    if split not in dm.datasets:
        raise LitNlpError(f"no {split} split in the prepared data")
    num_replicas, rank = trainer_shard(dm.trainer)
    loader = make_loader(dm.datasets[split], dm.collate, dm.batch_size if train else dm.eval_batch_size, train,
                         dm.seed, dm.group_by_length, dm.num_workers, dm.pin_memory,
                         num_replicas=num_replicas, rank=rank, full_batches=dm.static_shapes)
    position = dm.resume_position
    if train and position:
        loader.batch_sampler.resume_at(position["epoch"], position["batches_done"])
        dm.resume_position = None  # once: a loader built again later starts at its epoch's beginning
    return loader


def train_position(trainer) -> dict | None:
    """Where training stands, for a data module's checkpoint state: the epoch a resumed run
    trains next and how many of its batches are already trained. A checkpoint written after an
    epoch's last batch (its validation, its end) resumes at the next epoch's first batch."""
    if trainer is None or trainer.state.fn != "fit":
        return None
    loop = trainer.fit_loop.epoch_loop.batch_progress
    if loop.is_last_batch:
        return {"epoch": trainer.current_epoch + 1, "batches_done": 0}
    return {"epoch": trainer.current_epoch, "batches_done": loop.current.processed}
