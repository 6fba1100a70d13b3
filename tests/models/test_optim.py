"""Optimizer kernels: AdamW takes the fused CUDA kernel when every parameter is on CUDA, the
foreach (multi-tensor) path otherwise, and nothing is forced on other optimizers or when the
config chose itself."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from lit_nlp.models.optim import build_optimization, kernel_flags

ADAMW = {"_target_": "torch.optim.AdamW", "lr": 1e-3, "weight_decay": 0.01}
SCHEDULE = {"name": "constant"}


def test_kernel_flags():
    on_cpu = [torch.zeros(2)]
    on_cuda = [SimpleNamespace(is_cuda=True)] * 2  # stands in for CUDA tensors on a CPU machine
    assert kernel_flags(torch.optim.AdamW, on_cpu) == {"foreach": True}
    assert kernel_flags(torch.optim.AdamW, on_cuda) == {"fused": True}
    assert kernel_flags(torch.optim.Adam, on_cuda) == {"fused": True}
    assert kernel_flags(torch.optim.SGD, on_cuda) == {}
    assert kernel_flags(torch.optim.AdamW, on_cuda + on_cpu) == {"foreach": True}  # mixed devices


def test_built_adamw_on_cpu_is_foreach():
    optimizer = build_optimization(nn.Linear(4, 2), ADAMW, SCHEDULE, 10)["optimizer"]
    assert all(g["foreach"] is True and not g["fused"] for g in optimizer.param_groups)


def test_config_choice_wins():
    optimizer = build_optimization(nn.Linear(4, 2), {**ADAMW, "foreach": False}, SCHEDULE, 10)["optimizer"]
    assert all(g["foreach"] is False for g in optimizer.param_groups)


def test_other_optimizers_untouched():
    sgd = build_optimization(nn.Linear(4, 2), {"_target_": "torch.optim.SGD", "lr": 0.1}, SCHEDULE, 10)["optimizer"]
    assert all(g["foreach"] is None for g in sgd.param_groups)
