"""Entity-level precision, recall and F1 by the CoNLL rules (conlleval, seqeval's default mode),
micro over types and per type, with token accuracy.

An entity counts as found when its type and both boundaries match a gold entity. Entities are
read from the tags by `tag_schemes.entities`, which reads IOB1, BIO and BIOES alike, so the
predictions and the gold tags need only be in one scheme. All states are count tensors summed
across processes; the entity types are fixed up front (from the label list) so that every
process holds states of the same shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torchmetrics import Metric

from lit_nlp.data.tag_schemes import Entity, entities, entity_types


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    # 0 where nothing was predicted (precision) or there is no gold entity (recall): what
    # conlleval and seqeval report
    return torch.where(den > 0, num / den.clamp(min=1), torch.zeros_like(num, dtype=torch.float))


class EntityMetric(Metric):
    """Entity P/R/F1 and token accuracy over tagged sentences.

    `labels`: the tagger's tag names in id order (e.g. `tag_schemes.tag_names(types)`); they fix
    the entity types. update() takes tag sequences as names or ids into `labels`, or entity lists.
    compute() -> {"precision", "recall", "f1", "accuracy", "precision/<type>", "recall/<type>",
    "f1/<type>"} as tensors in [0, 1]."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, labels: Sequence[str], **kwargs):
        super().__init__(**kwargs)
        self.labels = list(labels)
        self.types = entity_types([self.labels])
        self._type_index = {kind: i for i, kind in enumerate(self.types)}
        n = len(self.types)
        # per type: entities found in both, predicted, gold (one int64 count each)
        self.add_state("correct", default=torch.zeros(n, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("predicted", default=torch.zeros(n, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("gold", default=torch.zeros(n, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("correct_tokens", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total_tokens", default=torch.tensor(0), dist_reduce_fx="sum")

    def _names(self, tags: Sequence) -> list[str]:
        return [self.labels[t] if not isinstance(t, str) else t for t in tags]

    def _counts(self, spans: Iterable[Entity]) -> torch.Tensor:
        counts = [0] * len(self.types)
        for kind, _, _ in spans:
            if kind not in self._type_index:
                raise ValueError(f"entity type {kind!r} is not among the labels' types {self.types}")
            counts[self._type_index[kind]] += 1
        return torch.tensor(counts, dtype=torch.long, device=self.correct.device)

    def update(self, preds: Sequence[Sequence], targets: Sequence[Sequence], entity_lists: bool = False) -> None:
        """preds[i], targets[i]: the predicted and gold tags of sentence i, one per word; or, with
        `entity_lists`, its (type, start, end) entities (token accuracy then stays as it was:
        it needs tags)."""
        if len(preds) != len(targets):
            raise ValueError(f"got {len(preds)} predicted sentences but {len(targets)} gold ones")
        if entity_lists:
            pred_spans, gold_spans = preds, targets
        else:
            pred_spans, gold_spans, correct_tokens, total_tokens = [], [], 0, 0
            for i, (pred, gold) in enumerate(zip(preds, targets)):
                pred, gold = self._names(pred), self._names(gold)
                if len(pred) != len(gold):
                    raise ValueError(f"sentence {i}: {len(pred)} predicted tags but {len(gold)} gold tags")
                pred_spans.append(entities(pred))
                gold_spans.append(entities(gold))
                correct_tokens += sum(p == g for p, g in zip(pred, gold))
                total_tokens += len(gold)
            self.correct_tokens += correct_tokens
            self.total_tokens += total_tokens
        correct, predicted, gold = [], [], []
        for pred, target in zip(pred_spans, gold_spans):
            pred, target = set(pred), set(target)
            correct.extend(pred & target)
            predicted.extend(pred)
            gold.extend(target)
        self.correct += self._counts(correct)
        self.predicted += self._counts(predicted)
        self.gold += self._counts(gold)

    def compute(self) -> dict[str, torch.Tensor]:
        out = {}
        for key, correct, predicted, gold in [("", self.correct.sum(), self.predicted.sum(), self.gold.sum()),
                                              *((f"/{kind}", self.correct[i], self.predicted[i], self.gold[i])
                                                for i, kind in enumerate(self.types))]:
            precision, recall = _ratio(correct, predicted), _ratio(correct, gold)
            out[f"precision{key}"] = precision
            out[f"recall{key}"] = recall
            # 2PR/(P+R) = 2 x correct / (predicted + gold), without a 0/0 when both are 0
            out[f"f1{key}"] = _ratio(2 * correct, predicted + gold)
        out["accuracy"] = _ratio(self.correct_tokens, self.total_tokens)
        return out
