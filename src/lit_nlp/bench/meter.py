"""Step timing and token counting shared by both sides of a comparison (our Lightning run and
the Hugging Face Trainer), so the same clock and the same counts measure both.

Nothing here waits for the GPU inside the measured steps: token counts are summed on the
device and read once at the end, and the clock synchronises with CUDA only at the two ends of
the measured window (after `warmup` steps, and after the last of `total_steps`)."""

from __future__ import annotations

import time

import lightning as L
import torch
from transformers import TrainerCallback

from lit_nlp.data.shapes import real_rows
from lit_nlp.codecs.common import IGNORE_INDEX


class StepMeter:
    """`on_batch(batch)` before each step and `on_step_end()` after it. The first `warmup`
    steps (compilation, allocator and cuDNN warm-up) are not timed; `t0` (set at construction:
    before the model is built) gives the time to the first finished step."""

    def __init__(self, warmup: int, total_steps: int, device: torch.device):
        self.warmup = warmup
        self.total_steps = total_steps
        self.device = device
        self.t0 = time.perf_counter()
        self.steps = 0
        self.first_step_s: float | None = None
        self.window_start: float | None = None
        self.window_end: float | None = None
        self.samples = 0
        self.padded_tokens = 0
        self._sums: dict[str, torch.Tensor] = {}
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _add(self, key: str, value: torch.Tensor) -> None:
        self._sums[key] = self._sums[key] + value if key in self._sums else value

    def on_batch(self, batch: dict) -> None:
        if not self.warmup <= self.steps < self.total_steps:  # steps after the window: profiling
            return
        ids = batch["input_ids"]
        n = real_rows(batch, ids.shape[0])  # filler rows of a static-shape batch count nowhere
        self.samples += n  # shapes are known on the host: no sync
        self.padded_tokens += ids.numel()  # filler rows are computed: they count as padding
        lengths = batch["attention_mask"][:n].sum(1)
        self._add("tokens", lengths.sum())
        self._add("tokens_sq", (lengths * lengths).sum())
        if "labels" in batch and batch["labels"].dim() == 2:  # seq2seq targets
            target = (batch["labels"][:n] != IGNORE_INDEX).sum(1)
            self._add("target_tokens", target.sum())
            self._add("target_sq", (target * target).sum())
            self._add("cross", (lengths * target).sum())

    def on_step_end(self) -> None:
        self.steps += 1
        if self.steps == 1:
            self._sync()
            self.first_step_s = time.perf_counter() - self.t0
        if self.steps in (self.warmup, self.total_steps):
            self._sync()
            if self.steps == self.warmup:
                self.window_start = time.perf_counter()
            else:
                self.window_end = time.perf_counter()

    def result(self) -> dict:
        """Counts and times of the measured window (step time, samples and real tokens)."""
        measured = min(self.steps, self.total_steps) - self.warmup
        if measured < 1 or self.window_start is None or self.window_end is None:
            raise RuntimeError(f"{self.steps} of {self.total_steps} steps ran ({self.warmup} of warm-up)")
        seconds = self.window_end - self.window_start
        counts = {k: int(v) for k, v in self._sums.items()}
        out = {"steps": measured, "seconds": seconds, "step_time_ms": 1000 * seconds / measured,
               "samples": self.samples, "samples_per_s": self.samples / seconds,
               "tokens": counts["tokens"] + counts.get("target_tokens", 0),
               "padded_tokens": self.padded_tokens, "time_to_first_step_s": self.first_step_s, "counts": counts}
        out["tokens_per_s"] = out["tokens"] / seconds
        # source padding only: the share of computed positions that were padding
        out["padding_fraction"] = 1 - counts["tokens"] / max(self.padded_tokens, 1)
        if self.device.type == "cuda":
            out["peak_memory_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        return out


class LightningMeter(L.Callback):
    """Feeds a StepMeter from Lightning's batch hooks (on_train_batch_end follows the
    optimizer step)."""

    def __init__(self, meter: StepMeter):
        self.meter = meter

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.meter.on_batch(batch)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.meter.on_step_end()


class TrainerMeter(TrainerCallback):
    """Feeds a StepMeter from the Hugging Face Trainer: its callbacks do not see the batch, so
    `attach` also wraps the trainer's `training_step` to hand each batch to the meter first."""

    def __init__(self, meter: StepMeter):
        self.meter = meter

    def attach(self, trainer) -> None:
        step = trainer.training_step

        def counted(model, inputs, *args, **kwargs):
            self.meter.on_batch(inputs)
            return step(model, inputs, *args, **kwargs)

        trainer.training_step = counted
        trainer.add_callback(self)

    def on_step_end(self, args, state, control, **kwargs):
        self.meter.on_step_end()
