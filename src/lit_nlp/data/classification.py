"""Text classification data: read, clean, split, map labels, tokenize, cache, collate.

`prepare_data` does the expensive work once and caches it on disk under a key made of the
data files' contents, the column mapping, cleaning, split settings, tokenizer and max length,
so a second run with the same settings only loads. `setup` loads the cache (every process).
"""

from __future__ import annotations

import logging
from collections import Counter
from importlib import resources
from pathlib import Path

import pandas as pd

from lit_nlp.data.cache import (
    write_splits,
)
from lit_nlp.codecs.classification import pad_batch, tokenize
from lit_nlp.data.cleaning import TextCleaner, drop_rows, log_dropped
from lit_nlp.data.io import require_columns
from lit_nlp.data.labels import check_labels, rarest_label, read_label_columns, split_label_lists
from lit_nlp.data.splits import carve_splits, ratio_problems
from lit_nlp.data.tables import TableFiles
from lit_nlp.data.task_data import SPLITS, TaskDataModule
from lit_nlp.data.tokenizers import tokenizer_before_data
from lit_nlp.errors import LitNlpError, raise_if_any

log = logging.getLogger(__name__)

# Bump when the cached layout or preprocessing changes, so old caches are not reused.
CACHE_VERSION = 2


def demo_file() -> str:
    """The labelled sentiment reviews shipped inside the package (the offline default data)."""
    return str(resources.files("lit_nlp.data") / "demo" / "sentiment.csv")


