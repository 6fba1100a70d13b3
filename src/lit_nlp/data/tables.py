"""Where a flat-table task's rows come from: local files (csv, tsv, jsonl, json, parquet, read
in chunks by data/io.py) or a Hugging Face hub dataset. The classification and text-to-text data
modules read through one `TableFiles`; the checks, the cache key part and the name a split's
rows are reported under are written here once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from lit_nlp.data.io import FrameStream, TableStream, hub_streams
from lit_nlp.data.task_data import SPLITS


@dataclass
class TableFiles:
    """`files`: {split: path or None}; `hub_splits` maps our split names to the hub's."""

    files: dict[str, str | None]
    format: str | None = None
    encoding: str = "utf-8"
    quoting: str = "auto"
    column_names: list[str] | None = None
    hub_dataset: str | None = None
    hub_subset: str | None = None
    hub_splits: dict | None = field(default=None)

    def __post_init__(self):
        self.column_names = list(self.column_names) if self.column_names is not None else None
        self.hub_splits = dict(self.hub_splits or {s: s for s in SPLITS})

    @classmethod
    def take(cls, settings: dict) -> TableFiles:
        """The table source out of a data module's keyword settings (its keys removed from
        `settings`; what is left goes to TaskDataModule)."""
        files = {split: settings.pop(f"{split}_file", None) for split in SPLITS}
        keys = ("format", "encoding", "quoting", "column_names", "hub_dataset", "hub_subset", "hub_splits")
        return cls(files, **{key: settings.pop(key) for key in keys if key in settings})

    def problems(self) -> list[str]:
        """What is wrong with where the rows come from, one line each."""
        if not self.files.get("train") and not self.hub_dataset:
            return ["set data.train_file (or data.hub_dataset)"]
        if self.files.get("train") and self.hub_dataset:
            return ["set either data.train_file or data.hub_dataset, not both"]
        return []

    def cache_settings(self) -> dict:
        return {"format": self.format, "encoding": self.encoding, "quoting": self.quoting,
                "column_names": self.column_names, "hub": [self.hub_dataset, self.hub_subset, self.hub_splits]}

    def source_name(self, split: str) -> str:
        """The file a split's rows come from, or the hub dataset's split: for messages."""
        if self.hub_dataset:
            return f"hub {self.hub_dataset} split {self.hub_splits.get(split, split)}"
        return str(self.files.get(split) or f"{self.files.get('train')} ({split} split)")

    def streams(self, read_file: Callable[[str], pd.DataFrame] | None = None) -> dict[str, TableStream | FrameStream]:
        """{split: its rows, in chunks} of every split given; `read_file(path)` replaces the
        streamed table reader with one that reads a file whole (text-to-text reads the official
        SQuAD JSON with its own)."""
        if self.hub_dataset:
            return hub_streams(self.hub_dataset, self.hub_subset, self.hub_splits)
        if read_file:
            return {split: FrameStream.of(read_file(path)) for split, path in self.files.items() if path}
        return {split: TableStream(path, self.format, self.encoding, self.quoting, self.column_names)
                for split, path in self.files.items() if path}
