"""The LightningDataModule plumbing every task shares, and nothing else. A task's data module
writes what is its own: which settings key its cache (`cache_settings`), how raw files become
the tokenized splits (`build_cache`, called once under the cache lock), how rows become a batch
(`collate`, through its codec in lit_nlp/codecs/), what predict needs to redo the encoding
(`text_settings`) and the facts the model is built with (`model_facts`). This base holds the
loader settings, the cache path and its preparation, `setup`, the three loaders, `report` and
the checkpoint state (see lit_nlp/tasks.py for the whole contract)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from lit_nlp.data.cache import (
    DONE_MARKER,
    cache_key,
    data_report,
    file_fingerprints,
    load_splits,
    prepare_cache,
    tokenizer_files,
)
from lit_nlp.data.prepare import available_cores
from lit_nlp.data.sampler import split_loader, train_position
from lit_nlp.data.shapes import bucket_lengths
from lit_nlp.errors import LitNlpError

SPLITS = ("train", "validation", "test")


class TaskDataModule(L.LightningDataModule):
    """`task_name`: the task's name (the cache's subfolder and `text_settings()["task"]`).
    `bucket_length`: the longest input, which the static-shape buckets divide up. The loader
    and cache settings (batch_size ... num_proc) are the same keys in every data config; a
    task's data module passes them on here as `**loader` rather than listing them again."""

    task_name = ""
    main_metric = ""  # what the checkpoint monitors unless `monitor` says otherwise

    def __init__(self, *, files: dict[str, str | None], seed: int, bucket_length: int, batch_size: int = 16,
                 eval_batch_size: int | None = None, num_workers: int = 0, pin_memory: bool = False,
                 group_by_length: bool = True, pad_to_multiple_of: int | None = None, static_shapes: bool = False,
                 length_buckets: int = 8, cache_dir: str = ".cache/lit_nlp", tokenizer: Any = None,
                 num_proc: int | None = None):
        super().__init__()
        self.files = files
        self.seed = seed
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.group_by_length, self.pad_to_multiple_of = group_by_length, pad_to_multiple_of
        # static shapes (data/shapes.py): lengths padded up to a bucket, short batches filled
        self.static_shapes = bool(static_shapes)
        self.length_buckets = length_buckets
        self.buckets = bucket_lengths(bucket_length, length_buckets) if self.static_shapes else None
        self.cache_dir = Path(cache_dir)
        self.tokenizer_source = tokenizer
        # processes that clean and tokenize while the cache is built (lit_nlp.data.prepare); None:
        # every core this process may use. Not in the cache key: the result is the same for any.
        if num_proc is not None and (isinstance(num_proc, bool) or not isinstance(num_proc, int) or num_proc < 1):
            raise LitNlpError(f"data.num_proc must be a whole number >= 1 (or null: every core), got {num_proc!r}")
        self.num_proc = num_proc or available_cores()
        self.resume_position: dict | None = None  # from a checkpoint: where the training loader starts
        # filled by setup()
        self.tokenizer = None
        self.datasets: dict = {}
        self.meta: dict = {}

    # ----------------------------------------------------------------- what a task writes
    def cache_settings(self) -> dict:
        """Every setting the cached splits depend on, beyond the data files' contents and the
        tokenizer (a changed value builds a new cache)."""
        raise NotImplementedError

    def build_cache(self, tmp: Path) -> None:
        """Read, clean, split and tokenize into `tmp` (lit_nlp.data.cache.write_splits)."""
        raise NotImplementedError

    def collate(self, features: list[dict]) -> dict:
        raise NotImplementedError

    def text_settings(self) -> dict:
        """What predict needs to turn raw input into model input exactly as in training."""
        raise NotImplementedError

    def model_facts(self) -> dict:
        """Run-time facts `train()` hands to the model (vocabulary size, labels, ...)."""
        raise NotImplementedError

    def on_loaded(self) -> None:
        """After `setup` loaded the cache: derived state and the data summary in the log."""

    def report(self) -> dict:
        """Row counts read, kept and dropped, for metrics.json."""
        return data_report(self.meta)

    # ----------------------------------------------------------------- shared plumbing
    @property
    def cache_path(self) -> Path:
        if not hasattr(self, "_cache_path"):
            if self.tokenizer_source is None:
                raise LitNlpError("the data module has no tokenizer source; pass tokenizer=...")
            settings = {"files": file_fingerprints(self.files), "tokenizer": self.tokenizer_source.cache_key(),
                        **self.cache_settings()}
            self._cache_path = self.cache_dir / self.task_name / cache_key(settings)
        return self._cache_path

    def prepare_data(self) -> None:
        prepare_cache(self.files, self.cache_path, self.build_cache)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        if not (self.cache_path / DONE_MARKER).is_file():
            self.prepare_data()
        self.meta, self.tokenizer, self.datasets = load_splits(self.cache_path, SPLITS)
        self.on_loaded()

    def train_dataloader(self) -> DataLoader:
        return split_loader(self, "train", train=True)

    def val_dataloader(self) -> DataLoader:
        return split_loader(self, "validation", train=False)

    def test_dataloader(self) -> DataLoader:
        return split_loader(self, "test", train=False)

    def state_dict(self) -> dict:
        # saved in every checkpoint: text settings and tokenizer files (a lone .ckpt can predict),
        # and where training stands (a resumed run's loader starts there)
        return {"text_settings": self.text_settings(), "tokenizer_files": tokenizer_files(self.cache_path / "tokenizer"),
                "train_position": train_position(self.trainer)}

    def load_state_dict(self, state: dict) -> None:
        self.resume_position = state.get("train_position")
