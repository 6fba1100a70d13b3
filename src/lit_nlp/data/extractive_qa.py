"""Extractive question answering data: read questions with their context and gold answers
(text + character start), split, cut each context into overlapping windows, label each window's
answer span in tokens, cache, collate.

A window is `[CLS] question [SEP] part of the context [SEP]`, at most `max_length` tokens;
consecutive windows of one context share `doc_stride` tokens, so an answer cut by one window
boundary lies whole in the next window. The question is never cut. A window's labels are the
first and last token of the first gold answer, or the CLS position when the answer is not
wholly inside that window (or the question has none: SQuAD v2). Each window keeps the
character offsets of its context tokens, so predicted spans map back to context text.

No text cleaning: gold answers are character offsets into the context as given, and any
change to the context would move them (the tokenizer still lowercases for uncased models).
Questions lose surrounding whitespace only.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lit_nlp.codecs.extractive_qa import collate_qa, encode_windows, question_too_long
from lit_nlp.data.cache import (
    DONE_MARKER,
    data_report,
    write_splits,
)
from lit_nlp.data.io import FORMATS, read_table, require_columns
from lit_nlp.data.splits import carve_splits, ratio_problems
from lit_nlp.data.task_data import SPLITS, TaskDataModule
from lit_nlp.data.squad import read_squad
from lit_nlp.errors import LitNlpError, raise_if_any

log = logging.getLogger(__name__)

CACHE_VERSION = 1
# problems listed in an error message before "... and N more"
SHOWN = 3


# ---------------------------------------------------------------------------- answers
def parse_answers(value: Any) -> tuple[list[str], list[int]]:
    """A flat file's answers cell as (texts, character starts): `{"text": [...],
    "answer_start": [...]}` (the Hugging Face SQuAD layout), a list of `{"text", "answer_start"}`,
    or either written as JSON text (csv, tsv). Blank texts are left out; none left means the
    question has no answer. Raises ValueError saying what is wrong."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError:
            raise ValueError("is not JSON: write it as {\"text\": [...], \"answer_start\": [...]}") from None
    if isinstance(value, dict):
        if "text" not in value or "answer_start" not in value:
            raise ValueError("lacks 'text' or 'answer_start'")
        texts, starts = value["text"], value["answer_start"]
        texts = list(texts) if isinstance(texts, (list, tuple, np.ndarray)) else [texts]
        starts = list(starts) if isinstance(starts, (list, tuple, np.ndarray)) else [starts]
        if len(texts) != len(starts):
            raise ValueError(f"has {len(texts)} texts but {len(starts)} answer_start values")
        pairs = list(zip(texts, starts))
    elif isinstance(value, (list, tuple, np.ndarray)):
        if not all(isinstance(a, dict) and "text" in a and "answer_start" in a for a in value):
            raise ValueError("lacks 'text' or 'answer_start' in an answer")
        pairs = [(a["text"], a["answer_start"]) for a in value]
    elif value is None or (isinstance(value, float) and np.isnan(value)):
        pairs = []
    else:
        raise ValueError(f"is a {type(value).__name__}, not a list of answers")
    texts, starts = [], []
    for text, start in pairs:
        if not str(text).strip():
            continue
        try:
            starts.append(int(start))
        except (TypeError, ValueError):
            raise ValueError(f"answer_start {start!r} is not a whole number") from None
        texts.append(str(text))
    return texts, starts


def answer_problems(frame: pd.DataFrame) -> list[str]:
    """Gold answers whose text is not in the context at their answer_start, one line each."""
    problems = []
    for qid, context, texts, starts in zip(frame["id"], frame["context"], frame["answer_texts"], frame["answer_starts"]):
        for text, start in zip(texts, starts):
            if context[start:start + len(text)] != text or start < 0:
                problems.append(f"question id {qid}: {text!r} at answer_start {start}, where the context reads "
                                f"{context[max(start, 0):max(start, 0) + len(text)]!r}")
    return problems


# ---------------------------------------------------------------------------- the data module
class ExtractiveQADataModule(TaskDataModule):
    """Questions, contexts and answer spans from the official SQuAD JSON (`format=squad`) or a
    flat file (csv, tsv, json, jsonl, parquet) with question, context and answers columns.

    Splits: a missing validation or test split is carved from train by paragraph (`val_ratio`
    and `test_ratio` of the distinct contexts), so no context is in two splits. Training rows
    that are empty or repeated are dropped and counted; validation and test rows never are:
    every question of an evaluation file is scored. `max_train_rows`: a seeded sample of that
    many training questions (quick or CPU-sized runs); evaluation files stay whole.

    max_answer_length, n_best, align_to_words, allow_unanswerable: how predicted spans become
    answers (see lit_nlp.models.span_decoding); handed to the model and saved for predict.
    """

    task_name = "extractive_qa"
    main_metric = "val/f1"

    def __init__(
        self,
        train_file: str | None = None,
        validation_file: str | None = None,
        test_file: str | None = None,
        format: str | None = "squad",
        encoding: str = "utf-8",
        id_column: str = "id",
        question_column: str = "question",
        context_column: str = "context",
        answers_column: str = "answers",
        allow_unanswerable: bool = False,
        val_ratio: float = 0.1,
        test_ratio: float = 0.1,
        max_train_rows: int | None = None,
        seed: int = 42,
        max_length: int = 384,
        doc_stride: int = 128,
        max_answer_length: int = 30,
        n_best: int = 5,
        align_to_words: bool = True,
        **loader,
    ):
        super().__init__(files={"train": train_file, "validation": validation_file, "test": test_file}, seed=seed,
                         bucket_length=max_length, **loader)
        self.format, self.encoding = format, encoding
        self.columns = {"id": id_column, "question": question_column, "context": context_column,
                        "answers": answers_column}
        self.allow_unanswerable = allow_unanswerable
        self.val_ratio, self.test_ratio, self.max_train_rows = val_ratio, test_ratio, max_train_rows
        self.max_length, self.doc_stride = max_length, doc_stride
        self.max_answer_length, self.n_best, self.align_to_words = max_answer_length, n_best, align_to_words
        self._check_config()

    def _check_config(self) -> None:
        problems = []
        if not self.files["train"]:
            problems.append("set data.train_file")
        if self.format not in (None, "squad", *FORMATS):
            problems.append(f"data.format={self.format} is not one of squad, {', '.join(FORMATS)} "
                            "(or null: from the file name)")
        if not 0 <= self.doc_stride < self.max_length:
            problems.append(f"data.doc_stride={self.doc_stride} must be at least 0 and below "
                            f"data.max_length={self.max_length}")
        for key in ("max_answer_length", "n_best"):
            if getattr(self, key) < 1:
                problems.append(f"data.{key} must be at least 1, got {getattr(self, key)}")
        problems += ratio_problems(self.val_ratio, self.test_ratio)
        raise_if_any(problems)

    # ----------------------------------------------------------------- cache
    def cache_settings(self) -> dict:
        return {
            "version": CACHE_VERSION, "format": self.format, "encoding": self.encoding, "columns": self.columns,
            "unanswerable": self.allow_unanswerable, "split": [self.val_ratio, self.test_ratio, self.seed],
            "max_train_rows": self.max_train_rows, "windows": [self.max_length, self.doc_stride],
        }

    # ----------------------------------------------------------------- reading
    def _read_file(self, path: str) -> pd.DataFrame:
        """One file as rows of id, question, context, answer_texts, answer_starts, answers."""
        if self.format == "squad":
            frame = read_squad(path, self.encoding, allow_unanswerable=True, keep_offsets=True)
            frame["id"] = frame["id"].astype(str)
            return frame[["id", "question", "context", "answer_texts", "answer_starts"]]
        table = read_table(path, self.format, self.encoding)
        cols = self.columns
        require_columns(table, {f"{k}_column": v for k, v in cols.items() if k != "id"}, path,
                        hint="set data.question_column / data.context_column / data.answers_column")
        # without an id column, a question is named by its row number in the file
        ids = table[cols["id"]].astype(str) if cols["id"] in table else pd.Series(range(len(table))).astype(str)
        texts, starts, problems = [], [], []
        for qid, value in zip(ids, table[cols["answers"]]):
            try:
                t, s = parse_answers(value)
            except ValueError as err:
                problems.append(f"question id {qid}: column '{cols['answers']}' {err}")
                t, s = [], []
            texts.append(t)
            starts.append(s)
        if problems:
            raise LitNlpError(f"{path}: {len(problems)} malformed answers (first: {problems[0]})")
        return pd.DataFrame({"id": ids.tolist(), "question": table[cols["question"]].fillna("").astype(str).tolist(),
                             "context": table[cols["context"]].fillna("").astype(str).tolist(),
                             "answer_texts": texts, "answer_starts": starts})

    def _read(self) -> dict[str, pd.DataFrame]:
        frames = {split: self._read_file(path) for split, path in self.files.items() if path}
        problems = []
        for split, frame in frames.items():
            frame["question"] = frame["question"].str.strip()
            path = self.files[split]
            wrong = answer_problems(frame)
            if wrong:
                problems.append(f"{path}: {len(wrong)} answers are not in the context at their answer_start "
                                f"(first: {wrong[0]}); fix answer_start (a character offset into the context)")
            if not self.allow_unanswerable:
                none = frame["id"][frame["answer_texts"].map(len) == 0].tolist()
                if none:
                    problems.append(f"{path}: {len(none)} questions have no answer (first: question id {none[0]}); "
                                    "for SQuAD v2-style unanswerable questions set data.allow_unanswerable=true")
        raise_if_any(problems)
        return frames

    def _drop_training_rows(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
        """Training rows with an empty question or context, and repeats of a row (same
        question, context and first answer), are dropped and counted."""
        empty = (frame["question"].str.len() == 0) | (frame["context"].str.len() == 0)
        first_answer = frame["answer_texts"].map(lambda t: t[0] if len(t) else "")
        first_start = frame["answer_starts"].map(lambda s: str(s[0]) if len(s) else "")
        key = frame["question"] + "\x1f" + frame["context"] + "\x1f" + first_answer + "\x1f" + first_start
        duplicate = key.duplicated() & ~empty
        dropped = {"train/empty": int(empty.sum()), "train/duplicate": int(duplicate.sum())}
        return frame[~(empty | duplicate)].reset_index(drop=True), {k: v for k, v in dropped.items() if v}

    def _split(self, frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """Carve the missing evaluation splits from train by distinct context (paragraph)."""
        contexts = {split: pd.DataFrame({"context": pd.unique(frame["context"])}) for split, frame in frames.items()}
        carved = carve_splits(contexts, None, self.val_ratio, self.test_ratio, self.seed)
        out = {split: frame for split, frame in frames.items() if split != "train"}
        train = frames["train"]
        for split, ctx in carved.items():
            if split not in out:
                out[split] = train[train["context"].isin(set(ctx["context"]))].reset_index(drop=True)
        return {split: out[split] for split in SPLITS if split in out}

    def _check_ids_and_lengths(self, frames: dict[str, pd.DataFrame], tokenizer) -> None:
        problems = []
        for split, frame in frames.items():
            source = self.files.get(split) or f"{self.files['train']} ({split} split)"
            repeated = frame["id"][frame["id"].duplicated()].unique().tolist()
            if repeated:
                problems.append(f"{source}: {len(repeated)} question ids occur more than once (first: question id "
                                f"{repeated[0]}); give every question its own id (data.id_column)")
            long = question_too_long(tokenizer, frame["question"].tolist(), self.max_length, self.doc_stride)
            if long:
                problems.append(f"{source}: {len(long)} questions leave no room for context in data.max_length="
                                f"{self.max_length} with data.doc_stride={self.doc_stride} (first: question id "
                                f"{frame['id'][long[0]]}); raise data.max_length or lower data.doc_stride")
        raise_if_any(problems)

    # ----------------------------------------------------------------- Lightning hooks
    def build_cache(self, tmp: Path) -> None:
        source = self.tokenizer_source
        tokenizer = None if source.trained_from_data else source.build()
        frames = self._read()
        rows_read = {split: len(frame) for split, frame in frames.items()}
        sample = self.max_train_rows if self.max_train_rows and self.max_train_rows < rows_read["train"] else None
        if sample:
            # a seeded sample, kept in file order (the first N questions would come from a few articles)
            keep = np.sort(np.random.default_rng(self.seed).choice(rows_read["train"], sample, replace=False))
            frames["train"] = frames["train"].iloc[keep].reset_index(drop=True)
        frames["train"], dropped = self._drop_training_rows(frames["train"])
        for key, count in dropped.items():
            log.info("dropped %d training rows (%s)", count, key)
        if frames["train"].empty:
            raise LitNlpError(f"{self.files['train']}: no training rows left (all {rows_read['train']} have an "
                              "empty question or context)")
        frames = self._split(frames)
        if tokenizer is None:
            train = frames["train"]
            tokenizer = source.build(train["question"].tolist() + pd.unique(train["context"]).tolist())
        self._check_ids_and_lengths(frames, tokenizer)
        for frame in frames.values():
            # distinct gold texts, every one counting for exact match and F1
            frame["answers"] = [list(dict.fromkeys(t.strip() for t in texts)) for texts in frame["answer_texts"]]
        meta = {"rows_read": rows_read, "rows": {s: len(f) for s, f in frames.items()}, "dropped": dropped,
                "train_sample": sample, "windows": {}}
        write_splits(tmp, tokenizer, frames, self._encode, meta, self.num_proc)
        # the number of windows per split is known once they are written
        import datasets

        meta["windows"] = {s: datasets.load_from_disk(str(tmp / s)).num_rows for s in frames}
        (tmp / DONE_MARKER).write_text(json.dumps(meta, indent=2))

    def _encode(self, rows: dict, tokenizer) -> dict:
        texts = [list(t) for t in rows["answer_texts"]]
        starts = [list(s) for s in rows["answer_starts"]]
        windows = encode_windows(tokenizer, rows["question"], rows["context"], self.max_length, self.doc_stride,
                                 texts, starts)
        examples = windows.pop("example")
        windows.update(id=[rows["id"][e] for e in examples], context=[rows["context"][e] for e in examples],
                       answers=[list(rows["answers"][e]) for e in examples],
                       length=[len(ids) for ids in windows["input_ids"]])
        return windows

    def on_loaded(self) -> None:
        # evaluation windows longest first: in file order, batches of 64 SQuAD v1.1 dev windows
        # (384 tokens) pad 1.90M real tokens to 3.13M, in length order to 1.91M; a question is
        # answered once all its windows are in, so their order does not matter
        for split in ("validation", "test"):
            if split in self.datasets:
                self.datasets[split] = self.datasets[split].sort("length", reverse=True)
        log.info("data: %s questions in %s windows (train/validation/test), dropped: %s",
                 "/".join(str(self.meta["rows"].get(s, 0)) for s in SPLITS),
                 "/".join(str(self.meta["windows"].get(s, 0)) for s in SPLITS), self.meta["dropped"] or "none")

    # ----------------------------------------------------------------- facts and loaders
    def model_facts(self) -> dict:
        """Run-time facts `train()` hands to the model."""
        return {"vocab_size": len(self.tokenizer), "pad_token_id": self.tokenizer.pad_token_id,
                "max_answer_length": self.max_answer_length, "n_best": self.n_best,
                "unanswerable": self.allow_unanswerable, "align_to_words": self.align_to_words}

    def report(self) -> dict:
        sample = {"data/train_sample": self.meta["train_sample"]} if self.meta.get("train_sample") else {}
        return {**data_report(self.meta), **sample, **{f"data/windows/{k}": v for k, v in self.meta["windows"].items()}}

    def collate(self, features: list[dict]) -> dict:
        return collate_qa(features, self.tokenizer.pad_token_id, self.pad_to_multiple_of, self.buckets)

    def text_settings(self) -> dict:
        """What predict needs to window raw questions and contexts and decode answers as here."""
        return {"task": "extractive_qa", "question_column": self.columns["question"],
                "context_column": self.columns["context"], "max_length": self.max_length,
                "doc_stride": self.doc_stride, "max_answer_length": self.max_answer_length, "n_best": self.n_best,
                "unanswerable": self.allow_unanswerable, "align_to_words": self.align_to_words,
                "length_buckets": self.length_buckets}
