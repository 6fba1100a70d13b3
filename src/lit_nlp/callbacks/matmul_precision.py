"""TF32 matmuls on CUDA: float32 matrix products (a `32-true` run, and the parts of a
bf16-mixed run that autocast leaves in fp32) on the tensor cores at 10-bit mantissa precision,
about 8x the fp32 rate of an A100/H100 (H100 SXM: 495 TF32 vs 67 TFLOP/s fp32, dense)."""

from __future__ import annotations

import logging

import lightning as L
import torch

from lit_nlp.errors import LitNlpError

log = logging.getLogger(__name__)

PRECISIONS = ("highest", "high", "medium")


class MatmulPrecision(L.Callback):
    """`torch.set_float32_matmul_precision(precision)` when the run trains on a CUDA device;
    "highest" keeps exact fp32 matmuls. CPU runs are left alone."""

    def __init__(self, precision: str = "high"):
        if precision not in PRECISIONS:
            raise LitNlpError(f"callbacks.matmul_precision.precision={precision!r} is not one of {', '.join(PRECISIONS)}")
        self.precision = precision

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.set_float32_matmul_precision(self.precision)
            log.info("float32 matmul precision: %s", self.precision)
