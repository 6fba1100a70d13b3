"""Extractive question answering: any AutoModelForQuestionAnswering (BERT, DistilBERT, MiniLM,
RoBERTa, ...) trained to point at the answer's first and last token in each window; validation
and test decode the best span over all windows of a question and score SQuAD exact match and
token F1 per question (every gold answer counts)."""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from transformers import AutoModelForQuestionAnswering

from lit_nlp.codecs.common import IGNORE_INDEX
from lit_nlp.data.shapes import real_rows
from lit_nlp.models.task_module import TaskModule, gather_all
from lit_nlp.models.span_decoding import QuestionAnswers, decode_batch
from lit_nlp.models.text_metrics import exact_match, token_f1



def span_loss(start_logits: torch.Tensor, end_logits: torch.Tensor, start_positions: torch.Tensor,
              end_positions: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of the start and end cross-entropies over the windows; windows labelled -100 are
    left out. (Hugging Face's QA heads clamp labels into the window instead, turning -100 into
    a real position, so the loss is computed here.) With `attention_mask`, padding positions
    take no share of the softmax, so the loss does not depend on how far a batch is padded
    (to its longest window, or to a bucket length for static shapes)."""
    start_logits, end_logits = start_logits.float(), end_logits.float()
    if attention_mask is not None:
        padding = attention_mask == 0
        start_logits = start_logits.masked_fill(padding, torch.finfo(start_logits.dtype).min)
        end_logits = end_logits.masked_fill(padding, torch.finfo(end_logits.dtype).min)
    start = F.cross_entropy(start_logits, start_positions, ignore_index=IGNORE_INDEX)
    end = F.cross_entropy(end_logits, end_positions, ignore_index=IGNORE_INDEX)
    return (start + end) / 2


def answer_questions(windows: list[tuple[str, list, float]], n_best: int, unanswerable: bool) -> dict[str, dict]:
    """question id -> its best answer and n-best list, from (id, window answers, no-answer
    score) of all its windows, in any order."""
    questions: dict[str, QuestionAnswers] = {}
    for qid, answers, no_answer in windows:
        questions.setdefault(qid, QuestionAnswers()).add_window(answers, no_answer)
    return {qid: q.best(n_best, unanswerable) for qid, q in questions.items()}


class ExtractiveQAModule(TaskModule):
    """Wraps a Hugging Face span-prediction (question answering) model.

    backbone / optimizer / scheduler / finetune / num_frozen_layers / gradient_checkpointing /
    attn_implementation / compile / hf_config: as in ClassificationModule.
    max_answer_length, n_best, unanswerable, align_to_words: decoding (see
    lit_nlp.models.span_decoding); run-time facts from the data module, like vocab_size and
    pad_token_id for a random-init model.
    """

    def __init__(
        self,
        max_answer_length: int = 30,
        n_best: int = 5,
        unanswerable: bool = False,
        align_to_words: bool = True,
        **model,
    ):
        super().__init__()
        self.build_model(AutoModelForQuestionAnswering, **model, task_hparams={
            "max_answer_length": max_answer_length, "n_best": n_best, "unanswerable": unanswerable,
            "align_to_words": align_to_words})
        # DistilBERT and RoBERTa take no token_type_ids
        self._forward_keys = set(inspect.signature(self.model.forward).parameters) & {
            "input_ids", "attention_mask", "token_type_ids"}
        # the running evaluation, per stage: decoded windows (question id, answers, no-answer
        # score) and gold answers by question id
        self._windows: dict[str, list] = {"val": [], "test": []}
        self._golds: dict[str, dict] = {"val": {}, "test": {}}
        # the last evaluation's answers per stage: {question id: {answer, score, start, end,
        # n_best, answers (gold), exact_match, f1}}; the QA predictions callback writes the test's
        self.predictions: dict[str, dict] = {}

    def forward(self, batch: dict):
        model = getattr(self, "_compiled", None) or self.model
        return model(**{k: batch[k] for k in self._forward_keys if k in batch})

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self(batch)
        loss = span_loss(out.start_logits, out.end_logits, batch["start_positions"], batch["end_positions"],
                         batch["attention_mask"])
        # not prog_bar: Lightning turns progress-bar values into Python numbers (.item(), a
        # host-device sync) after every step; callbacks/progress.py reads it every log_every_n_steps
        self.log("train/loss", loss, on_step=True, on_epoch=True,
                 batch_size=real_rows(batch, batch["input_ids"].shape[0]))
        return loss

    def eval_step(self, batch: dict, batch_idx: int, stage: str) -> None:
        out = self(batch)
        loss = span_loss(out.start_logits, out.end_logits, batch["start_positions"], batch["end_positions"],
                         batch["attention_mask"])
        # rows past real_rows fill a static-shape batch (data/shapes.py): copies of a real window
        # that the loss ignores (-100) and decoding must not see, or their question would count twice
        n = real_rows(batch, batch["input_ids"].shape[0])
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=(stage == "val"), batch_size=n, sync_dist=True)
        hp = self.hparams
        real = {k: v[:n] for k, v in batch.items() if isinstance(v, (list, torch.Tensor))}
        decoded = decode_batch(out.start_logits[:n], out.end_logits[:n], real, hp.max_answer_length, hp.n_best,
                               hp.align_to_words)
        batch = real
        self._windows[stage].extend((qid, answers, no_answer) for qid, (answers, no_answer) in zip(batch["id"], decoded))
        self._golds[stage].update(zip(batch["id"], batch["answers"]))

    def eval_epoch_end(self, stage: str) -> None:
        world_size = self.trainer.world_size
        windows = gather_all(self._windows[stage], world_size)
        golds = dict(gather_all(list(self._golds[stage].items()), world_size))
        self._windows[stage], self._golds[stage] = [], {}
        if not windows:
            return
        answers = answer_questions(windows, self.hparams.n_best, self.hparams.unanswerable)
        for qid, answer in answers.items():
            answer.update(answers=golds[qid], exact_match=exact_match(answer["answer"], golds[qid]),
                          f1=token_f1(answer["answer"], golds[qid]))
        self.predictions[stage] = answers
        n = len(answers)
        # every rank now holds every question, so the values need no sync (sync_dist would add them up)
        self.log_dict({f"{stage}/exact_match": sum(a["exact_match"] for a in answers.values()) / n,
                       f"{stage}/f1": sum(a["f1"] for a in answers.values()) / n}, prog_bar=(stage == "val"))
        self.log(f"{stage}/questions", float(n))  # how many questions were scored

