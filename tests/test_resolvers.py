"""The machine-dependent config defaults: precision, pinned memory and loader workers follow
the accelerator a run will use (CUDA faked by monkeypatching torch.cuda)."""

from __future__ import annotations

import pytest
import torch

from conftest import compose_cfg
from lit_nlp import resolvers


def fake_cuda(monkeypatch, available: bool, bf16: bool = True) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)


@pytest.mark.parametrize("available,bf16,accelerator,expected", [
    (True, True, "auto", "bf16-mixed"),
    (True, True, "gpu", "bf16-mixed"),
    (True, True, "cpu", "32-true"),     # a GPU machine told to train on CPU
    (True, False, "auto", "32-true"),   # pre-Ampere GPU: no bf16, fp16 would need a scaler
    (False, False, "auto", "32-true"),
])
def test_default_precision(monkeypatch, available, bf16, accelerator, expected):
    fake_cuda(monkeypatch, available, bf16)
    assert resolvers.default_precision(accelerator) == expected


def test_loader_defaults_follow_the_device(monkeypatch):
    fake_cuda(monkeypatch, True)
    monkeypatch.setattr(resolvers.os, "cpu_count", lambda: 16)
    assert resolvers.on_cuda("auto") and resolvers.default_num_workers("auto") == 4
    monkeypatch.setattr(resolvers.os, "cpu_count", lambda: 2)
    assert resolvers.default_num_workers("gpu") == 1
    assert not resolvers.on_cuda("cpu") and resolvers.default_num_workers("cpu") == 0


def test_configs_resolve_per_accelerator(monkeypatch, tmp_path, synthetic_csv):
    fake_cuda(monkeypatch, True)
    gpu = compose_cfg(["data=csv", f"data.train_file={synthetic_csv}", "trainer.accelerator=auto"], tmp_path / "a")
    assert gpu.trainer.precision == "bf16-mixed" and gpu.data.pin_memory is True and gpu.data.num_workers >= 0
    cpu = compose_cfg(["data=csv", f"data.train_file={synthetic_csv}"], tmp_path / "b")  # compose_cfg: cpu
    assert cpu.trainer.precision == "32-true" and cpu.data.pin_memory is False and cpu.data.num_workers == 0


def test_job_dirname_drops_hydras_add_prefixes():
    from lit_nlp.resolvers import job_dirname

    # trainer.max_steps=30 reaches Hydra as ++trainer.max_steps=30 (lit_nlp.trainer_args)
    assert job_dirname("++trainer.max_steps=30,+a=1,model.optimizer.lr=1e-05") == \
        "trainer.max_steps=30,a=1,model.optimizer.lr=1e-05"
    assert job_dirname("monitor=val/f1") == "monitor=val_f1"


def test_relative_to_names_a_run_under_the_output_root(tmp_path):
    from lit_nlp.resolvers import relative_to

    assert relative_to(str(tmp_path / "out" / "runs" / "x"), str(tmp_path / "out")) == "runs/x"
    assert relative_to("/elsewhere/run", str(tmp_path / "out")) == "/elsewhere/run"
