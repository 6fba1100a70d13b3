"""Text-to-text data (question answering, summarization, label words): read, clean, template,
split, tokenize source/target pairs, cache, collate.

A row becomes `source` = `source_template` filled with the row's (cleaned) columns, e.g.
`question: {question} context: {context}`, and `target` = `target_column`. When a source is too
long, `truncate_column` (the context) is cut, never the rest of the template (the question).
`references_column` (SQuAD's list of gold answers) feeds the metrics; by default the target is
the only reference.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd

from lit_nlp.codecs.seq2seq import encode_sources, pad_seq2seq, template_fields
from lit_nlp.data.cache import write_streamed_splits
from lit_nlp.data.cleaning import TextCleaner, drop_rows_hashed, log_dropped
from lit_nlp.data.io import FrameStream, require_columns
from lit_nlp.data.prepare import (
    WORK_DIR,
    RowRecipe,
    clean_sources,
    column_values,
    destinations,
    split_rows,
)
from lit_nlp.data.shapes import bucket_lengths
from lit_nlp.data.splits import carve_indices, ratio_problems
from lit_nlp.data.tables import TableFiles
from lit_nlp.data.task_data import SPLITS, TaskDataModule
from lit_nlp.data.squad import read_squad
from lit_nlp.data.tokenizers import tokenizer_before_data
from lit_nlp.errors import LitNlpError, raise_if_any

log = logging.getLogger(__name__)

CACHE_VERSION = 2


def _flatten_answers(frame: pd.DataFrame) -> pd.DataFrame:
    """Hub SQuAD keeps answers as {"text": [...], "answer_start": [...]}: give it the
    `answer` / `answers` columns of the official-JSON reader."""
    if "answers" in frame and len(frame) and isinstance(frame["answers"].iloc[0], dict):
        frame = frame.copy()
        frame["answers"] = [list(dict.fromkeys(map(str, a["text"]))) for a in frame["answers"]]
        frame["answer"] = [a[0] if a else "" for a in frame["answers"]]
    return frame


def _flattened(stream: FrameStream) -> FrameStream:
    """A hub split's chunks with `_flatten_answers` applied, and the columns that gives."""
    chunks = stream.chunks()
    first = next(chunks, None)
    if first is None:
        return stream
    first = _flatten_answers(first)
    return FrameStream(list(first.columns), chain([first], map(_flatten_answers, chunks)))


def _first_rows(chunks: Iterator[pd.DataFrame], max_rows: int | None) -> Iterator[pd.DataFrame]:
    """The chunks up to `max_rows` rows in all (None: every row); the file is read no further."""
    left = max_rows
    for chunk in chunks:
        if left is not None:
            chunk, left = chunk.iloc[:left], left - min(left, len(chunk))
        if len(chunk):
            yield chunk
        if left == 0:
            return


