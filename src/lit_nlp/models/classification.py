"""Sequence classification: any AutoModelForSequenceClassification (BERT, DistilBERT,
RoBERTa, ...) with torchmetrics, AdamW and a warm-up schedule. Single-label (softmax and
cross-entropy) or multi-label (sigmoid and binary cross-entropy per label, a decision
threshold); optional class weights in the loss."""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.aggregation import CatMetric
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)
from torchmetrics.functional.classification import (
    multilabel_exact_match,
    multilabel_f1_score,
    multilabel_precision,
    multilabel_recall,
)
from transformers import AutoModelForSequenceClassification

from lit_nlp.codecs.common import IGNORE_INDEX  # filler rows' labels (data/shapes.py): no loss, no metric
from lit_nlp.data.shapes import real_rows
from lit_nlp.errors import LitNlpError
from lit_nlp.models.backbones import (
    plain_config,
)
from lit_nlp.models.task_module import TaskModule

# decision thresholds tried by `tune_threshold` on the validation set: 0.05, 0.10, ..., 0.95
THRESHOLD_GRID = [round(0.05 * i, 2) for i in range(1, 20)]


def class_weight_tensor(class_weights, label_names: list[str], multi_label: bool,
                        label_counts: list[int] | None = None, train_rows: int | None = None) -> torch.Tensor | None:
    """One loss weight per label from `model.class_weights`: null (none), `balanced`, a list in
    label order, or {label: weight}.

    `balanced`, single-label: n_rows / (n_classes x n_c), so each class adds as much to the
    loss as if the classes were equally frequent (2,000 and 200 rows: weights 0.55 and 5.5).
    Multi-label: the BCE `pos_weight` of each label, negatives / positives (a label on 5% of
    the rows: 19)."""
    if class_weights is None:
        return None
    n = len(label_names)
    if class_weights == "balanced":
        if label_counts is None or len(label_counts) != n or not train_rows:
            raise LitNlpError("model.class_weights=balanced needs the training label counts from the data module")
        counts = torch.tensor(label_counts, dtype=torch.float)
        if (counts == 0).any():
            absent = [name for name, c in zip(label_names, label_counts) if not c]
            raise LitNlpError(f"model.class_weights=balanced: labels {absent} have no training row (all in a "
                              "validation fold?); give the weights as a list instead")
        weights = (train_rows - counts) / counts if multi_label else counts.sum() / (n * counts)
        return weights.float()
    if isinstance(class_weights, str):
        raise LitNlpError(f"model.class_weights must be balanced, a list or a {{label: weight}} mapping, "
                          f"got {class_weights!r}")
    if hasattr(class_weights, "items"):
        unknown = sorted(set(class_weights) - set(label_names))
        if unknown:
            raise LitNlpError(f"model.class_weights names labels {unknown} that the data does not have {label_names}")
        class_weights = [class_weights.get(name, 1.0) for name in label_names]
    values = list(class_weights)
    if len(values) != n:
        raise LitNlpError(f"model.class_weights has {len(values)} values but the data has {n} labels {label_names}; "
                          "give one weight per label in that order (or {label: weight})")
    try:
        weights = torch.tensor([float(v) for v in values])
    except (TypeError, ValueError):
        raise LitNlpError(f"model.class_weights must be numbers, got {values}") from None
    if (weights <= 0).any():
        raise LitNlpError(f"model.class_weights must be positive, got {values}")
    return weights


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, multi_label: bool,
                        weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy over the rows (class-weighted: the weighted mean), or mean binary
    cross-entropy over every label of every row; filler rows (IGNORE_INDEX) count in neither."""
    logits = logits.float()
    if multi_label:
        mask = labels >= 0
        per_label = F.binary_cross_entropy_with_logits(logits, labels.clamp(min=0).float(), pos_weight=weights,
                                                       reduction="none")
        return (per_label * mask).sum() / mask.sum().clamp(min=1)
    return F.cross_entropy(logits, labels, weight=weights, ignore_index=IGNORE_INDEX)


def best_threshold(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """The grid threshold with the highest micro F1 (the lowest of equals)."""
    scores = [multilabel_f1_score(probs, labels, labels.shape[1], threshold=t, average="micro", ignore_index=IGNORE_INDEX)
              for t in THRESHOLD_GRID]
    return THRESHOLD_GRID[int(torch.stack(scores).argmax())]


class ClassificationModule(TaskModule):
    """Wraps a Hugging Face sequence classifier.

    backbone: `{pretrained: <hub name | folder>}` or `{config: {model_type: bert, hidden_size: 64, ...}}`
    optimizer: a config with `_target_` (e.g. torch.optim.AdamW), completed with parameter
        groups in `configure_optimizers`; `weight_decay` applies to weights only.
    scheduler: kwargs of `lit_nlp.models.optim.warmup_schedule` (name, warmup_ratio, ...).
    finetune / num_frozen_layers: see `apply_finetune_strategy`.
    gradient_checkpointing: trade compute for activation memory (`enable_gradient_checkpointing`).
    label_names, vocab_size, pad_token_id, multi_label, label_counts, train_rows: run-time
        facts from the data module.
    class_weights: null, `balanced` or one weight per label (see `class_weight_tensor`); the
        resolved weights are saved with the model (hparams, and the export's lit_nlp.json).
    threshold (multi-label): a label is predicted when its probability reaches it; with
        `tune_threshold` it is set after every validation to the grid value with the best
        validation micro F1, and the checkpoint keeps it.
    attn_implementation: "sdpa" (default), "eager", or null (the library's choice); see
        `build_hf_model`. compile: true (or `nn.Module.compile` kwargs) compiles the HF model when
        the trainer sets the module up; see `lit_nlp.models.compiled`.
    hf_config: a saved model config; when given, the architecture is rebuilt from it and the
        weights come from the checkpoint (how predict loads a `.ckpt` without the hub).
    """

    def __init__(
        self,
        label_names: list[str],
        multi_label: bool = False,
        class_weights: str | list | dict | None = None,
        threshold: float = 0.5,
        tune_threshold: bool = False,
        label_counts: list[int] | None = None,
        train_rows: int | None = None,
        **model,
    ):
        super().__init__()
        label_names = list(plain_config(label_names))
        weights = class_weight_tensor(plain_config(class_weights), label_names, multi_label, label_counts, train_rows)
        if not 0 < threshold < 1:
            raise LitNlpError(f"model.threshold must be between 0 and 1, got {threshold}")
        # problem_type tells transformers.pipeline to apply a sigmoid per label (multi-label)
        facts = {"num_labels": len(label_names), "id2label": dict(enumerate(label_names)),
                 "label2id": {n: i for i, n in enumerate(label_names)},
                 "problem_type": "multi_label_classification" if multi_label else "single_label_classification"}
        self.build_model(AutoModelForSequenceClassification, **model, facts=facts, task_hparams={
            "label_names": label_names, "multi_label": multi_label,
            "class_weights": weights.tolist() if weights is not None else None, "threshold": threshold,
            "tune_threshold": tune_threshold})
        self.multi_label = multi_label
        self.register_buffer("class_weights", weights, persistent=False)  # rebuilt from hparams
        if multi_label:  # a buffer, so that each checkpoint holds the threshold it was validated with
            self.register_buffer("threshold", torch.tensor(float(threshold)))
        # DistilBERT takes no token_type_ids; drop batch keys the model's forward does not take
        # and keep the labels: the loss is ours (class weights, multi-label, filler rows)
        self._forward_keys = set(inspect.signature(self.model.forward).parameters) - {"labels"}
        n = len(label_names)
        # last computed confusion matrices (CPU), read by the ConfusionMatrixLogger callback
        self.confusion_matrix: dict[str, torch.Tensor] = {}
        if multi_label:
            # every probability and label of the split, gathered across ranks: the threshold is
            # chosen, and the F1 scores computed, once the whole split is in
            for stage in ("val", "test"):
                setattr(self, f"{stage}_probs", CatMetric(nan_strategy="disable"))
                setattr(self, f"{stage}_labels", CatMetric(nan_strategy="disable"))
            return
        metrics = MetricCollection({
            "acc": MulticlassAccuracy(n, average="micro", ignore_index=IGNORE_INDEX),
            "f1_macro": MulticlassF1Score(n, average="macro", ignore_index=IGNORE_INDEX),
            "precision_macro": MulticlassPrecision(n, average="macro", ignore_index=IGNORE_INDEX),
            "recall_macro": MulticlassRecall(n, average="macro", ignore_index=IGNORE_INDEX),
        })
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.val_f1_per_class = MulticlassF1Score(n, average="none", ignore_index=IGNORE_INDEX)
        self.test_f1_per_class = MulticlassF1Score(n, average="none", ignore_index=IGNORE_INDEX)
        self.val_confmat = MulticlassConfusionMatrix(n, ignore_index=IGNORE_INDEX)
        self.test_confmat = MulticlassConfusionMatrix(n, ignore_index=IGNORE_INDEX)

    @property
    def label_names(self) -> list[str]:
        return self.hparams.label_names

    def _run(self, batch: dict):
        model = getattr(self, "_compiled", None) or self.model
        return model(**{k: v for k, v in batch.items() if k in self._forward_keys})

    def forward(self, batch: dict) -> torch.Tensor:
        return self._run(batch).logits

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return classification_loss(logits, labels, self.multi_label, self.class_weights)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self._loss(self(batch), batch["labels"])
        # not prog_bar: Lightning turns progress-bar values into Python numbers (.item(), a
        # host-device sync) after every step; callbacks/progress.py reads the loss every
        # log_every_n_steps instead, as the loggers do
        self.log("train/loss", loss, on_step=True, on_epoch=True,
                 batch_size=real_rows(batch, batch["labels"].shape[0]))
        return loss

    def eval_step(self, batch: dict, batch_idx: int, stage: str) -> None:
        logits, labels = self(batch), batch["labels"]
        loss = self._loss(logits, labels)
        # rows past real_rows fill a static-shape batch (data/shapes.py): the loss ignores them
        # (label -100) and the metrics never see them; slicing by a host int costs no sync
        n = real_rows(batch, labels.shape[0])
        logits, labels = logits[:n], labels[:n]
        if self.multi_label:
            getattr(self, f"{stage}_probs").update(logits.float().sigmoid())
            getattr(self, f"{stage}_labels").update(labels)
        else:
            preds = logits.argmax(-1)
            getattr(self, f"{stage}_metrics").update(preds, labels)
            getattr(self, f"{stage}_f1_per_class").update(preds, labels)
            getattr(self, f"{stage}_confmat").update(preds, labels)
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=(stage == "val"), batch_size=n, sync_dist=True)

    def _multilabel_epoch_end(self, stage: str) -> None:
        probs_metric, labels_metric = getattr(self, f"{stage}_probs"), getattr(self, f"{stage}_labels")
        probs, labels = probs_metric.compute(), labels_metric.compute().long()
        probs_metric.reset()
        labels_metric.reset()
        # filler rows out: torchmetrics' exact match counts a row whose labels are all ignored as right
        scored = (labels != IGNORE_INDEX).any(dim=1)
        probs, labels = probs[scored], labels[scored]
        if stage == "val" and self.hparams.tune_threshold:
            self.threshold.fill_(best_threshold(probs, labels))
        common = dict(num_labels=len(self.label_names), threshold=float(self.threshold), ignore_index=IGNORE_INDEX)
        scores = {
            "f1_micro": multilabel_f1_score(probs, labels, average="micro", **common),
            "f1_macro": multilabel_f1_score(probs, labels, average="macro", **common),
            "precision_micro": multilabel_precision(probs, labels, average="micro", **common),
            "recall_micro": multilabel_recall(probs, labels, average="micro", **common),
            # every label of the row right (subset accuracy)
            "exact_match": multilabel_exact_match(probs, labels, **common),
            "threshold": self.threshold.float(),
        }
        self.log_dict({f"{stage}/{k}": v for k, v in scores.items()}, prog_bar=(stage == "val"))
        per_label = multilabel_f1_score(probs, labels, average="none", **common)
        for name, value in zip(self.label_names, per_label):
            self.log(f"{stage}/f1/{name}", value)

    def eval_epoch_end(self, stage: str) -> None:
        if self.multi_label:
            self._multilabel_epoch_end(stage)
            return
        collection = getattr(self, f"{stage}_metrics")
        self.log_dict(collection.compute(), prog_bar=(stage == "val"))
        collection.reset()
        per_class = getattr(self, f"{stage}_f1_per_class")
        for name, value in zip(self.label_names, per_class.compute()):
            self.log(f"{stage}/f1/{name}", value)
        per_class.reset()
        confmat = getattr(self, f"{stage}_confmat")
        self.confusion_matrix[stage] = confmat.compute().cpu()
        confmat.reset()


    def predict_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self(batch)[:real_rows(batch, batch["input_ids"].shape[0])].float()
        return logits.sigmoid() if self.multi_label else logits.softmax(-1)

    def export_settings(self) -> dict:
        """What travels with the exported model beside the data module's text settings."""
        settings = {"class_weights": self.hparams.class_weights}
        if self.multi_label:
            settings["threshold"] = float(self.threshold)
        return settings
