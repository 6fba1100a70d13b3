"""Extractive QA: every test question's predicted answer in the run dir, one JSON line each, so a
score can be checked question by question (or with the official SQuAD script)."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only


class QAPredictions(L.Callback):
    """Writes `path` (jsonl) at the end of the test: id, answer, score, start, end (characters
    of the context), n_best, the gold answers, exact_match and f1 per question."""

    def __init__(self, path: str):
        self.path = Path(path)

    @rank_zero_only
    def on_test_end(self, trainer: L.Trainer, pl_module) -> None:
        predictions = getattr(pl_module, "predictions", {}).get("test")  # extractive QA only
        if not predictions:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", encoding="utf-8") as fh:
            for qid, answer in predictions.items():
                fh.write(json.dumps({"id": qid, **answer}, ensure_ascii=False) + "\n")
