"""Mixed precision with the fused AdamW and gradient clipping, the combination every GPU run
uses by default (bf16-mixed) and Lightning's own plugin refused. All on the CPU: bf16 autocast
and the fused AdamW exist here, and our plugin runs 16-mixed as real fp16 with a CPU GradScaler."""

from __future__ import annotations

import json
import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import compose_cfg, synthetic_rows, tiny_overrides, write_table
from lit_nlp.mixed_precision import MixedPrecision, precision_arguments, precision_plugin
from lit_nlp.train import train

CLIP = 0.05  # far below the gradient norms here, so clipping always acts


class Probe(L.LightningModule):
    """A linear regression whose gradient norm at clipping time is recorded."""

    def __init__(self, fused: bool = True):
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(8, 4)
        self.fused = fused
        self.norms_at_clip: list[float] = []
        self.norms_after_clip: list[float] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x).float(), y)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        self.norms_at_clip.append(float(_grad_norm(self)))
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
        self.norms_after_clip.append(float(_grad_norm(self)))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-2, fused=self.fused)


def _grad_norm(module) -> torch.Tensor:
    return torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in module.parameters()]))


def _batches(scale: float = 1.0):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(16, 8, generator=gen) * scale
    return DataLoader(list(zip(x, torch.randn(16, 4, generator=gen))), batch_size=16)


def _reference_norm(mode: str) -> float:
    """The true gradient norm of the first batch under the same autocast, no scaler."""
    module = Probe()
    x, y = next(iter(_batches()))
    with torch.autocast("cpu", dtype=torch.bfloat16 if mode == "bf16-mixed" else torch.float16):
        loss = module.training_step((x, y), 0)
    loss.backward()
    return float(_grad_norm(module))


def _fit(plugin, module, loader, steps=1):
    trainer = L.Trainer(accelerator="cpu", max_steps=steps, plugins=[plugin], gradient_clip_val=CLIP, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, loader)
    return trainer


@pytest.mark.parametrize("mode", ["bf16-mixed", "16-mixed"])
def test_fused_adamw_clips_the_true_gradients(mode):
    """With a scaler (16-mixed, loss scaled by 1024) the gradients are unscaled before they are
    clipped; without one (bf16-mixed) they are clipped as they are. Either way clipping sees the
    true norm, and leaves it at the clip value."""
    plugin = MixedPrecision(mode, "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=1024.0)
                            if mode == "16-mixed" else None)
    module = Probe(fused=True)
    _fit(plugin, module, _batches())
    assert module.norms_at_clip[0] == pytest.approx(_reference_norm(mode), rel=2e-2)
    assert module.norms_at_clip[0] > 10 * CLIP
    assert module.norms_after_clip[0] == pytest.approx(CLIP, rel=1e-3)


def test_overflow_skips_the_fused_step_and_backs_off():
    """An fp16 gradient overflow (inf) leaves the weights as they were and halves the scale,
    decided on the device by the fused kernel's found_inf."""
    plugin = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=2.0**16))
    module = Probe(fused=True)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    _fit(plugin, module, _batches(scale=1e4))  # fp16 activations overflow to inf
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    assert plugin.scaler.get_scale() == 2.0**15


def test_plugin_choice():
    assert isinstance(precision_plugin("bf16-mixed", "cpu"), MixedPrecision)
    plugin = precision_plugin("16-mixed", "cpu")
    assert plugin.scaler is not None and plugin.device == "cpu"
    assert precision_plugin("bf16-mixed", "cpu").scaler is None
    assert precision_plugin("32-true", "cpu") is None
    assert precision_plugin("bf16-mixed", "cpu", strategy="fsdp") is None
    assert precision_plugin("bf16-mixed", "gpu", strategy={"_target_": "lightning.pytorch.strategies.DeepSpeedStrategy"}) is None
    assert isinstance(precision_plugin("bf16-mixed", "gpu", strategy="ddp"), MixedPrecision)
    assert precision_arguments({"precision": "32-true", "accelerator": "cpu"}, []) == {}
    kwargs = precision_arguments({"precision": "bf16-mixed", "accelerator": "cpu"}, ["io"])
    assert kwargs["precision"] is None and kwargs["plugins"][0] == "io"


def test_train_in_16_mixed_on_cpu_keeps_the_scaler_in_checkpoints(tmp_path):
    data = write_table(synthetic_rows(200, seed=3), tmp_path / "train.csv")
    run = tmp_path / "run"
    train(compose_cfg(tiny_overrides(data) + ["trainer.precision=16-mixed"], run))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_step"] == 10 and math.isfinite(metrics["test/loss"])  # 160 training rows, batches of 16
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    # the GradScaler's state, for resume: updated after each of the 10 steps, none skipped for an
    # overflow (the scale would have halved and the count of clean steps restarted)
    scaler = ckpt["MixedPrecision"]
    assert (scaler["scale"], scaler["_growth_tracker"]) == (2.0**16, 10)