class Seq2SeqDataModule(TaskDataModule):
    """Source/target pairs from local files (csv, tsv, json, jsonl, parquet, or `format=squad`
    for the official SQuAD JSON) or a hub dataset. Splitting, cleaning and caching work as in
    the classification data module (splits are random rather than stratified)."""

    task_name = "seq2seq"

    def __init__(
        self,
        source_template: str = "{source}",
        target_column: str = "target",
        references_column: str | None = None,
        truncate_column: str | None = None,
        task: str = "qa",
        cleaning: TextCleaner | dict | None = None,
        val_ratio: float = 0.1,
        test_ratio: float = 0.1,
        max_rows: int | None = None,
        seed: int = 42,
        max_source_length: int = 512,
        max_target_length: int = 64,
        **settings,
    ):
        # the files or hub dataset (data/tables.py), then the loader settings (TaskDataModule)
        self.tables = TableFiles.take(settings)
        super().__init__(files=self.tables.files, seed=seed, bucket_length=max_source_length, **settings)
        self.cleaner = cleaning if isinstance(cleaning, TextCleaner) else TextCleaner(**(cleaning or {}))
        self.source_template, self.target_column = source_template, target_column
        self.references_column, self.truncate_column = references_column, truncate_column
        self.task = task  # qa | summarization | classification: picks the metrics
        self.val_ratio, self.test_ratio, self.max_rows = val_ratio, test_ratio, max_rows
        self.max_source_length, self.max_target_length = max_source_length, max_target_length
        # targets have buckets of their own (static shapes)
        self.target_buckets = bucket_lengths(max_target_length, self.length_buckets) if self.static_shapes else None
        self.fields = template_fields(source_template)
        self._check_config()

    def _check_config(self) -> None:
        problems = self.tables.problems() + ratio_problems(self.val_ratio, self.test_ratio)
        if not self.fields:
            problems.append(f"data.source_template {self.source_template!r} names no column; use e.g. '{{document}}'")
        if self.truncate_column and self.fields.count(self.truncate_column) != 1:
            problems.append(f"data.truncate_column={self.truncate_column} must appear once in data.source_template")
        if self.task not in ("qa", "summarization", "classification"):
            problems.append(f"data.task must be qa, summarization or classification, got {self.task!r}")
        raise_if_any(problems)

    # ----------------------------------------------------------------- cache
    def cache_settings(self) -> dict:
        return {
            "version": CACHE_VERSION, **self.tables.cache_settings(),
            "template": self.source_template, "target": self.target_column,
            "references": self.references_column, "truncate": self.truncate_column,
            "cleaning": self.cleaner.to_config(), "split": [self.val_ratio, self.test_ratio, self.seed],
            "max_rows": self.max_rows, "lengths": [self.max_source_length, self.max_target_length],
        }

    # ----------------------------------------------------------------- reading and cleaning
    def _open_sources(self) -> dict:
        """{split: its rows in chunks (the first `max_rows` of each)}, columns checked first."""
        needed = {f"source_template field '{f}'": f for f in self.fields}
        needed["target_column"] = self.target_column
        if self.references_column:
            needed["references_column"] = self.references_column
        tables = self.tables
        streams = tables.streams((lambda path: read_squad(path, tables.encoding)) if tables.format == "squad" else None)
        if tables.hub_dataset:
            streams = {split: _flattened(stream) for split, stream in streams.items()}
        for split, stream in streams.items():
            require_columns(stream, needed, tables.source_name(split),
                            hint="fix data.source_template / data.target_column / data.references_column")
        names = list(dict.fromkeys(needed.values()))
        return {split: _first_rows(stream.chunks(columns=names), self.max_rows or None)
                for split, stream in streams.items()}

    def _rows(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
        """Clean every template field and the target, fill the template (unfilled copies of
        the fields are kept for truncation), and keep the references as JSON text; runs on a
        chunk of a file's rows in the preparation's worker processes (no notes)."""
        out = pd.DataFrame({f: frame[f].fillna("").astype(str).map(self.cleaner) for f in self.fields})
        out["target"] = frame[self.target_column].fillna("").astype(str).map(self.cleaner)
        out["source"] = [self.source_template.format(**row) for row in out[self.fields].to_dict("records")]
        if self.references_column:
            refs = [[self.cleaner(str(r)) for r in (v if isinstance(v, (list, np.ndarray)) else [v])]
                    for v in frame[self.references_column]]
        else:
            refs = [[t] for t in out["target"]]
        out["references"] = [json.dumps(r) for r in refs]
        return out, {}

    # ----------------------------------------------------------------- building the cache
    def build_cache(self, tmp: Path) -> None:
        source = self.tokenizer_source
        tokenizer = tokenizer_before_data(source, self.cleaner)
        streams = self._open_sources()
        if "train" not in streams:
            raise LitNlpError("no training split: set data.train_file or data.hub_splits.train")
        recipe = RowRecipe(self._rows, ["source"], self.fields, {"target": "empty_target"})
        cleaned = clean_sources(streams, recipe, tmp / WORK_DIR, self.num_proc)
        rows_read = {s: c.rows for s, c in cleaned.sources.items()}
        eval_sources = {s: self.tables.source_name(s) for s in cleaned.sources if s != "train"}
        keep, dropped = drop_rows_hashed({s: c.hashes for s, c in cleaned.sources.items()}, self.cleaner,
                                         drop_conflicts=False, eval_splits=list(eval_sources))
        for split, mask in keep.items():
            if not mask.any():
                raise LitNlpError(f"{self.files.get(split) or split}: all {rows_read[split]} rows have an empty "
                                  f"template field or target ({', '.join(self.fields)}, {self.target_column})")
        log_dropped(dropped, eval_sources, rows_read)
        # random (unstratified) splits: a generated text has no class to balance
        parts = carve_indices({s: int(mask.sum()) for s, mask in keep.items()}, None, self.val_ratio,
                              self.test_ratio, self.seed)
        dest = destinations(cleaned.sources, keep, parts)
        meta = {"rows_read": rows_read,
                "rows": split_rows(dest),
                "dropped": dropped, "cleaning": self.cleaner.to_config()}
        del keep, parts
        for kept in cleaned.sources.values():
            kept.hashes = None  # tokenizing needs each row's split only
        if tokenizer is None:
            tokenizer = source.build(chain(column_values(cleaned, dest, "train", "source"),
                                           column_values(cleaned, dest, "train", "target")))
        columns = list(dict.fromkeys([*self.fields, "target", "source", "references"]))  # _rows' columns
        write_streamed_splits(tmp, tokenizer, cleaned, dest, lambda split, rows: {}, columns, self._encode, meta,
                              self.num_proc)

    def _encode(self, rows: dict, tokenizer) -> dict:
        records = [dict(zip(self.fields, values)) for values in zip(*(rows[f] for f in self.fields))]
        enc = encode_sources(tokenizer, records, self.source_template, self.truncate_column, self.max_source_length)
        labels = tokenizer(text_target=rows["target"], truncation=True, max_length=self.max_target_length)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                "labels": labels["input_ids"], "references": [json.loads(r) for r in rows["references"]],
                "source": rows["source"], "length": [len(ids) for ids in enc["input_ids"]]}

    def on_loaded(self) -> None:
        self.cleaner = TextCleaner(**self.meta["cleaning"])
        log.info("data: %s rows (train/validation/test), dropped by cleaning: %s",
                 "/".join(str(self.meta["rows"].get(s, 0)) for s in SPLITS), self.meta["dropped"] or "none")

    # ----------------------------------------------------------------- facts and loaders
    @property
    def main_metric(self) -> str:
        return {"qa": "val/f1", "summarization": "val/rougeLsum", "classification": "val/acc"}[self.task]

    def model_facts(self) -> dict:
        """Run-time facts `train()` hands to the model."""
        tok = self.tokenizer
        return {"task": self.task, "tokenizer": tok, "vocab_size": len(tok), "pad_token_id": tok.pad_token_id,
                "eos_token_id": tok.eos_token_id}

    def collate(self, features: list[dict]) -> dict:
        return pad_seq2seq(features, self.tokenizer.pad_token_id, self.pad_to_multiple_of, self.buckets,
                           self.target_buckets)

    def text_settings(self) -> dict:
        """What predict needs to turn raw rows into model input exactly as in training."""
        return {"task": "seq2seq", "seq2seq_task": self.task, "cleaning": self.cleaner.to_config(),
                "source_template": self.source_template, "truncate_column": self.truncate_column,
                "target_column": self.target_column, "max_source_length": self.max_source_length,
                "max_target_length": self.max_target_length}
