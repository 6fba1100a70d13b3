"""The data benchmark's baseline and the equality test's reference: classification data prepared
the way lit_nlp did before the streamed preparation (commit ee76a49), whole files at a time. A
csv/tsv file is read whole into Python lists, then a DataFrame; cleaning maps the DataFrame;
duplicates, conflicts and leakage are found on sets and pandas' `duplicated` over the texts;
the splits are DataFrames; each split is tokenized by one `datasets.map` and saved with
`save_to_disk`. Single-label classification from csv/tsv only, which is what the benchmark and
the equality test run. The cleaning steps and the splits are as they ran then too
(`WholeFileCleaner`: every pattern on every text; `carve_splits_whole`: row indices per class
found by a scan per class, splits cut from DataFrames), so that the test compares the rows kept
and the splits drawn with the code that drew them before; the label checks, which were not a
matter of memory or speed, are today's code, shared with the data module.

Not used by training: `lit_nlp.data.classification` prepares data in chunks (lit_nlp.data.prepare).
"""

from __future__ import annotations

import csv
import html
import json
import re
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from lit_nlp.codecs.classification import tokenize
from lit_nlp.data.cache import DONE_MARKER
from lit_nlp.data import cleaning
from lit_nlp.data.cleaning import TextCleaner
from lit_nlp.data.labels import check_labels
from lit_nlp.errors import LitNlpError


# ----------------------------------------------------------------------------- cleaning, as it ran
_SPACE = re.compile(r"\s+")
STEPS_THEN = {
    "unicode": lambda form="NFKC": lambda t: unicodedata.normalize(form, t),
    "html": lambda: lambda t: html.unescape(cleaning._TAG.sub(" ", t)),
    "urls": lambda token="<url>": lambda t: cleaning._URL.sub(token, t),
    "emails": lambda token="<email>": lambda t: cleaning._EMAIL.sub(token, t),
    "mentions": lambda token="@user": lambda t: cleaning._MENTION.sub(token, t),
    "contractions": lambda: lambda t: cleaning._CONTRACTION.sub(cleaning._expand, t.replace("\u2019", "'")),
    "lowercase": lambda: str.lower,
    "whitespace": lambda: lambda t: _SPACE.sub(" ", t).strip(),
}


class WholeFileCleaner(TextCleaner):
    """TextCleaner with its steps as they ran before they learnt to skip texts their pattern
    cannot match (the same output, checked by the equality test: 11-14 us a SST-2 row, not 4)."""

    def _build(self) -> None:
        self._fns = [STEPS_THEN[name](**options) for name, options in self.steps]
        if self.lowercase is True and "lowercase" not in [name for name, _ in self.steps]:
            self._fns.append(str.lower)