class ClassificationDataModule(TaskDataModule):
    """Sentence (or sentence-pair) classification from local files or a hub dataset.

    Files: `train_file` alone is split into train/validation/test by `val_ratio`/`test_ratio`
    (seeded, stratified); with `validation_file`/`test_file` those are used as given and any
    missing split is carved from train. `num_folds`/`fold` replace the validation split by
    fold `fold` of a stratified k-fold over the training rows; the test split stays outside.
    Given validation/test files are scored as given (see `drop_rows`).
    Labels: one per row in `label_column`; or a set per row (multi-label) as a
    `label_separator`-separated list in `label_column`, or as several 0/1 `label_columns`.
    `label_checks`: `error` stops on a label set that looks wrong (sentences, one value spelled
    two ways), `warn` logs it and trains. The tokenizer source is handed in by `train()`
    (`tokenizer` config group).
    """

    task_name = "classification"

    def __init__(
        self,
        text_column: str = "text",
        text_pair_column: str | None = None,
        label_column: str = "label",
        label_names: list[str] | None = None,
        label_separator: str | None = None,
        label_columns: list[str] | None = None,
        label_checks: str = "error",
        cleaning: TextCleaner | dict | None = None,
        val_ratio: float = 0.1,
        test_ratio: float = 0.1,
        num_folds: int | None = None,
        fold: int = 0,
        seed: int = 42,
        max_length: int = 128,
        **settings,
    ):
        # the files or hub dataset (data/tables.py), then the loader settings (TaskDataModule)
        self.tables = TableFiles.take(settings)
        super().__init__(files=self.tables.files, seed=seed, bucket_length=max_length, **settings)
        if isinstance(cleaning, dict) or cleaning is None:
            cleaning = TextCleaner(**(cleaning or {}))
        self.cleaner = cleaning
        self.text_column, self.text_pair_column, self.label_column = text_column, text_pair_column, label_column
        self.label_names = list(label_names) if label_names else None
        self.label_separator = label_separator
        self.label_columns = list(label_columns) if label_columns else None
        self.multi_label = bool(label_separator or label_columns)
        self.label_checks = label_checks
        self.val_ratio, self.test_ratio = val_ratio, test_ratio
        self.num_folds, self.fold = num_folds, fold
        self.max_length = max_length
        self._check_config()

    # ----------------------------------------------------------------- config and cache key
    def _check_config(self) -> None:
        problems = self.tables.problems() + ratio_problems(self.val_ratio, self.test_ratio)
        if self.num_folds is not None and (self.num_folds < 2 or not 0 <= self.fold < self.num_folds):
            problems.append(f"data.fold must be in [0, num_folds) and num_folds >= 2, "
                            f"got fold={self.fold} num_folds={self.num_folds}")
        if self.max_length < 2:
            problems.append(f"data.max_length must be at least 2, got {self.max_length}")
        if self.label_separator and self.label_columns:
            problems.append("set data.label_separator (one column of label lists) or data.label_columns "
                            "(0/1 columns), not both")
        if self.label_columns and self.label_names:
            problems.append("data.label_columns names the labels already; remove data.label_names")
        if self.label_checks not in ("error", "warn"):
            problems.append(f"data.label_checks must be error or warn, got {self.label_checks!r}")
        raise_if_any(problems)

    def cache_settings(self) -> dict:
        return {
            "version": CACHE_VERSION, **self.tables.cache_settings(),
            "columns": [self.text_column, self.text_pair_column, self.label_column],
            "label_names": self.label_names, "multi_label": [self.label_separator, self.label_columns],
            "label_checks": self.label_checks, "cleaning": self.cleaner.to_config(),
            "split": [self.val_ratio, self.test_ratio, self.num_folds, self.fold, self.seed],
            "max_length": self.max_length,
        }

    # ----------------------------------------------------------------- reading
    def _read_sources(self) -> dict[str, pd.DataFrame]:
        columns = {"text_column": self.text_column, "text_pair_column": self.text_pair_column}
        if self.label_columns:
            columns.update({f"label_columns[{i}]": c for i, c in enumerate(self.label_columns)})
        else:
            columns["label_column"] = self.label_column
        frames = self.tables.read()
        for split, frame in frames.items():
            require_columns(frame, columns, self.tables.source_name(split))
        out = {}
        for split, frame in frames.items():
            cols = {"text": frame[self.text_column]}
            if self.text_pair_column:
                cols["text_pair"] = frame[self.text_pair_column]
            if not self.label_columns:
                cols["label"] = frame[self.label_column]
            out[split] = pd.DataFrame({k: v.fillna("").astype(str) for k, v in cols.items()})
            if self.label_columns:
                out[split]["label"] = read_label_columns(frame, self.label_columns, self.tables.source_name(split))
            elif self.label_separator:
                out[split]["label"] = split_label_lists(out[split]["label"], self.label_separator)
        return out

    # ----------------------------------------------------------------- cleaning and labels
    def _clean(self, frames: dict[str, pd.DataFrame]) -> tuple[dict, dict]:
        for split, frame in frames.items():
            for col in ("text", "text_pair"):
                if col in frame:
                    frame[col] = frame[col].map(self.cleaner)
            if not self.multi_label:
                frame["label"] = frame["label"].str.strip()
        before = {split: len(f) for split, f in frames.items()}
        key_cols = ["text", "text_pair"] if "text_pair" in frames["train"] else ["text"]
        # validation folds are drawn from training rows, so a validation file is one only without folds
        eval_sources = {split: self.tables.source_name(split) for split in frames
                        if split == "test" or (split == "validation" and not self.num_folds)}
        # a row without a label can be neither trained on nor scored (multi-label: no label is a label set)
        gold = None if self.multi_label else {"label": "empty_label"}
        frames, dropped = drop_rows(frames, key_cols, self.cleaner, gold_columns=gold, eval_splits=list(eval_sources))
        for split, frame in frames.items():
            if frame.empty:
                raise LitNlpError(
                    f"{self.tables.source_name(split)}: all {before[split]} rows have empty text in column "
                    f"'{self.text_column}' after cleaning; check data.text_column"
                )
        log_dropped(dropped, eval_sources, before)
        return frames, dropped

    def _label_ids(self, frames: dict[str, pd.DataFrame]) -> tuple[list[str], list[str]]:
        """Check the training labels, then map every split's labels to ids (multi-label: 0/1
        vectors, with each row's rarest label in a `stratum` column for splitting). Returns the
        label names and the notes to log."""
        train_labels = frames["train"]["label"]
        if self.multi_label:
            counts = Counter(lab for labels in train_labels for lab in labels)
        else:
            counts = Counter(train_labels)
        column = ", ".join(self.label_columns) if self.label_columns else self.label_column
        problems, notes = check_labels(counts, len(train_labels), self.tables.source_name("train"), column,
                                       self.multi_label)
        if self.label_checks == "warn":
            problems, notes = [], problems + notes
        elif problems:
            problems[-1] += " (data.label_checks=warn trains anyway)"
        names = self.label_columns or self.label_names
        if names is None:
            values = sorted(counts)
            # integer labels keep numeric order (2 before 10); others sort as text
            if all(v.lstrip("-").isdigit() for v in values):
                values = sorted(values, key=int)
            names = values
        if not self.multi_label and len(counts) < 2:
            problems.append(f"{self.tables.source_name('train')}: only one class ({train_labels.iloc[0]!r}) in "
                            f"column '{self.label_column}'; classification needs at least two")
        if self.multi_label and not counts:
            problems.append(f"{self.tables.source_name('train')}: no row has a label in {column}; check "
                            "data.label_separator / data.label_columns")
        index = {name: i for i, name in enumerate(names)}
        for split, frame in frames.items():
            labels = frame["label"]
            if self.multi_label:
                unseen = sorted({lab for row in labels for lab in row} - set(index))
                if unseen:
                    where = "training labels" if self.label_names is None else "data.label_names"
                    problems.append(f"{self.tables.source_name(split)}: labels {unseen[:5]} are not among the {where} "
                                    f"{names}")
                    continue
                frame["stratum"] = rarest_label(labels, counts)
                frame["label"] = labels.map(lambda row: [int(name in row) for name in names])
                continue
            known = labels.isin(index)
            if not known.all() and self.label_names and labels.str.isdigit().all():
                # integer ids given with names in config (e.g. GLUE's 0/1 with label_names)
                ids = labels.astype(int)
                if ids.between(0, len(names) - 1).all():
                    frame["label"] = ids
                    continue
            if not known.all():
                unseen = sorted(set(labels[~known]))[:5]
                where = "training labels" if self.label_names is None else "data.label_names"
                problems.append(f"{self.tables.source_name(split)}: labels {unseen} are not among the {where} {names}")
                continue
            frame["label"] = labels.map(index)
        raise_if_any(problems)
        missing = [name for i, name in enumerate(names) if not self._label_count(frames["train"], i)]
        if missing:
            raise LitNlpError(f"{self.tables.source_name('train')}: labels {missing} from "
                              f"{'data.label_columns' if self.label_columns else 'data.label_names'} never occur "
                              "in training data")
        for note in notes:
            log.warning("%s", note)
        return names, notes

    def _label_count(self, frame: pd.DataFrame, label_id: int) -> int:
        """Rows of `frame` that carry label `label_id` (multi-label: among their labels)."""
        if self.multi_label:
            return int(sum(row[label_id] for row in frame["label"]))
        return int((frame["label"] == label_id).sum())

    # ----------------------------------------------------------------- building the cache
    def build_cache(self, tmp: Path) -> None:
        source = self.tokenizer_source
        tokenizer = tokenizer_before_data(source, self.cleaner)
        raw = self._read_sources()
        if "train" not in raw:
            raise LitNlpError("no training split: set data.train_file or data.hub_splits.train")
        counts_read = {split: len(f) for split, f in raw.items()}
        frames, dropped = self._clean(raw)
        label_names, label_notes = self._label_ids(frames)
        stratum = "stratum" if self.multi_label else "label"
        frames = carve_splits(frames, stratum, self.val_ratio, self.test_ratio, self.seed, self.num_folds, self.fold)
        if self.multi_label:
            frames = {split: frame.drop(columns="stratum") for split, frame in frames.items()}
        if tokenizer is None:
            train_texts = frames["train"]["text"].tolist()
            if "text_pair" in frames["train"]:
                train_texts += frames["train"]["text_pair"].tolist()
            tokenizer = source.build(train_texts)
        meta = {
            "label_names": label_names,
            "rows_read": counts_read,
            "rows": {split: len(f) for split, f in frames.items()},
            "dropped": dropped,
            "multi_label": self.multi_label,
            # rows per class; multi-label: rows that carry each label
            "label_counts": {split: [self._label_count(f, i) for i in range(len(label_names))]
                             for split, f in frames.items()},
            "label_notes": label_notes,
            "cleaning": self.cleaner.to_config(),
        }
        write_splits(tmp, tokenizer, frames, self._encode, meta)

    def _encode(self, rows: dict, tokenizer) -> dict:
        encoded = tokenize(tokenizer, rows["text"], rows.get("text_pair"), self.max_length)
        # lengths drive the length-grouped sampler
        return {**encoded, "labels": rows["label"], "length": [len(ids) for ids in encoded["input_ids"]]}

    def on_loaded(self) -> None:
        # the cleaning actually applied (lowercase resolved) is what predict must apply again
        self.cleaner = TextCleaner(**self.meta["cleaning"])
        log.info("data: %s rows (train/validation/test), labels %s, dropped by cleaning: %s",
                 "/".join(str(self.meta["rows"].get(s, 0)) for s in SPLITS), self.label_names_resolved,
                 self.meta["dropped"] or "none")
        for note in self.meta.get("label_notes", []):  # again on a cache hit: the build's log may be gone
            log.warning("%s", note)

    # ----------------------------------------------------------------- facts for the model
    @property
    def label_names_resolved(self) -> list[str]:
        return self.meta["label_names"]

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.meta["label_names"]))

    @property
    def main_metric(self) -> str:
        return "val/f1_micro" if self.multi_label else "val/acc"

    def model_facts(self) -> dict:
        """Run-time facts `train()` hands to the model (the training label counts feed
        `model.class_weights=balanced`)."""
        return {"label_names": self.meta["label_names"], "vocab_size": len(self.tokenizer),
                "pad_token_id": self.tokenizer.pad_token_id, "multi_label": self.multi_label,
                "label_counts": self.meta["label_counts"]["train"], "train_rows": self.meta["rows"]["train"]}

    def collate(self, features: list[dict]) -> dict:
        return pad_batch(features, self.tokenizer.pad_token_id, self.pad_to_multiple_of, self.buckets)

    # ----------------------------------------------------------------- what travels with the model
    def text_settings(self) -> dict:
        """What predict needs to turn raw text into model input exactly as in training."""
        return {
            "task": "classification",
            "cleaning": self.cleaner.to_config(),
            "max_length": self.max_length,
            "text_column": self.text_column,
            "text_pair_column": self.text_pair_column,
            "label_names": self.meta["label_names"],
            "multi_label": self.multi_label,
            "length_buckets": self.length_buckets,  # predict's static shapes, as in training
        }
