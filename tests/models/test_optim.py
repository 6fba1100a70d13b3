"""Optimizer kernels: AdamW takes the fused kernel when every parameter is on one device type
that has it (CUDA, CPU), the foreach (multi-tensor) path otherwise, and nothing is forced on
other optimizers or when the config chose itself."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from lit_nlp.models.optim import build_optimization, kernel_flags

ADAMW = {"_target_": "torch.optim.AdamW", "lr": 1e-3, "weight_decay": 0.01}
SCHEDULE = {"name": "constant"}


def test_kernel_flags():
    on_cpu = [torch.zeros(2), torch.zeros(2, 2)]
    # stands in for CUDA tensors on a CPU machine
    on_cuda = [SimpleNamespace(device=torch.device("cuda"), is_floating_point=lambda: True)] * 2
    assert kernel_flags(torch.optim.AdamW, on_cpu) == {"fused": True}
    assert kernel_flags(torch.optim.AdamW, on_cuda) == {"fused": True}
    assert kernel_flags(torch.optim.Adam, on_cuda) == {"fused": True}
    assert kernel_flags(torch.optim.SGD, on_cuda) == {}
    assert kernel_flags(torch.optim.AdamW, on_cuda + on_cpu) == {"foreach": True}  # mixed devices


def test_built_adamw_on_cpu_is_fused_and_steps_like_the_plain_one():
    torch.manual_seed(0)
    fused_model, plain_model = nn.Linear(4, 2), nn.Linear(4, 2)
    plain_model.load_state_dict(fused_model.state_dict())
    fused = build_optimization(fused_model, ADAMW, SCHEDULE, 10)["optimizer"]
    plain = build_optimization(plain_model, {**ADAMW, "foreach": False}, SCHEDULE, 10)["optimizer"]
    assert all(g["fused"] is True for g in fused.param_groups)
    x = torch.randn(8, 4)
    for model, optimizer in ((fused_model, fused), (plain_model, plain)):
        for _ in range(3):
            optimizer.zero_grad()
            model(x).pow(2).mean().backward()
            optimizer.step()
    for a, b in zip(fused_model.parameters(), plain_model.parameters()):
        torch.testing.assert_close(a, b)


def test_config_choice_wins():
    optimizer = build_optimization(nn.Linear(4, 2), {**ADAMW, "foreach": False}, SCHEDULE, 10)["optimizer"]
    assert all(g["foreach"] is False for g in optimizer.param_groups)


def test_other_optimizers_untouched():
    sgd = build_optimization(nn.Linear(4, 2), {"_target_": "torch.optim.SGD", "lr": 0.1}, SCHEDULE, 10)["optimizer"]
    assert all(g["foreach"] is None for g in sgd.param_groups)