# ----------------------------------------------------------------------------- reading, whole
def _row_lines(text: str) -> list[str]:
    if "\n" not in text:
        parts = text.split("\r")
        return [p + "\r" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def read_whole(path: str | Path, sep: str, encoding: str = "utf-8", quotes: bool = False) -> pd.DataFrame:
    """A csv/tsv file read whole: its text, its lines, every row as a list of fields, then a
    DataFrame of strings (field-count problems raise as the streamed reader's do)."""
    with open(path, encoding=encoding, newline="") as fh:
        text = fh.read().removeprefix("\ufeff")
    lone_cr = None
    if "\n" in text and "\r" in text:
        code = 0xE000
        while chr(code) in text:
            code += 1
        lone_cr = chr(code)
        text = re.sub(r"\r(?!\n)", lone_cr, text)
    old_limit = csv.field_size_limit(2**31 - 1)
    reader = csv.reader(_row_lines(text), delimiter=sep, strict=quotes,
                        quoting=csv.QUOTE_MINIMAL if quotes else csv.QUOTE_NONE)
    try:
        records = [[f.replace(lone_cr, "\r") for f in fields] if lone_cr else fields for fields in reader if fields]
    finally:
        csv.field_size_limit(old_limit)
    names = records.pop(0)
    bad = [i for i, fields in enumerate(records) if len(fields) != len(names)]
    if bad:
        raise LitNlpError(f"{path}: {len(bad)} of {len(records)} rows do not have the header's {len(names)} fields")
    return pd.DataFrame(records, columns=names, dtype=str)


# ----------------------------------------------------------------------------- dropping, on sets
def drop_rows_whole(splits: dict, key_columns: list[str], cleaner: TextCleaner,
                    required_columns: list[str] | None = None, gold_columns: dict[str, str] | None = None,
                    drop_conflicts: bool = True, eval_splits=()) -> tuple[dict, dict]:
    """lit_nlp.data.cleaning.drop_rows as it was: key texts joined per row, pandas' `duplicated`
    over whole frames, Python sets of texts for leakage."""
    dropped: dict[str, int] = {}
    whole = set() if cleaner.filter_eval_files else set(eval_splits)
    keys = {name: frame[key_columns].astype(str).agg("\x1f".join, axis=1) for name, frame in splits.items()}
    keep = {name: pd.Series(True, index=frame.index) for name, frame in splits.items()}

    def drop(name: str, reason: str, mask: pd.Series) -> None:
        dropped[f"{name}/{reason}"] = int((keep[name] & mask).sum())
        keep[name] &= ~mask

    for name, frame in splits.items():
        for column, reason in (gold_columns or {}).items():
            drop(name, reason, frame[column].str.len() == 0)
    eval_keys = set().union(*(set(keys[name][keep[name]]) for name in splits if name in whole))
    seen: set = set()
    for name, frame in splits.items():
        if name in whole:
            continue
        if cleaner.drop_empty:
            empty = pd.Series(False, index=frame.index)
            for column in required_columns or key_columns[:1]:
                empty |= frame[column].str.len() == 0
            drop(name, "empty", empty)
        if cleaner.drop_duplicates:
            drop(name, "duplicate", frame.duplicated())
            if drop_conflicts:
                kept_keys = keys[name].where(keep[name])
                drop(name, "conflicting_labels", kept_keys.notna() & kept_keys.duplicated(keep=False))
        if cleaner.drop_leakage and (seen or eval_keys):
            drop(name, "leakage", keys[name].isin(seen | eval_keys))
        seen.update(keys[name][keep[name]])
    out = {name: frame[keep[name]].reset_index(drop=True) for name, frame in splits.items()}
    return out, {k: v for k, v in dropped.items() if v}


# ----------------------------------------------------------------------------- splits, as drawn then
def _shuffled_by_class(labels, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    return {c: rng.permutation(np.flatnonzero(labels == c)) for c in sorted(set(labels.tolist()))}


def _stratified_split(labels, ratios: list[float], seed: int) -> list[np.ndarray]:
    parts: list[list[int]] = [[] for _ in ratios]
    for idx in _shuffled_by_class(labels, seed).values():
        n = len(idx)
        raw = np.asarray(ratios, dtype=float) * n
        counts = np.floor(raw).astype(int)
        for j in np.argsort(-(raw - counts))[: n - counts.sum()]:
            counts[j] += 1
        for j in range(1, len(counts)):
            if counts[j] == 0 and ratios[j] > 0 and counts[0] > 1:
                counts[j], counts[0] = 1, counts[0] - 1
        start = 0
        for j, count in enumerate(counts):
            parts[j].extend(idx[start:start + count].tolist())
            start += count
    return [np.sort(np.asarray(p, dtype=int)) for p in parts]


def _stratified_fold(labels, num_folds: int, fold: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    train, val = [], []
    for idx in _shuffled_by_class(labels, seed).values():
        in_fold = np.arange(len(idx)) % num_folds == fold
        val.extend(idx[in_fold].tolist())
        train.extend(idx[~in_fold].tolist())
    return np.sort(np.asarray(train, dtype=int)), np.sort(np.asarray(val, dtype=int))


def carve_splits_whole(frames: dict, stratify_by: str, val_ratio: float, test_ratio: float, seed: int,
                       num_folds: int | None = None, fold: int = 0) -> dict:
    """lit_nlp.data.splits.carve_splits as it was: test carved from train, then validation (a fold,
    or carved by val_ratio), on DataFrames."""
    frames = dict(frames)
    train = frames["train"]
    test_carved = "test" not in frames and test_ratio > 0
    if test_carved:
        rest, test = _stratified_split(train[stratify_by], [1 - test_ratio, test_ratio], seed)
        frames["test"], train = train.iloc[test], train.iloc[rest]
    if num_folds:
        if "validation" in frames:
            train = pd.concat([train, frames["validation"]], ignore_index=True)
        rest, val = _stratified_fold(train[stratify_by], num_folds, fold, seed)
        frames["validation"], train = train.iloc[val], train.iloc[rest]
    elif "validation" not in frames:
        share = val_ratio / (1 - test_ratio) if test_carved else val_ratio
        rest, val = _stratified_split(train[stratify_by], [1 - share, share], seed + 1)
        frames["validation"], train = train.iloc[val], train.iloc[rest]
    frames["train"] = train
    return {s: frames[s].reset_index(drop=True) for s in ("train", "validation", "test") if s in frames}


# ----------------------------------------------------------------------------- the whole build
def prepare_whole(tmp: Path, files: dict[str, str | None], tokenizer, cleaner: TextCleaner, *, text_column: str,
                  label_column: str, text_pair_column: str | None = None, label_names: list[str] | None = None,
                  fmt: str = "tsv", val_ratio: float = 0.1, test_ratio: float = 0.1, num_folds: int | None = None,
                  fold: int = 0, seed: int = 42, max_length: int = 128) -> dict:
    """ClassificationDataModule.build_cache as it was, for single-label csv/tsv files: writes
    tmp/ (tokenizer/, <split>/, <split>.jsonl, meta.json) and returns the meta. `tokenizer`: a
    built (pretrained) tokenizer; `cleaner` with `lowercase` settled."""
    import datasets

    sep, quotes = ("," if fmt == "csv" else "\t"), fmt == "csv"
    raw = {split: read_whole(path, sep, quotes=quotes) for split, path in files.items() if path}
    frames = {}
    for split, frame in raw.items():
        cols = {"text": frame[text_column], "label": frame[label_column]}
        if text_pair_column:
            cols["text_pair"] = frame[text_pair_column]
        frames[split] = pd.DataFrame({k: cols[k].fillna("").astype(str) for k in
                                      (["text", "text_pair", "label"] if text_pair_column else ["text", "label"])})
    rows_read = {split: len(frame) for split, frame in frames.items()}
    for frame in frames.values():
        for col in ("text", "text_pair"):
            if col in frame:
                frame[col] = frame[col].map(cleaner)
        frame["label"] = frame["label"].str.strip()
    eval_splits = [s for s in frames if s == "test" or (s == "validation" and not num_folds)]
    key_cols = ["text", "text_pair"] if text_pair_column else ["text"]
    frames, dropped = drop_rows_whole(frames, key_cols, cleaner, gold_columns={"label": "empty_label"},
                                      eval_splits=eval_splits)
    counts = Counter(frames["train"]["label"])
    problems, notes = check_labels(counts, len(frames["train"]), files["train"], label_column)
    if problems:
        raise LitNlpError("; ".join(problems))
    names = label_names or sorted(counts)
    index = {name: i for i, name in enumerate(names)}
    for frame in frames.values():
        labels = frame["label"]
        if not labels.isin(index).all() and label_names and labels.str.isdigit().all():
            frame["label"] = labels.astype(int)  # GLUE's 0/1 with label_names
        else:
            frame["label"] = labels.map(index)
    frames = carve_splits_whole(frames, "label", val_ratio, test_ratio, seed, num_folds, fold)
    meta = {"label_names": names, "rows_read": rows_read, "rows": {s: len(f) for s, f in frames.items()},
            "dropped": dropped, "multi_label": False,
            "label_counts": {s: [int((f["label"] == i).sum()) for i in range(len(names))] for s, f in frames.items()},
            "label_notes": notes, "cleaning": cleaner.to_config()}

    def encode(rows: dict, tokenizer) -> dict:
        encoded = tokenize(tokenizer, rows["text"], rows.get("text_pair"), max_length)
        return {**encoded, "labels": rows["label"], "length": [len(ids) for ids in encoded["input_ids"]]}

    tokenizer.save_pretrained(tmp / "tokenizer")
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        for split, frame in frames.items():
            ds = datasets.Dataset.from_pandas(frame, preserve_index=False)
            ds = ds.map(encode, batched=True, remove_columns=ds.column_names, fn_kwargs={"tokenizer": tokenizer})
            ds.save_to_disk(str(tmp / split))
            frame.to_json(tmp / f"{split}.jsonl", orient="records", lines=True, force_ascii=False)
    finally:
        if bars:
            datasets.enable_progress_bars()
    (tmp / DONE_MARKER).write_text(json.dumps(meta, indent=2))
    return meta
