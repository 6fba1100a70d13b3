"""The task contract: what a task provides and what the rest of lit_nlp may call on it.

A task is one data config (conf/data/) and one model config (conf/model/) whose targets are its
data module and LightningModule, plus a codec (lit_nlp/codecs/<task>.py: text to tensors and
back, no Lightning) and a predictor (lit_nlp/predictors/<task>.py). `train()`, the sampler, the
callbacks, the export, predict.py and the benchmark call only what the protocols below name;
the shared plumbing behind them is written once, in `data/task_data.py` (TaskDataModule) and
`models/task_module.py` (TaskModule). A new task writes its reading, encoding, collating,
metrics and decoding, and adds one line to TASKS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch


class TaskData(Protocol):
    """A task's LightningDataModule (a TaskDataModule)."""

    main_metric: str  # what the checkpoint monitors unless `monitor` says otherwise
    tokenizer: Any  # after setup()
    batch_size: int
    eval_batch_size: int

    def prepare_data(self) -> None: ...
    def setup(self, stage: str | None = None) -> None: ...
    def collate(self, features: list[dict]) -> dict: ...
    def model_facts(self) -> dict: ...  # keyword arguments the model config is completed with
    def text_settings(self) -> dict: ...  # what predict needs; "task" names the TASKS entry
    def report(self) -> dict: ...  # data counts for metrics.json


class TaskModel(Protocol):
    """A task's LightningModule (a TaskModule)."""

    model: torch.nn.Module  # the Hugging Face model that the export saves

    def export_settings(self) -> dict: ...  # saved beside text_settings (threshold, class weights)


class TaskPredictor(Protocol):
    """Predicts from raw input as training encoded it; built as `Predictor(model, tokenizer,
    settings, device=..., compile=..., static_shapes=...)` from a model, its tokenizer and the
    saved settings. Each owns its input columns and output format; predict.py's CLI only calls
    these three."""

    def predict_rows(self, rows: list[dict], batch_size: int) -> list[dict]: ...  # input rows + predictions
    def rows_from_args(self, args: dict) -> list[dict]: ...  # predict.py's text=/question=/input= as rows
    def format_row(self, row: dict) -> str: ...  # one console line


@dataclass(frozen=True)
class Task:
    """Where a task's parts live, by import path (imported only when used: predicting from an
    export needs no LightningModule)."""

    auto_model: str  # the transformers Auto class an export loads with
    module: str  # the LightningModule, which rebuilds the architecture from a checkpoint
    predictor: str


# text_settings()["task"] -> its parts
TASKS = {
    "classification": Task("transformers.AutoModelForSequenceClassification",
                           "lit_nlp.models.classification.ClassificationModule",
                           "lit_nlp.predictors.classification.ClassificationPredictor"),
    "seq2seq": Task("transformers.AutoModelForSeq2SeqLM", "lit_nlp.models.seq2seq.Seq2SeqModule",
                    "lit_nlp.predictors.seq2seq.Seq2SeqPredictor"),
    "extractive_qa": Task("transformers.AutoModelForQuestionAnswering",
                          "lit_nlp.models.extractive_qa.ExtractiveQAModule",
                          "lit_nlp.predictors.extractive_qa.ExtractiveQAPredictor"),
    "token_classification": Task("transformers.AutoModelForTokenClassification",
                                 "lit_nlp.models.token_classification.TokenClassificationModule",
                                 "lit_nlp.predictors.token_classification.TokenClassificationPredictor"),
}
