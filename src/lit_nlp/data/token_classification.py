"""Token classification data (named entities, part-of-speech tags, PII spans, slots): read
tagged sentences (data/conll.py), tell and check their tag scheme, fix the label list, split,
cut sentences into windows of sub-tokens with one label per word (codecs/token_classification.py),
cache, collate.

Tags: IOB1, BIO and BIOES are read (`tag_scheme=auto` tells them apart from the training tags)
and trained as BIO, entity for entity (tag_schemes.convert), so the model's labels are `O`
and B-/I- per type, which is what transformers' token-classification pipeline groups;
predictions are written back in the input's scheme. Labels come from the training split's
types, sorted; `label_names` fixes them and their order (entity types, or the BIO tags).

Nothing is dropped: every sentence read is trained on or scored. A type in an evaluation file
that training never saw stops the run, or with `unknown_tags=O` is read as O and counted.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from lit_nlp.codecs.token_classification import collate, encode
from lit_nlp.data.cache import DONE_MARKER, data_report, write_splits
from lit_nlp.data.conll import FORMATS, TaggedSentences, read_tagged, tagged_format
from lit_nlp.data.splits import carve_splits, ratio_problems
from lit_nlp.data.tag_schemes import (
    OUTSIDE,
    PREFIXES,
    SCHEMES,
    convert,
    detect_scheme,
    entity_types,
    split_tag,
    tag_problem,
)
from lit_nlp.data.task_data import SPLITS, TaskDataModule
from lit_nlp.errors import LitNlpError, raise_if_any

log = logging.getLogger(__name__)

CACHE_VERSION = 1
UNKNOWN_TAGS = ("error", "O")


def label_list(label_names: list[str] | None, train_types: list[str]) -> list[str]:
    """The model's tags: `O`, then B- and I- per type, types in `label_names`' order (types, or
    BIO tags whose types are read in order of first appearance) or sorted from training."""
    if not label_names:
        types = train_types
    elif all(tag_problem(name) is None for name in label_names) and OUTSIDE in label_names:
        if any(split_tag(name)[0] not in "OBI" for name in label_names):
            raise LitNlpError(f"data.label_names {label_names} holds E-/S- tags; the model learns BIO tags: give "
                              "the entity types, or O and B-/I- tags")
        types = list(dict.fromkeys(split_tag(name)[1] for name in label_names if name != OUTSIDE))
        expected = [OUTSIDE] + [f"{p}-{t}" for t in types for p in "BI"]
        if sorted(label_names) != sorted(expected):
            raise LitNlpError(f"data.label_names {label_names} must hold O and both B- and I- of each type, "
                              f"once: {expected}")
        return list(label_names)
    else:
        types = list(label_names)
        if len(set(types)) != len(types):
            raise LitNlpError(f"data.label_names {types} names a type twice")
    return [OUTSIDE] + [f"{p}-{t}" for t in types for p in "BI"]


class TokenClassificationDataModule(TaskDataModule):
    """Tagged sentences from CoNLL column files (`format=conll`, the default for any name that
    is not .jsonl/.json/.parquet) or from jsonl/json/parquet rows with a list of tokens and a
    list of tags.

    Splits: a missing validation or test split is carved from train by sentence (`val_ratio`,
    `test_ratio`, seeded). Windows: a sentence longer than `max_length` sub-tokens is cut into
    windows of whole words that share up to `stride` sub-tokens; each word is predicted and
    scored once. `label_all_tokens`: a word's later sub-tokens carry its tag in the loss too.
    """

    task_name = "token_classification"
    main_metric = "val/f1"

    def __init__(
        self,
        train_file: str | None = None,
        validation_file: str | None = None,
        test_file: str | None = None,
        format: str | None = None,
        encoding: str = "utf-8",
        tag_column: int = -1,
        tokens_column: str = "tokens",
        tags_column: str = "tags",
        tag_scheme: str = "auto",
        label_names: list[str] | None = None,
        unknown_tags: str = "error",
        label_all_tokens: bool = False,
        val_ratio: float = 0.1,
        test_ratio: float = 0.1,
        seed: int = 42,
        max_length: int = 128,
        stride: int = 32,
        **settings,
    ):
        super().__init__(files={"train": train_file, "validation": validation_file, "test": test_file}, seed=seed,
                         bucket_length=max_length, **settings)
        self.format, self.encoding = format, encoding
        self.tag_column, self.tokens_column, self.tags_column = tag_column, tokens_column, tags_column
        self.tag_scheme = tag_scheme
        self.label_names = list(label_names) if label_names else None
        self.unknown_tags, self.label_all_tokens = unknown_tags, label_all_tokens
        self.val_ratio, self.test_ratio = val_ratio, test_ratio
        self.max_length, self.stride = max_length, stride
        self._check_config()

    def _check_config(self) -> None:
        problems = [] if self.files["train"] else ["set data.train_file"]
        if self.format not in (None, *FORMATS):
            problems.append(f"data.format={self.format} is not one of {', '.join(FORMATS)} (or null: from the name)")
        if self.tag_scheme not in ("auto", *SCHEMES):
            problems.append(f"data.tag_scheme={self.tag_scheme} is not auto or one of {', '.join(SCHEMES)}")
        if self.unknown_tags not in UNKNOWN_TAGS:
            problems.append(f"data.unknown_tags={self.unknown_tags} must be error or O")
        if not 0 <= self.stride < self.max_length - 2:
            problems.append(f"data.stride={self.stride} must be at least 0 and below data.max_length - 2 "
                            f"({self.max_length - 2})")
        problems += ratio_problems(self.val_ratio, self.test_ratio)
        raise_if_any(problems)

    # ----------------------------------------------------------------- cache
    def cache_settings(self) -> dict:
        return {"version": CACHE_VERSION, "format": self.format, "encoding": self.encoding,
                "columns": [self.tag_column, self.tokens_column, self.tags_column], "scheme": self.tag_scheme,
                "label_names": self.label_names, "unknown_tags": self.unknown_tags,
                "label_all_tokens": self.label_all_tokens, "split": [self.val_ratio, self.test_ratio, self.seed],
                "windows": [self.max_length, self.stride]}

    # ----------------------------------------------------------------- reading and checking
    def _read(self) -> dict[str, TaggedSentences]:
        # label_names given as tags also say what tag ids (token-list files) stand for
        names = self.label_names if self.label_names and all(tag_problem(n) is None for n in self.label_names) else None
        return {split: read_tagged(path, self.format, self.tag_column, self.tokens_column, self.tags_column,
                                   tag_names=names, encoding=self.encoding)
                for split, path in self.files.items() if path}

    def _scheme(self, read: dict[str, TaggedSentences]) -> str:
        """The tag scheme (data.tag_scheme, or told from the training tags); every file's tags
        must use only its prefixes: the first one that does not is named with file and line."""
        scheme = (detect_scheme(s.tags for s in read["train"].sentences) if self.tag_scheme == "auto"
                  else self.tag_scheme)
        problems = []
        for split, data in read.items():
            for sentence in data.sentences:
                bad = next((i for i, tag in enumerate(sentence.tags) if split_tag(tag)[0] not in "O" + PREFIXES[scheme]),
                           None)
                if bad is not None:
                    how = "set" if self.tag_scheme != "auto" else "told from the training tags"
                    problems.append(f"{sentence.file}, {self._where(sentence, bad)}: tag {sentence.tags[bad]!r} is not a "
                                    f"{scheme} tag (the scheme was {how}); set data.tag_scheme to the file's scheme")
                    break
        raise_if_any(problems)
        return scheme

    def _unknown_types(self, read: dict[str, TaggedSentences], types: set[str]) -> dict[str, int]:
        """Tags of types the labels lack: an error naming file and line, or, with
        unknown_tags=O, tags read as O, counted per split."""
        counts, problems = {}, []
        for split, data in read.items():
            found = []
            for sentence in data.sentences:
                for i, tag in enumerate(sentence.tags):
                    if tag != OUTSIDE and split_tag(tag)[1] not in types:
                        found.append((sentence, i))
            if not found:
                continue
            if self.unknown_tags == OUTSIDE and split != "train":
                for sentence, i in found:
                    sentence.tags[i] = OUTSIDE
                counts[split] = len(found)
                continue
            sentence, i = found[0]
            unseen = sorted({split_tag(s.tags[k])[1] for s, k in found})
            fix = ("add them to data.label_names" if split == "train" else
                   "add them to the training data or data.label_names, or set data.unknown_tags=O to read them as O")
            problems.append(f"{sentence.file}, {self._where(sentence, i)}: {len(found)} tags of types {unseen} that the "
                            f"labels ({', '.join(sorted(types))}) lack; {fix}")
        raise_if_any(problems)
        return counts

    def _where(self, sentence, token: int) -> str:
        """Where a token is: its line in a CoNLL file (one token a line, none blank within a
        sentence), its row and position in a file of token lists."""
        if tagged_format(sentence.file, self.format) == "conll":
            return f"line {sentence.line + token}"
        return f"row {sentence.line}, token {token}"

    # ----------------------------------------------------------------- Lightning hooks
    def build_cache(self, tmp: Path) -> None:
        source = self.tokenizer_source
        tokenizer = None if source.trained_from_data else source.build()
        read = self._read()
        scheme = self._scheme(read)
        train_types = entity_types(s.tags for s in read["train"].sentences)
        if not train_types and not self.label_names:
            raise LitNlpError(f"{self.files['train']}: no entity in {len(read['train'].sentences)} sentences (every "
                              "tag is O); check data.tag_column, or name the types in data.label_names")
        labels = label_list(self.label_names, train_types)
        unknown = self._unknown_types(read, set(entity_types([labels])))
        frames = {split: pd.DataFrame({"tokens": [s.tokens for s in data.sentences],
                                       "tags": [convert(s.tags, "BIO") for s in data.sentences],
                                       "file": [s.file for s in data.sentences],
                                       "line": [s.line for s in data.sentences]})
                  for split, data in read.items()}
        # random splits by sentence: a tagged sentence has no one class to stratify by
        frames = carve_splits(frames, None, self.val_ratio, self.test_ratio, self.seed)
        frames = {split: frames[split].reset_index(drop=True) for split in SPLITS if split in frames}
        for frame in frames.values():
            frame["sentence"] = range(len(frame))
        if tokenizer is None:
            tokenizer = source.build([" ".join(tokens) for tokens in frames["train"]["tokens"]])
        if not tokenizer.is_fast:
            raise LitNlpError("token classification needs a fast tokenizer (it maps sub-tokens to words)")
        self.labels = labels  # for _encode; a loaded cache sets it from its meta (on_loaded)
        counts = {split: data.counts() for split, data in read.items()}
        meta = {"rows_read": {s: c["sentences"] for s, c in counts.items()},
                "rows": {s: len(f) for s, f in frames.items()}, "dropped": {},
                "tokens_read": {s: c["tokens"] for s, c in counts.items()},
                "tokens": {s: int(f["tokens"].map(len).sum()) for s, f in frames.items()},
                "docstart_lines": sum(c["docstart_lines"] for c in counts.values()),
                "unknown_tags": unknown, "scheme": scheme, "labels": labels, "windows": {}}
        write_splits(tmp, tokenizer, frames, self._encode, meta, self.num_proc)
        import datasets

        meta["windows"] = {s: datasets.load_from_disk(str(tmp / s)).num_rows for s in frames}
        (tmp / DONE_MARKER).write_text(json.dumps(meta, indent=2))

    def _encode(self, rows: dict, tokenizer) -> dict:
        index = {name: i for i, name in enumerate(self.labels)}
        windows = encode(tokenizer, rows["tokens"], self.max_length, self.stride,
                         labels=[[index[t] for t in tags] for tags in rows["tags"]],
                         label_all_tokens=self.label_all_tokens, tag_names=self.labels,
                         sentence_ids=rows["sentence"])
        out = {key: [w[key] for w in windows] for key in windows[0]} if windows else {}
        out["length"] = [len(w["input_ids"]) for w in windows]
        return out

    def on_loaded(self) -> None:
        self.labels = self.meta["labels"]
        # evaluation windows longest first (less padding); a sentence is scored once all its
        # windows are in, so their order does not matter
        for split in ("validation", "test"):
            if split in self.datasets:
                self.datasets[split] = self.datasets[split].sort("length", reverse=True)
        unknown = self.meta["unknown_tags"]
        log.info("data: %s sentences in %s windows (train/validation/test), %s scheme, %d labels%s",
                 "/".join(str(self.meta["rows"].get(s, 0)) for s in SPLITS),
                 "/".join(str(self.meta["windows"].get(s, 0)) for s in SPLITS), self.meta["scheme"],
                 len(self.labels), f", tags of unknown types read as O: {unknown}" if unknown else "")

    # ----------------------------------------------------------------- facts and loaders
    def model_facts(self) -> dict:
        return {"label_names": self.labels, "vocab_size": len(self.tokenizer),
                "pad_token_id": self.tokenizer.pad_token_id}

    def report(self) -> dict:
        meta = self.meta
        out = data_report(meta)
        out.update({f"data/tokens_read/{k}": v for k, v in meta["tokens_read"].items()})
        out.update({f"data/tokens/{k}": v for k, v in meta["tokens"].items()})
        out.update({f"data/windows/{k}": v for k, v in meta["windows"].items()})
        out.update({f"data/unknown_tags/{k}": v for k, v in meta["unknown_tags"].items()})
        out["data/docstart_lines"] = meta["docstart_lines"]
        return out

    def collate(self, features: list[dict]) -> dict:
        return collate(features, self.tokenizer.pad_token_id, self.pad_to_multiple_of, self.buckets)

    def text_settings(self) -> dict:
        """What predict needs to window raw words and write tags as here."""
        return {"task": "token_classification", "max_length": self.max_length, "stride": self.stride,
                "scheme": self.meta["scheme"], "tag_column": self.tag_column, "tokens_column": self.tokens_column,
                "length_buckets": self.length_buckets}
