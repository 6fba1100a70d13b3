"""Confusion matrix as an image in TensorBoard (every validation) and, on test, as a PNG in the
run dir with its counts beside it in confusion_matrix.json (so `python -m lit_nlp.plots` can
draw it again)."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from lit_nlp.plots import confusion_matrix_figure
from lit_nlp.run_layout import CONFUSION_JSON, CONFUSION_PNG


class ConfusionMatrixLogger(L.Callback):
    def __init__(self, png_dir: str | None = None):
        self.png_dir = png_dir

    def _draw(self, trainer: L.Trainer, pl_module, stage: str) -> None:
        matrix = getattr(pl_module, "confusion_matrix", {}).get(stage)  # classification only
        if matrix is None or trainer.sanity_checking:
            return
        fig = confusion_matrix_figure(matrix, pl_module.label_names, f"{stage} (step {trainer.global_step})")
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_figure(f"{stage}/confusion_matrix", fig, trainer.global_step)
        if stage == "test" and self.png_dir:
            Path(self.png_dir).mkdir(parents=True, exist_ok=True)
            fig.savefig(Path(self.png_dir) / CONFUSION_PNG, dpi=120)
            counts = {"stage": stage, "step": trainer.global_step, "labels": list(pl_module.label_names),
                      "matrix": matrix.tolist()}  # rows: true label, columns: predicted
            (Path(self.png_dir) / CONFUSION_JSON).write_text(json.dumps(counts, indent=1))

    @rank_zero_only
    def on_validation_end(self, trainer, pl_module) -> None:
        self._draw(trainer, pl_module, "val")

    @rank_zero_only
    def on_test_end(self, trainer, pl_module) -> None:
        self._draw(trainer, pl_module, "test")
