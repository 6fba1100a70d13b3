"""Text classification data: read, clean, split, map labels, tokenize, cache, collate.

`prepare_data` does the expensive work once and caches it on disk under a key made of the
data files' contents, the column mapping, cleaning, split settings, tokenizer and max length,
so a second run with the same settings only loads. `setup` loads the cache (every process).
The files are read in chunks and never held whole (lit_nlp.data.prepare): what to drop, the
labels and the splits are decided on per-row arrays of hashes and label codes.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from importlib import resources
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from lit_nlp.codecs.classification import pad_batch, tokenize_to_arrow
from lit_nlp.data.cache import write_streamed_splits
from lit_nlp.data.cleaning import TextCleaner, drop_rows_hashed, log_dropped
from lit_nlp.data.io import require_columns
from lit_nlp.data.labels import (
    check_labels,
    label_column_problems,
    label_sets_of_columns,
    rarest_label,
    split_label_lists,
)
from lit_nlp.data.prepare import (
    SPLIT_IDS,
    WORK_DIR,
    Cleaned,
    RowRecipe,
    clean_sources,
    column_values,
    destinations,
    split_rows,
)
from lit_nlp.data.splits import carve_indices, ratio_problems
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


def _ids(lookup: np.ndarray | None, codes: np.ndarray) -> np.ndarray:
    """Label ids of rows from their label codes (None: the code is the id, a multi-label set's)."""
    return codes if lookup is None else lookup[codes]


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

    # ----------------------------------------------------------------- reading and cleaning
    def _open_sources(self) -> dict:
        """{split: its rows in chunks}, every file's columns checked before its rows are read."""
        columns = {"text_column": self.text_column, "text_pair_column": self.text_pair_column}
        if self.label_columns:
            columns.update({f"label_columns[{i}]": c for i, c in enumerate(self.label_columns)})
        else:
            columns["label_column"] = self.label_column
        streams = self.tables.streams()
        for split, stream in streams.items():
            require_columns(stream, columns, self.tables.source_name(split))
        names = [name for name in columns.values() if name]
        return {split: stream.chunks(columns=names) for split, stream in streams.items()}

    def _clean_chunk(self, chunk: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
        """A chunk of a file's rows -> text, [text_pair], label (a string; multi-label: a tuple of
        labels), cleaned; runs in the preparation's worker processes. Notes: the 0/1 label
        columns' other values, counted (lit_nlp.data.labels.label_column_problems)."""
        cols = {"text": chunk[self.text_column]}
        if self.text_pair_column:
            cols["text_pair"] = chunk[self.text_pair_column]
        if not self.label_columns:
            cols["label"] = chunk[self.label_column]
        frame = pd.DataFrame({k: v.fillna("").astype(str) for k, v in cols.items()})
        notes = {}
        if self.label_columns:
            frame["label"], notes = label_sets_of_columns(chunk, self.label_columns)
        elif self.label_separator:
            frame["label"] = split_label_lists(frame["label"], self.label_separator)
        for col in ("text", "text_pair"):
            if col in frame:
                frame[col] = frame[col].map(self.cleaner)
        if not self.multi_label:
            frame["label"] = frame["label"].str.strip()
        return frame, notes

    def _drop(self, cleaned: Cleaned) -> tuple[dict, dict]:
        """Which rows stay (lit_nlp.data.cleaning.drop_rows' rules): ({split: mask}, dropped)."""
        before = {split: source.rows for split, source in cleaned.sources.items()}
        # validation folds are drawn from training rows, so a validation file is one only without folds
        eval_sources = {split: self.tables.source_name(split) for split in cleaned.sources
                        if split == "test" or (split == "validation" and not self.num_folds)}
        keep, dropped = drop_rows_hashed({split: source.hashes for split, source in cleaned.sources.items()},
                                         self.cleaner, eval_splits=list(eval_sources))
        for split, mask in keep.items():
            if not mask.any():
                raise LitNlpError(
                    f"{self.tables.source_name(split)}: all {before[split]} rows have empty text in column "
                    f"'{self.text_column}' after cleaning; check data.text_column"
                )
        log_dropped(dropped, eval_sources, before)
        return keep, dropped

    # ----------------------------------------------------------------- labels
    def _label_ids(self, cleaned: Cleaned, keep: dict) -> tuple[list[str], list[str], dict, dict, list | None]:
        """Check the training labels, then map every split's labels to ids, on the label codes
        of the rows kept (`cleaned.values` holds each code's label; multi-label: label set).
        Returns (label names, notes to log, {split: the label id of each code, or None where
        the code is the id (multi-label: of the row's label set)}, {split: stratum of each kept
        row}, multi-label: the 0/1 vector of each set)."""
        values = cleaned.values
        codes = {split: source.codes[keep[split]] for split, source in cleaned.sources.items()}
        train = codes["train"]
        rows = np.bincount(train, minlength=len(values))
        # codes in order of first appearance among the training rows (as a Counter of them counts)
        first = np.full(len(values), len(train), dtype=np.int64)
        np.minimum.at(first, train, np.arange(len(train)))
        seen = [int(c) for c in np.argsort(first, kind="stable") if rows[c]]
        counts = Counter()
        for code in seen:
            for label in (values[code] if self.multi_label else [values[code]]):
                counts[label] += int(rows[code])
        column = ", ".join(self.label_columns) if self.label_columns else self.label_column
        problems, notes = check_labels(counts, len(train), self.tables.source_name("train"), column,
                                       self.multi_label)
        if self.label_checks == "warn":
            problems, notes = [], problems + notes
        elif problems:
            problems[-1] += " (data.label_checks=warn trains anyway)"
        names = self.label_columns or self.label_names
        if names is None:
            names = sorted(counts)
            # integer labels keep numeric order (2 before 10); others sort as text
            if all(v.lstrip("-").isdigit() for v in names):
                names = sorted(names, key=int)
        if not self.multi_label and len(counts) < 2:
            problems.append(f"{self.tables.source_name('train')}: only one class ({values[train[0]]!r}) in "
                            f"column '{self.label_column}'; classification needs at least two")
        if self.multi_label and not counts:
            problems.append(f"{self.tables.source_name('train')}: no row has a label in {column}; check "
                            "data.label_separator / data.label_columns")
        index = {name: i for i, name in enumerate(names)}
        where = "training labels" if self.label_names is None else "data.label_names"
        ids, strata, vectors = {}, {}, None
        if self.multi_label:
            vectors = [[int(name in labels) for name in names] for labels in values]
            # each row's rarest label is its stratum; ranks of the strata in sorted order split as the strata do
            rarest = rarest_label(pd.Series(values, dtype=object), counts).tolist()
            rank = {stratum: r for r, stratum in enumerate(sorted(set(rarest)))}
            stratum_of = np.array([rank[stratum] for stratum in rarest], dtype=np.int64)
        for split, present in codes.items():
            distinct = np.unique(present)
            if self.multi_label:
                unseen = sorted({lab for c in distinct for lab in values[c]} - set(index))
                if unseen:
                    problems.append(f"{self.tables.source_name(split)}: labels {unseen[:5]} are not among the {where} "
                                    f"{names}")
                    continue
                ids[split], strata[split] = None, stratum_of[present]
                continue
            lookup = np.full(len(values), -1, dtype=np.int64)
            known = [c for c in distinct if values[c] in index]
            if len(known) < len(distinct) and self.label_names and all(values[c].isdigit() for c in distinct):
                # integer ids given with names in config (e.g. GLUE's 0/1 with label_names)
                if all(0 <= int(values[c]) <= len(names) - 1 for c in distinct):
                    for c in distinct:
                        lookup[c] = int(values[c])
                    ids[split], strata[split] = lookup, lookup[present]
                    continue
            if len(known) < len(distinct):
                unseen = sorted(values[c] for c in distinct if values[c] not in index)[:5]
                problems.append(f"{self.tables.source_name(split)}: labels {unseen} are not among the {where} {names}")
                continue
            for c in distinct:
                lookup[c] = index[values[c]]
            ids[split], strata[split] = lookup, lookup[present]
        raise_if_any(problems)
        train_counts = self._label_counts(_ids(ids["train"], codes["train"]), len(names), vectors)
        missing = [name for i, name in enumerate(names) if not train_counts[i]]
        if missing:
            raise LitNlpError(f"{self.tables.source_name('train')}: labels {missing} from "
                              f"{'data.label_columns' if self.label_columns else 'data.label_names'} never occur "
                              "in training data")
        for note in notes:
            log.warning("%s", note)
        return names, notes, ids, strata, vectors

    def _label_counts(self, ids: np.ndarray, num_labels: int, vectors: list | None) -> list[int]:
        """Rows per label of the rows with `ids` (multi-label: set codes; rows that carry each label)."""
        if vectors is None:
            return np.bincount(ids, minlength=num_labels).tolist()
        per_set = np.bincount(ids, minlength=len(vectors))
        return (per_set @ np.asarray(vectors, dtype=np.int64).reshape(len(vectors), num_labels)).tolist()

    # ----------------------------------------------------------------- building the cache
    def build_cache(self, tmp: Path) -> None:
        source = self.tokenizer_source
        tokenizer = tokenizer_before_data(source, self.cleaner)
        streams = self._open_sources()
        if "train" not in streams:
            raise LitNlpError("no training split: set data.train_file or data.hub_splits.train")
        recipe = RowRecipe(self._clean_chunk, ["text", "text_pair"] if self.text_pair_column else ["text"], ["text"],
                           # a row without a label can be neither trained on nor scored (multi-label: no label is a set)
                           {} if self.multi_label else {"label": "empty_label"}, count_column="label")
        cleaned = clean_sources(streams, recipe, tmp / WORK_DIR, self.num_proc)
        for split, bad in cleaned.notes.items():
            raise_if_any(label_column_problems(bad, self.tables.source_name(split)))
        dest, meta, labels = self._decide(cleaned)
        for kept in cleaned.sources.values():
            kept.hashes = None  # tokenizing needs each row's split and label code only
        columns = ["text", "text_pair", "label"] if self.text_pair_column else ["text", "label"]
        if tokenizer is None:
            tokenizer = source.build(chain.from_iterable(column_values(cleaned, dest, "train", column)
                                                         for column in columns[:-1]))
        write_streamed_splits(tmp, tokenizer, cleaned, dest, labels, columns, self._encode, meta, self.num_proc)

    def _decide(self, cleaned: Cleaned) -> tuple[dict, dict, Callable]:
        """What pass 1's arrays decide: (each source row's output split, meta, labels(source
        split, row positions) -> {"label": ids}); the arrays made on the way are let go of here."""
        keep, dropped = self._drop(cleaned)
        label_names, label_notes, ids, strata, vectors = self._label_ids(cleaned, keep)
        parts = carve_indices({split: int(mask.sum()) for split, mask in keep.items()}, strata, self.val_ratio,
                              self.test_ratio, self.seed, self.num_folds, self.fold)
        dest = destinations(cleaned.sources, keep, parts)
        codes = {split: source.codes for split, source in cleaned.sources.items()}
        counts = {split: self._label_counts(np.concatenate([_ids(ids[src], codes[src][dest[src] == SPLIT_IDS[split]])
                                                            for src in dest]), len(label_names), vectors)
                  for split in parts}
        meta = {
            "label_names": label_names,
            "rows_read": {split: source.rows for split, source in cleaned.sources.items()},
            "rows": split_rows(dest),
            "dropped": dropped,
            "multi_label": self.multi_label,
            "label_counts": counts,  # rows per class; multi-label: rows that carry each label
            "label_notes": label_notes,
            "cleaning": self.cleaner.to_config(),
        }

        def labels(split: str, rows: np.ndarray) -> dict:
            row_ids = _ids(ids[split], codes[split][rows])
            if vectors is None:
                return {"label": pa.array(row_ids, type=pa.int64())}
            return {"label": pa.array([vectors[c] for c in row_ids], type=pa.list_(pa.int64()))}

        return dest, meta, labels

    def _encode(self, rows: dict, tokenizer) -> dict:
        import pyarrow.compute as pc

        encoded = tokenize_to_arrow(tokenizer, rows["text"], rows.get("text_pair"), self.max_length)
        # lengths drive the length-grouped sampler
        return {**encoded, "labels": rows["label"], "length": pc.list_value_length(encoded["input_ids"]).cast(pa.int64())}

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
