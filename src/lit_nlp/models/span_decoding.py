"""From start/end logits to answers in the context: plain functions shared by the extractive QA
module (validation, test) and predict.py, so both score exactly what the other returns.

The arithmetic is that of transformers' question-answering pipeline (4.x), so an export gives
the same answers there: per window, a softmax of the start logits and one of the end logits
over the context tokens (and the CLS position); a span's score is p(start) x p(end), valid
when start <= end and it spans at most `max_answer_length` tokens; its text is cut from the
context by character offsets, widened to whole words with `align_to_words`. Over the windows
of one question, spans that give the same text (ignoring case) add their scores, and the best
score wins. The no-answer score (SQuAD v2) is p(CLS) x p(CLS), the lowest over the windows;
with `unanswerable` it competes with the spans as the answer "".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

# what masked logits become before the softmax: exp(-10000 - max) is exactly 0 in float32
MASKED_LOGIT = -10000.0
# the CLS position, whose start and end logits score "no answer": first in BERT, DistilBERT,
# MiniLM, RoBERTa, ELECTRA, ALBERT inputs (the tokenizer's [CLS] / <s>)
CLS_POSITION = 0


def spans_per_window(n_best: int) -> int:
    """Candidates kept per window: the pipeline's `top_k * 2 + 10`, so that spans which merge
    into the same text after word alignment still leave n_best distinct answers."""
    return 2 * n_best + 10


def window_spans(start_logits: torch.Tensor, end_logits: torch.Tensor, context_mask: torch.Tensor,
                 max_answer_length: int, top: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The `top` best spans of each window of a batch ((B, L) logits; `context_mask` is true on
    context tokens). Returns (scores, starts, ends) of shape (B, top), best first, with score
    0 for padding entries (fewer valid spans than `top`), and the no-answer score (B,)."""
    start_logits, end_logits = start_logits.float(), end_logits.float()
    context = context_mask.to(start_logits.device).bool()
    allowed = context.clone()
    allowed[:, CLS_POSITION] = True
    p_start = start_logits.masked_fill(~allowed, MASKED_LOGIT).softmax(-1)
    p_end = end_logits.masked_fill(~allowed, MASKED_LOGIT).softmax(-1)
    no_answer = p_start[:, CLS_POSITION] * p_end[:, CLS_POSITION]
    length = start_logits.shape[1]
    # start <= end < start + max_answer_length: a band above the diagonal of the (L, L) grid
    band = torch.ones(length, length, dtype=torch.bool, device=start_logits.device)
    band = band.triu().tril(max_answer_length - 1)
    valid = band & context[:, :, None] & context[:, None, :]  # (B, L, L): 64 x 384 x 384 floats = 38 MB
    scores = (p_start[:, :, None] * p_end[:, None, :]).masked_fill(~valid, 0.0)
    best, flat = scores.flatten(1).topk(min(top, length * length), dim=-1)
    return best, flat // length, flat % length, no_answer


def _word_spans(offsets: list, word_ids: list) -> dict[int, tuple[int, int]]:
    """word id -> (first character, last character + 1) over this window's tokens of the word."""
    spans: dict[int, tuple[int, int]] = {}
    for (a, b), word in zip(offsets, word_ids):
        if word >= 0:
            lo, hi = spans.get(word, (a, b))
            spans[word] = (min(lo, a), max(hi, b))
    return spans


def window_answers(context: str, offsets: list, word_ids: list | None, scores: list[float], starts: list[int],
                   ends: list[int], align_to_words: bool = True) -> list[tuple[str, float, int, int]]:
    """One window's spans as (text, score, start char, end char), best first; padding entries
    (score 0) are dropped. `offsets`: per token (start, end) characters in the context,
    (-1, -1) off the context; `word_ids`: per token its word in the context, -1 elsewhere."""
    words = _word_spans(offsets, word_ids) if align_to_words and word_ids is not None else {}
    out = []
    for score, s, e in zip(scores, starts, ends):
        if score <= 0.0:
            continue
        a, b = offsets[s][0], offsets[e][1]
        if words:
            a, b = words[word_ids[s]][0], words[word_ids[e]][1]
        out.append((context[a:b], float(score), int(a), int(b)))
    return out


@dataclass
class QuestionAnswers:
    """The candidates of one question, gathered window by window."""

    spans: dict[str, dict] = field(default_factory=dict)  # lowercased text -> answer
    no_answer: float = float("inf")

    def add_window(self, answers: list[tuple[str, float, int, int]], no_answer: float) -> None:
        self.no_answer = min(self.no_answer, float(no_answer))
        for text, score, start, end in answers:
            key = text.lower()
            if key in self.spans:  # the same text from another span or window: scores add
                self.spans[key]["score"] += score
            else:
                self.spans[key] = {"answer": text, "score": score, "start": start, "end": end}

    def best(self, n_best: int, unanswerable: bool = False) -> dict:
        """{answer, score, start, end, n_best: [...]}: the best answer and the n_best ranked
        ones. With `unanswerable` the empty answer competes with its no-answer score; without,
        "" (score 0) comes only from a question whose windows hold no context at all."""
        ranked = [dict(a) for a in self.spans.values()]
        if unanswerable:
            ranked.append({"answer": "", "score": self.no_answer, "start": 0, "end": 0})
        ranked = sorted(ranked, key=lambda a: a["score"], reverse=True)[:n_best]  # stable: ties keep their order
        top = ranked[0] if ranked else {"answer": "", "score": 0.0, "start": 0, "end": 0}
        return {**top, "n_best": ranked}


def decode_batch(start_logits: torch.Tensor, end_logits: torch.Tensor, batch: dict, max_answer_length: int,
                 n_best: int, align_to_words: bool = True) -> list[tuple[list, float]]:
    """Each window of a collated batch (`context_mask`, `offsets`, `word_ids`, `context`) as
    (its answers, its no-answer score), on the CPU, ready for `QuestionAnswers.add_window`.
    Rows past the last context (filler rows that pad a batch to a fixed shape) are skipped."""
    scores, starts, ends, no_answer = window_spans(start_logits, end_logits, batch["context_mask"],
                                                   max_answer_length, spans_per_window(n_best))
    # one copy to the host per batch, not one per number
    scores, starts, ends, no_answer = (t.cpu().tolist() for t in (scores, starts, ends, no_answer))
    word_ids = batch.get("word_ids") or [None] * len(batch["context"])
    return [(window_answers(batch["context"][i], batch["offsets"][i], word_ids[i], scores[i], starts[i], ends[i],
                            align_to_words), no_answer[i]) for i in range(len(batch["context"]))]
