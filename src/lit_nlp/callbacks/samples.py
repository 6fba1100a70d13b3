"""A text table of generation examples (input, reference, prediction) in TensorBoard at every
validation and test: the quickest way to see what a seq2seq model actually writes."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only


def _cell(text: str, limit: int = 300) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + " ..."


class GenerationSamples(L.Callback):
    def _log(self, trainer: L.Trainer, pl_module, stage: str) -> None:
        examples = getattr(pl_module, "examples", {}).get(stage)
        if not examples or trainer.sanity_checking:
            return
        rows = ["| input | reference | prediction |", "| --- | --- | --- |"]
        rows += [f"| {_cell(s)} | {_cell(r)} | {_cell(p)} |" for s, r, p in examples]
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_text(f"{stage}/examples", "\n".join(rows), trainer.global_step)

    @rank_zero_only
    def on_validation_end(self, trainer, pl_module) -> None:
        self._log(trainer, pl_module, "val")

    @rank_zero_only
    def on_test_end(self, trainer, pl_module) -> None:
        self._log(trainer, pl_module, "test")
