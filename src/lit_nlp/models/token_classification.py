"""Token classification: any AutoModelForTokenClassification (BERT, DistilBERT, MiniLM,
RoBERTa, ...) trained to tag each word on its first sub-token; validation and test put each
sentence's windows back together (codecs/token_classification.decode) and score entities by
the CoNLL rules (models/entity_metrics.py), micro and per type, with token accuracy."""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from transformers import AutoModelForTokenClassification

from lit_nlp.codecs.common import IGNORE_INDEX
from lit_nlp.codecs.token_classification import decode
from lit_nlp.data.shapes import real_rows
from lit_nlp.models.backbones import plain_config
from lit_nlp.models.entity_metrics import EntityMetric
from lit_nlp.models.task_module import TaskModule, gather_all


def tagging_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the labelled positions (IGNORE_INDEX elsewhere), in float32
    whatever the autocast dtype."""
    return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)


def padded(rows: list[list], fill) -> torch.Tensor:
    """Rows of different lengths as one tensor, padded with `fill`."""
    longest = max(len(row) for row in rows)
    return torch.tensor([row + [fill] * (longest - len(row)) for row in rows])


class TokenClassificationModule(TaskModule):
    """Wraps a Hugging Face token-classification model.

    label_names: the tags, `O` then B-/I- per type (from the data module). The model keys
    (backbone, optimizer, scheduler, finetune, ..., compile, hf_config) are those of every
    task (TaskModule.build_model).
    """

    def __init__(self, label_names: list[str], **model):
        super().__init__()
        label_names = list(plain_config(label_names))
        facts = {"num_labels": len(label_names), "id2label": dict(enumerate(label_names)),
                 "label2id": {n: i for i, n in enumerate(label_names)}}
        self.build_model(AutoModelForTokenClassification, **model, facts=facts,
                         task_hparams={"label_names": label_names})
        self.label_names = label_names
        # DistilBERT and RoBERTa take no token_type_ids; the loss is ours
        self._forward_keys = set(inspect.signature(self.model.forward).parameters) & {
            "input_ids", "attention_mask", "token_type_ids"}
        # the running evaluation, per stage: (window, predicted ids, gold ids) of each real window
        self._windows: dict[str, list] = {"val": [], "test": []}

    def forward(self, batch: dict) -> torch.Tensor:
        model = getattr(self, "_compiled", None) or self.model
        return model(**{k: batch[k] for k in self._forward_keys if k in batch}).logits

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = tagging_loss(self(batch), batch["labels"])
        # not prog_bar: see ClassificationModule (a host-device sync per step)
        self.log("train/loss", loss, on_step=True, on_epoch=True,
                 batch_size=real_rows(batch, batch["input_ids"].shape[0]))
        return loss

    def eval_step(self, batch: dict, batch_idx: int, stage: str) -> None:
        logits = self(batch)
        loss = tagging_loss(logits, batch["labels"])
        # rows past real_rows fill a static-shape batch: their words would count twice
        n = real_rows(batch, batch["input_ids"].shape[0])
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=(stage == "val"), batch_size=n, sync_dist=True)
        predicted, gold = logits[:n].argmax(-1).cpu().tolist(), batch["labels"][:n].cpu().tolist()
        for window, ids, labels in zip(batch["windows"][:n], predicted, gold):
            length = len(window["word_ids"])
            self._windows[stage].append((window, ids[:length], labels[:length]))

    def eval_epoch_end(self, stage: str) -> None:
        # one sentence's windows may sit in several batches, and under DDP on several ranks
        windows = gather_all(self._windows[stage], self.trainer.world_size)
        self._windows[stage] = []
        # a sentence is scored once all its words are in: always, unless trainer.limit_*_batches
        # cut the evaluation short in the middle of one
        owned, n_words = {}, {}
        for window, _, _ in windows:
            owned[window["sentence"]] = owned.get(window["sentence"], 0) + sum(window["owned"])
            n_words[window["sentence"]] = window["n_words"]
        windows = [w for w in windows if owned[w[0]["sentence"]] == n_words[w[0]["sentence"]]]
        if not windows:
            return
        metas = [w for w, _, _ in windows]
        predicted = decode(padded([ids for _, ids, _ in windows], 0), metas)
        gold = decode(padded([labels for _, _, labels in windows], IGNORE_INDEX), metas)
        # every rank now holds every sentence: computed here, not synced (a sync would add them up)
        metric = EntityMetric(self.label_names, sync_on_compute=False)
        metric.update([predicted[s][0] for s in gold], [gold[s][0] for s in gold])
        scores = metric.compute()
        logged = {f"{stage}/{key}": float(scores[key]) for key in ("f1", "precision", "recall", "accuracy")}
        logged.update({f"{stage}/f1/{kind}": float(scores[f"f1/{kind}"]) for kind in metric.types})
        self.log(f"{stage}/f1", logged.pop(f"{stage}/f1"), prog_bar=(stage == "val"))
        self.log_dict(logged)
        self.log(f"{stage}/sentences", float(len(gold)))  # how many sentences were scored
