"""`profile=true`: torch.profiler over a few steps of our training path, summarised as where
the wall time of a step goes: inside PyTorch operators (the aten:: ops the model, loss and
optimizer run) versus around them on the host (Python in Lightning, callbacks, the model's
forward code, the loader and collate), plus GPU kernel time when on CUDA."""

from __future__ import annotations

import time

import lightning as L
import torch
from torch.profiler import ProfilerActivity, profile


class StepProfiler(L.Callback):
    """Profiles training steps start .. start + num_steps - 1 (0-based; the run must be that long)."""

    def __init__(self, start: int, num_steps: int):
        self.start, self.num_steps = start, num_steps
        self.profiler: profile | None = None
        self.wall_s = 0.0
        self._t0 = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.start and self.profiler is None:
            activities = [ProfilerActivity.CPU]
            if pl_module.device.type == "cuda":
                activities.append(ProfilerActivity.CUDA)
                torch.cuda.synchronize()
            self.profiler = profile(activities=activities)
            self.profiler.__enter__()
            self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.profiler is not None and not self.wall_s and trainer.global_step >= self.start + self.num_steps:
            if pl_module.device.type == "cuda":
                torch.cuda.synchronize()
            self.wall_s = time.perf_counter() - self._t0
            self.profiler.__exit__(None, None, None)

    def summary(self, top: int = 15) -> dict:
        """Per-step wall time split into aten ops and the rest, and the top ops by self time."""
        events = [e for e in self.profiler.key_averages() if e.key.startswith("aten::")]
        steps = self.num_steps
        wall_ms = 1000 * self.wall_s / steps
        aten_ms = sum(e.self_cpu_time_total for e in events) / 1000 / steps
        device_ms = sum(getattr(e, "self_device_time_total", 0) for e in events) / 1000 / steps
        rows = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
        return {
            "steps": steps, "wall_ms_per_step": wall_ms, "aten_cpu_ms_per_step": aten_ms,
            "host_overhead_ms_per_step": wall_ms - aten_ms, "host_overhead_fraction": 1 - aten_ms / wall_ms,
            "gpu_kernel_ms_per_step": device_ms or None,
            "top_ops": [{"op": e.key, "calls_per_step": e.count / steps,
                         "self_cpu_ms_per_step": e.self_cpu_time_total / 1000 / steps,
                         "share_of_wall": e.self_cpu_time_total / 1000 / steps / wall_ms,
                         "self_gpu_ms_per_step": getattr(e, "self_device_time_total", 0) / 1000 / steps}
                        for e in rows],
        }
