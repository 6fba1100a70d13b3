"""Metrics on generated text: SQuAD exact match / token F1, ROUGE-1/2/L/Lsum, and label-word
accuracy for text-to-text classification. All states are sums and counts, reduced with "sum",
so the values are the same on one device and under DDP."""

from __future__ import annotations

import re
import string
from collections import Counter

import torch
from torchmetrics import Metric

# ---------------------------------------------------------------- SQuAD

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lowercase, drop ASCII punctuation, drop the articles
    a/an/the as whole words, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _golds(golds: list[str] | str) -> list[str]:
    # a bare string is one gold answer; no gold answers means "unanswerable", scored as
    # the empty answer the way the SQuAD 2.0 script does
    if isinstance(golds, str):
        return [golds]
    return list(golds) or [""]


def exact_match(prediction: str, golds: list[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer, else 0.0."""
    pred = normalize_answer(prediction)
    return max(float(pred == normalize_answer(gold)) for gold in _golds(golds))


def _f1_one(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    # "" vs "" is a correct abstention (1.0); "" vs an answer, or an answer vs "", is 0.0
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    overlap = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred_tokens), overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, golds: list[str]) -> float:
    """Bag-of-tokens F1 between normalised prediction and gold, max over the gold answers."""
    pred_tokens = normalize_answer(prediction).split()
    return max(_f1_one(pred_tokens, normalize_answer(gold).split()) for gold in _golds(golds))


def _check_lengths(preds, targets) -> None:
    if len(preds) != len(targets):
        raise ValueError(f"got {len(preds)} predictions but {len(targets)} targets; pass one target per prediction")


class SquadMetric(Metric):
    """Mean SQuAD exact match and token F1; `targets[i]` holds every gold answer of example i.
    compute() -> {"exact_match": tensor, "f1": tensor}, both in [0, 1]."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # float32 states so they can live on any accelerator (MPS has no float64); each batch is
        # summed in Python floats first, so rounding happens once per batch, not per example
        self.add_state("exact_match_sum", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("f1_sum", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: list[str], targets: list[list[str]]) -> None:
        _check_lengths(preds, targets)
        self.exact_match_sum += sum(exact_match(p, g) for p, g in zip(preds, targets))
        self.f1_sum += sum(token_f1(p, g) for p, g in zip(preds, targets))
        self.total += len(preds)

    def compute(self) -> dict[str, torch.Tensor]:
        n = self.total.clamp(min=1)
        return {"exact_match": self.exact_match_sum / n, "f1": self.f1_sum / n}


# ---------------------------------------------------------------- ROUGE

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
# a sentence ends at a newline, or at . ! ? followed by whitespace (the mark stays with it);
# a regex stands in for nltk's punkt, whose model data cannot be downloaded everywhere
_SENTENCE_END = re.compile(r"\n|(?<=[.!?])\s+")


def rouge_tokenize(text: str) -> list[str]:
    """rouge-score's default tokenizer without stemming: lowercase, every character outside
    [a-z0-9] becomes a space, split on whitespace."""
    return _NOT_ALNUM.sub(" ", text.lower()).split()


def split_sentences(text: str) -> list[str]:
    """Sentences for ROUGE-Lsum: split on newlines and on [.!?] + whitespace, drop blanks."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _f_measure(hits: int, pred_len: int, ref_len: int) -> float:
    if hits == 0 or pred_len == 0 or ref_len == 0:
        return 0.0
    precision, recall = hits / pred_len, hits / ref_len
    return 2 * precision * recall / (precision + recall)


def _ngram_f1(pred: list[str], ref: list[str], n: int) -> float:
    pred_ngrams = Counter(zip(*(pred[i:] for i in range(n))))
    ref_ngrams = Counter(zip(*(ref[i:] for i in range(n))))
    # Counter "&" keeps min(count in pred, count in ref): a repeated n-gram in the prediction
    # is credited at most as often as it occurs in the reference
    hits = sum((pred_ngrams & ref_ngrams).values())
    return _f_measure(hits, sum(pred_ngrams.values()), sum(ref_ngrams.values()))


def _lcs_length(a: list[str], b: list[str]) -> int:
    # one row of the DP table at a time: O(len(b)) memory instead of O(len(a) * len(b))
    prev = [0] * (len(b) + 1)
    for x in a:
        row = [0]
        for j, y in enumerate(b):
            row.append(prev[j] + 1 if x == y else max(prev[j + 1], row[j]))
        prev = row
    return prev[-1]


def _lcs_positions(ref: list[str], pred: list[str]) -> set[int]:
    """Positions in `ref` of one longest common subsequence with `pred`."""
    table = [[0] * (len(pred) + 1)]
    for x in ref:
        prev, row = table[-1], [0]
        for j, y in enumerate(pred):
            row.append(prev[j] + 1 if x == y else max(prev[j + 1], row[j]))
        table.append(row)
    # Walk back from the end. Which LCS we read out changes the union in ROUGE-Lsum, so ties
    # go the way rouge-score breaks them: skip a pred token only when that is strictly
    # better, otherwise skip a ref token.
    positions, i, j = set(), len(ref), len(pred)
    while i and j:
        if ref[i - 1] == pred[j - 1]:
            positions.add(i - 1)
            i, j = i - 1, j - 1
        elif table[i][j - 1] > table[i - 1][j]:
            j -= 1
        else:
            i -= 1
    return positions


def _summary_lcs_f1(pred_sents: list[list[str]], ref_sents: list[list[str]]) -> float:
    """Summary-level LCS (ROUGE paper, section 3.2) with hits clipped by token counts."""
    union_tokens = Counter()
    for ref in ref_sents:
        matched = set().union(*(_lcs_positions(ref, pred) for pred in pred_sents))
        union_tokens.update(ref[i] for i in matched)
    # Several reference sentences can match the same prediction token. Crediting each token
    # type at most as often as the prediction holds it is the clipping ROUGE-1.5.5 and
    # rouge-score apply token by token; per type it comes to this one min(). A reference
    # position is never matched twice, so the reference side needs no clipping.
    hits = sum((union_tokens & Counter(tok for pred in pred_sents for tok in pred)).values())
    return _f_measure(hits, sum(map(len, pred_sents)), sum(map(len, ref_sents)))


def rouge_scores(prediction: str, target: str) -> dict[str, float]:
    """ROUGE-1/2/L/Lsum F-measures of one prediction against one reference."""
    pred, ref = rouge_tokenize(prediction), rouge_tokenize(target)
    pred_sents = [rouge_tokenize(s) for s in split_sentences(prediction)]
    ref_sents = [rouge_tokenize(s) for s in split_sentences(target)]
    return {
        "rouge1": _ngram_f1(pred, ref, 1),
        "rouge2": _ngram_f1(pred, ref, 2),
        "rougeL": _f_measure(_lcs_length(pred, ref), len(pred), len(ref)),
        "rougeLsum": _summary_lcs_f1(pred_sents, ref_sents),
    }


class RougeMetric(Metric):
    """Mean ROUGE-1/2/L/Lsum F-measure over (prediction, reference) pairs, no stemming.
    compute() -> {"rouge1", "rouge2", "rougeL", "rougeLsum"} tensors in [0, 1]."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for key in ROUGE_KEYS:
            self.add_state(f"{key}_sum", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: list[str], targets: list[str]) -> None:
        _check_lengths(preds, targets)
        sums = dict.fromkeys(ROUGE_KEYS, 0.0)
        for pred, target in zip(preds, targets):
            for key, value in rouge_scores(pred, target).items():
                sums[key] += value
        for key, value in sums.items():
            setattr(self, f"{key}_sum", getattr(self, f"{key}_sum") + value)
        self.total += len(preds)

    def compute(self) -> dict[str, torch.Tensor]:
        n = self.total.clamp(min=1)
        return {key: getattr(self, f"{key}_sum") / n for key in ROUGE_KEYS}


# ---------------------------------------------------------------- label words


class TextAccuracy(Metric):
    """Share of generated label words equal to the target after `.strip().lower()`."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("correct", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: list[str], targets: list[str]) -> None:
        _check_lengths(preds, targets)
        self.correct += sum(p.strip().lower() == t.strip().lower() for p, t in zip(preds, targets))
        self.total += len(preds)

    def compute(self) -> torch.Tensor:
        return self.correct / self.total.clamp(min=1)
