"""Extractive QA: the answer to a question is the best span of its context, found over the
training run's windows and scored as in validation."""

from __future__ import annotations

import torch

from lit_nlp.codecs.extractive_qa import collate_qa, encode_windows, question_too_long
from lit_nlp.errors import LitNlpError
from lit_nlp.models.span_decoding import QuestionAnswers, decode_batch
from lit_nlp.predictors.common import EncoderPredictor, read_input


class ExtractiveQAPredictor(EncoderPredictor):
    """An extractive QA model with its windowing and decoding settings. `question_column` and
    `context_column` (the training run's unless predict.py's arguments name others) are where
    `predict_rows` reads its rows."""

    def __init__(self, model, tokenizer, settings: dict, **placement):
        super().__init__(model, tokenizer, settings, **placement)
        self.question_column = settings["question_column"]
        self.context_column = settings["context_column"]

    @torch.inference_mode()
    def answer(self, questions: list[str], contexts: list[str], batch_size: int = 32) -> list[dict]:
        """One dict per question: `answer` (text of its context), `score`, `start`/`end` (the
        answer is context[start:end]) and `n_best` (the ranked answers)."""
        s = self.settings
        questions = [q.strip() for q in questions]
        long = question_too_long(self.tokenizer, questions, s["max_length"], s["doc_stride"])
        if long:
            raise LitNlpError(f"{len(long)} questions leave no room for context in the model's max_length "
                              f"{s['max_length']} (first: {questions[long[0]][:80]!r}); shorten them")
        windows = encode_windows(self.tokenizer, questions, contexts, s["max_length"], s["doc_stride"])
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in windows]
        features = [{**{k: windows[k][i] for k in keys}, "offsets": windows["offsets"][i],
                     "word_ids": windows["word_ids"][i], "context": contexts[windows["example"][i]]}
                    for i in range(len(windows["input_ids"]))]
        questions_answers = [QuestionAnswers() for _ in questions]
        # windows in length order (less padding); each goes back to its question
        order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = collate_qa(self.shapes.rows([features[i] for i in idx], batch_size), self.tokenizer.pad_token_id,
                               buckets=self.shapes.buckets)
            inputs = {k: batch[k].to(self.device) for k in keys if k in self._forward_keys}
            out = self.shapes.call(**inputs)
            n = len(idx)  # filler copies past the real windows are not decoded
            real = {k: v[:n] for k, v in batch.items() if isinstance(v, (list, torch.Tensor))}
            decoded = decode_batch(out.start_logits[:n], out.end_logits[:n], real, s["max_answer_length"],
                                   s["n_best"], s["align_to_words"])
            for i, (answers, no_answer) in zip(idx, decoded):
                questions_answers[windows["example"][i]].add_window(answers, no_answer)
        return [q.best(s["n_best"], s["unanswerable"]) for q in questions_answers]

    def predict_rows(self, rows: list[dict], batch_size: int = 32, question_column: str | None = None,
                     context_column: str | None = None) -> list[dict]:
        """Rows with a question and a context column (`question_column`/`context_column` unless
        named); each comes back with answer, score, start, end and n_best added."""
        qcol = question_column or self.question_column
        ccol = context_column or self.context_column
        questions = ["" if row[qcol] is None else str(row[qcol]) for row in rows]
        contexts = ["" if row[ccol] is None else str(row[ccol]) for row in rows]
        return [{**row, **answer} for row, answer in zip(rows, self.answer(questions, contexts, batch_size))]

    def predict(self, texts: list[str], pairs: list[str] | None = None, batch_size: int = 32) -> list[dict]:
        """Questions (`texts`) and their contexts (`pairs`)."""
        if pairs is None or len(pairs) != len(texts):
            raise LitNlpError("extractive QA needs a context for every question: question=... context=...")
        return self.predict_rows([{"question": q, "context": c} for q, c in zip(texts, pairs)], batch_size,
                                 "question", "context")

    def rows_from_args(self, args: dict) -> list[dict]:
        """predict.py's input= [question_column= context_column=] (rows kept whole, empty cells
        as None) or question=... context=... (one context for all questions, or one each); sets
        the columns `predict_rows` reads to the ones these rows have."""
        if "input" in args:
            qcol = args.get("question_column") or self.settings["question_column"]
            ccol = args.get("context_column") or self.settings["context_column"]
            frame = read_input(args, {"question_column": qcol, "context_column": ccol},
                               hint="set question_column=<column> context_column=<column>")
            self.question_column, self.context_column = qcol, ccol
            return frame.astype(object).where(frame.notna(), None).to_dict("records")
        if not args["question"]:
            raise LitNlpError("an extractive QA model answers question=... context=... or input=<file> with those "
                              "columns; text=... is not enough")
        contexts = args["context"] * len(args["question"]) if len(args["context"]) == 1 else args["context"]
        self.question_column, self.context_column = "question", "context"
        return [{"question": q, "context": c} for q, c in zip(args["question"], contexts)]

    def format_row(self, row: dict) -> str:
        """answer, score, start and end (the answer is context[start:end])."""
        return f"{row['answer']}\t{row['score']:.4f}\t{row['start']}\t{row['end']}"
