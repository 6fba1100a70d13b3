"""Text classification (single- and multi-label, single texts or pairs): labels and their
probabilities for raw texts, cleaned and tokenized as in training."""

from __future__ import annotations

import torch

from lit_nlp.codecs.classification import pad_batch, tokenize
from lit_nlp.data.cleaning import TextCleaner
from lit_nlp.errors import LitNlpError
from lit_nlp.predictors.common import EncoderPredictor, read_input, refuse_qa_args


class ClassificationPredictor(EncoderPredictor):
    """A model, its tokenizer and its text settings (cleaning, max length, labels; multi-label:
    the decision threshold)."""

    def __init__(self, model, tokenizer, settings: dict, **placement):
        super().__init__(model, tokenizer, settings, **placement)
        self.cleaner = TextCleaner(**settings["cleaning"])
        self.label_names = settings["label_names"]
        self.multi_label = settings.get("multi_label", False)
        self.threshold = settings.get("threshold", 0.5)

    @torch.inference_mode()
    def predict(self, texts: list[str], pairs: list[str] | None = None, batch_size: int = 32) -> list[dict]:
        """One dict per text: the cleaned-input's predicted `label`, its `score` and every class's
        probability; multi-label: the `labels` whose probability reaches the threshold, and
        every label's probability (a sigmoid each). Texts are processed in length order (less
        padding) and returned in input order."""
        cleaned = [self.cleaner(t) for t in texts]
        cleaned_pairs = [self.cleaner(p) for p in pairs] if pairs is not None else None
        order = sorted(range(len(texts)), key=lambda i: len(cleaned[i]))
        probs = [None] * len(texts)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            enc = tokenize(self.tokenizer, [cleaned[i] for i in idx],
                           [cleaned_pairs[i] for i in idx] if cleaned_pairs else None, self.settings["max_length"])
            rows = [{k: enc[k][j] for k in enc} for j in range(len(idx))]
            batch = pad_batch(self.shapes.rows(rows, batch_size), self.tokenizer.pad_token_id,
                              buckets=self.shapes.buckets)
            batch = {k: v.to(self.device) for k, v in batch.items() if k in self._forward_keys}
            logits = self.shapes.call(**batch).logits[:len(idx)].float()
            out = (logits.sigmoid() if self.multi_label else logits.softmax(-1)).cpu()
            for j, i in enumerate(idx):
                probs[i] = out[j]
        results = []
        for i, p in enumerate(probs):
            row = {"text": texts[i], **({"text_pair": pairs[i]} if pairs is not None else {})}
            if self.multi_label:
                row["labels"] = [n for n, v in zip(self.label_names, p) if v >= self.threshold]
            else:
                best = int(p.argmax())
                row.update(label=self.label_names[best], score=float(p[best]))
            results.append({**row, "probabilities": {n: float(v) for n, v in zip(self.label_names, p)}})
        return results

    def predict_rows(self, rows: list[dict], batch_size: int = 32) -> list[dict]:
        """Rows with a `text` (and, for pair tasks, a `text_pair`); each comes back with its
        prediction added, as `predict` gives it."""
        pairs = [row["text_pair"] for row in rows] if rows and "text_pair" in rows[0] else None
        predictions = self.predict([row["text"] for row in rows], pairs, batch_size)
        return [{**row, **prediction} for row, prediction in zip(rows, predictions)]

    def rows_from_args(self, args: dict) -> list[dict]:
        """predict.py's text= [text_pair=] or input= [text_column= text_pair_column=] as rows of
        `text` (+ `text_pair`); threshold= (multi-label) replaces the model's own."""
        refuse_qa_args(args)
        if "threshold" in args:
            if not self.multi_label:
                raise LitNlpError("threshold= applies to multi-label models only")
            try:
                self.threshold = float(args["threshold"])
            except ValueError:
                raise LitNlpError(f"threshold must be a number between 0 and 1, got {args['threshold']!r}") from None
        if "input" in args:
            text_column = args.get("text_column") or self.settings.get("text_column") or "text"
            pair_column = args.get("text_pair_column") or self.settings.get("text_pair_column")
            frame = read_input(args, {"text_column": text_column, "text_pair_column": pair_column},
                               hint="set text_column=<column>")
            texts = frame[text_column].fillna("").astype(str).tolist()
            if not pair_column:
                return [{"text": t} for t in texts]
            pairs = frame[pair_column].fillna("").astype(str).tolist()
            return [{"text": t, "text_pair": p} for t, p in zip(texts, pairs)]
        if "text_pair" in args:
            if len(args["text"]) != 1:
                raise LitNlpError("text_pair=... goes with exactly one text=...")
            return [{"text": args["text"][0], "text_pair": args["text_pair"]}]
        return [{"text": t} for t in args["text"]]

    def format_row(self, row: dict) -> str:
        """label, score and text; multi-label: each predicted label with its probability."""
        if self.multi_label:
            shown = " ".join(f"{n}={row['probabilities'][n]:.4f}" for n in row["labels"]) or "(no label)"
            return f"{shown}\t{row['text']}"
        return f"{row['label']}\t{row['score']:.4f}\t{row['text']}"
