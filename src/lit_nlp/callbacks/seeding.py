"""Reseed before every training batch, so the random numbers a step draws (dropout masks) depend
only on (seed, epoch, batch, rank): a run resumed from any checkpoint, at an epoch's end or in
its middle, draws what a run that never stopped draws, on every rank, with no RNG state in the
checkpoint. Whatever else touched the global generators before the step (building a data
iterator, a validation pass, a sanity check) cannot shift the stream."""

from __future__ import annotations

import random

import lightning as L
import numpy as np
import torch

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def step_seed(seed: int, epoch: int, batch: int, rank: int) -> int:
    """A 32-bit seed (numpy's limit) hashed from the four numbers, so distinct steps get
    unrelated streams (seed + epoch + batch would repeat a step's masks one epoch later)."""
    h = 0
    for value in (seed, epoch, batch, rank):
        h = _splitmix64(h ^ (value & _MASK64))
    return h >> 32


class StepSeed(L.Callback):
    def __init__(self, seed: int):
        self.seed = seed

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        value = step_seed(self.seed, trainer.current_epoch, batch_idx, trainer.global_rank)
        random.seed(value)
        np.random.seed(value)
        # the CPU generator, and the GPUs' once CUDA is up: this hook takes 13 us a step on a
        # 2-core CPU, where torch.manual_seed alone, which also walks every other backend, took 136 us
        torch.default_generator.manual_seed(value)
        if torch.cuda.is_initialized():
            torch.cuda.manual_seed_all(value)  # host-side: sets each device generator's seed, no sync
