"""Confusion matrix as an image in TensorBoard (every validation) and, on test, as a PNG in the
run dir with its counts beside it in confusion_matrix.json (so `python -m lit_nlp.report` can
draw it again)."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only


def confusion_matrix_figure(matrix: torch.Tensor, label_names: list[str], title: str):
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    n = len(label_names)
    size = 2.5 + 0.5 * n
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix.numpy(), cmap="Blues")
    ax.set_xticks(range(n), label_names, rotation=45, ha="right")
    ax.set_yticks(range(n), label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    top = matrix.max().item() or 1
    for i in range(n):
        for j in range(n):
            value = int(matrix[i, j])
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > top / 2 else "black")
    fig.tight_layout()
    return fig


class ConfusionMatrixLogger(L.Callback):
    def __init__(self, png_dir: str | None = None):
        self.png_dir = png_dir

    def _draw(self, trainer: L.Trainer, pl_module, stage: str) -> None:
        matrix = getattr(pl_module, "confusion_matrix", {}).get(stage)  # classification only
        if matrix is None or trainer.sanity_checking:
            return
        import matplotlib.pyplot as plt

        fig = confusion_matrix_figure(matrix, pl_module.label_names, f"{stage} (step {trainer.global_step})")
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_figure(f"{stage}/confusion_matrix", fig, trainer.global_step)
        if stage == "test" and self.png_dir:
            Path(self.png_dir).mkdir(parents=True, exist_ok=True)
            fig.savefig(Path(self.png_dir) / "confusion_matrix.png", dpi=120)
            counts = {"stage": stage, "step": trainer.global_step, "labels": list(pl_module.label_names),
                      "matrix": matrix.tolist()}  # rows: true label, columns: predicted
            (Path(self.png_dir) / "confusion_matrix.json").write_text(json.dumps(counts, indent=1))
        plt.close(fig)

    @rank_zero_only
    def on_validation_end(self, trainer, pl_module) -> None:
        self._draw(trainer, pl_module, "val")

    @rank_zero_only
    def on_test_end(self, trainer, pl_module) -> None:
        self._draw(trainer, pl_module, "test")
