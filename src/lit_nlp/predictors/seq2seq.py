"""Seq2seq (T5): the generated text for rows filled into the training run's source template,
cleaned and truncated as in training, with the saved generation settings."""

from __future__ import annotations

import logging

import torch

from lit_nlp.codecs.seq2seq import encode_sources, pad_seq2seq, template_fields
from lit_nlp.data.cleaning import TextCleaner
from lit_nlp.errors import LitNlpError
from lit_nlp.predictors.common import read_input, refuse_qa_args, resolve_device

log = logging.getLogger(__name__)


class Seq2SeqPredictor:
    """A seq2seq model with its template, cleaning and generation settings (the model's
    generation_config, as saved by training)."""

    def __init__(self, model, tokenizer, settings: dict, device: str = "auto", compile: bool | dict = False,
                 static_shapes: bool | None = None):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        if compile or static_shapes:
            # generate() calls the model with a new length at every token: it runs eagerly
            log.warning("compile=/static_shapes= do not apply to seq2seq prediction (generation runs eagerly)")
        self.tokenizer = tokenizer
        self.settings = settings
        self.cleaner = TextCleaner(**settings["cleaning"])
        self.fields = template_fields(settings["source_template"])

    @torch.inference_mode()
    def predict_rows(self, rows: list[dict], batch_size: int = 16, whole_source: bool = False) -> list[dict]:
        """Each row holds the template's columns (or, with `whole_source`, a finished source
        under "source"); returns the rows with a `prediction`. Rows that hold only a `text`
        (predict.py's text=) are read as `predict` reads its texts."""
        if not whole_source and rows and self.fields != ["text"] and all(set(row) == {"text"} for row in rows):
            return self.predict([row["text"] for row in rows], batch_size=batch_size)
        template, truncate = self.settings["source_template"], self.settings["truncate_column"]
        fields = self.fields
        if whole_source:
            template, truncate, fields = "{source}", None, ["source"]
        cleaned = [{f: self.cleaner(str(row[f])) for f in fields} for row in rows]
        predictions = []
        for start in range(0, len(rows), batch_size):
            chunk = cleaned[start:start + batch_size]
            enc = encode_sources(self.tokenizer, chunk, template, truncate, self.settings["max_source_length"])
            batch = pad_seq2seq([{"input_ids": i, "attention_mask": m}
                                 for i, m in zip(enc["input_ids"], enc["attention_mask"])], self.tokenizer.pad_token_id)
            out = self.model.generate(**{k: v.to(self.device) for k, v in batch.items()},
                                      generation_config=self.model.generation_config)
            predictions += [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]
        return [{**row, "prediction": p} for row, p in zip(rows, predictions)]

    def predict(self, texts: list[str], pairs: list[str] | None = None, batch_size: int = 16) -> list[dict]:
        """`text=` input: fills a one-column template (summarize: {document}); with a template of
        several columns the text is taken as the whole source, as the template would write it."""
        if len(self.fields) == 1:
            rows = self.predict_rows([{self.fields[0]: t} for t in texts], batch_size)
        else:
            rows = self.predict_rows([{"source": t} for t in texts], batch_size, whole_source=True)
        return [{"text": t, "prediction": r["prediction"]} for t, r in zip(texts, rows)]

    def rows_from_args(self, args: dict) -> list[dict]:
        """predict.py's input= (with the template's columns, kept whole in the output) or
        text= (rows of `text`, see `predict`)."""
        refuse_qa_args(args)
        if "threshold" in args:
            raise LitNlpError("threshold= applies to multi-label models only")
        if "input" in args:
            frame = read_input(args, {f"source_template field '{f}'": f for f in self.fields},
                               hint=f"the model's template is {self.settings['source_template']!r}")
            return frame.to_dict("records")
        if "text_pair" in args and len(args["text"]) != 1:
            raise LitNlpError("text_pair=... goes with exactly one text=...")
        return [{"text": t} for t in args["text"]]

    def format_row(self, row: dict) -> str:
        """The generated text."""
        return row["prediction"]
