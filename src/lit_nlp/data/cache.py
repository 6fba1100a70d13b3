"""The on-disk cache of prepared (cleaned, split, tokenized) data, shared by every data module:
a key from everything that changes the result, a lock so that concurrent processes build it
once, and an atomic rename so a half-written cache is never taken for a finished one."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

log = logging.getLogger(__name__)

DONE_MARKER = "meta.json"


def fingerprint(path: str | Path) -> str:
    """sha256 of a file's bytes: the key changes when the data changes, not when it is touched."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_fingerprints(files: dict) -> dict:
    """{split: (absolute path, content hash)} of the given files, for a cache key."""
    return {k: (str(Path(v).resolve()), fingerprint(v)) if v and Path(v).is_file() else v for k, v in files.items()}


def cache_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def build_once(path: Path, build: Callable[[Path], None]) -> None:
    """Run `build(tmp_dir)` unless `path` already holds a finished cache; `build` must write
    DONE_MARKER last. DDP ranks and parallel sweep jobs wait on the lock instead of racing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if (path / DONE_MARKER).is_file():
            log.info("data cache hit: %s", path)
            return
        log.info("preparing data into %s", path)
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        build(tmp)
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)


def prepare_cache(files: dict[str, str | None], path: Path, build: Callable[[Path], None]) -> None:
    """Every task's `prepare_data`: each data file given (`data.<split>_file`) must exist, all
    missing ones named in one error, before the cache is built once (`build_once`)."""
    from lit_nlp.errors import raise_if_any

    raise_if_any(f"data file not found: {file} (data.{split}_file)" for split, file in files.items()
                 if file and not Path(file).is_file())
    build_once(path, build)


def data_report(meta: dict) -> dict:
    """Row counts read and kept and rows dropped by cleaning, flat, for metrics.json."""
    out = {f"data/rows_read/{k}": v for k, v in meta["rows_read"].items()}
    out.update({f"data/rows/{k}": v for k, v in meta["rows"].items()})
    out.update({f"data/dropped/{k}": v for k, v in meta["dropped"].items()})
    return out


def tokenizer_files(folder: Path) -> dict[str, str]:
    """A saved tokenizer's files as text, for checkpoints that must predict on their own."""
    return {p.name: p.read_text() for p in Path(folder).iterdir() if p.is_file()}


def write_splits(tmp: Path, tokenizer, frames: dict, encode: Callable[..., dict], meta: dict, num_proc: int = 1) -> None:
    """The cache layout: tokenizer/, one tokenized `datasets` folder per split (rows encoded by
    `encode(rows, tokenizer=...)`, batched, in `num_proc` processes: lit_nlp.data.prepare),
    `<split>.jsonl` with the cleaned rows (to see what cleaning did), and DONE_MARKER (meta)
    written last."""
    from lit_nlp.data.prepare import write_frames

    tokenizer.save_pretrained(tmp / "tokenizer")
    write_frames(tmp, tokenizer, frames, encode, num_proc)
    finish(tmp, meta)


def write_streamed_splits(tmp: Path, tokenizer, cleaned, dest: dict, extra: Callable, columns: list[str],
                          encode: Callable[..., dict], meta: dict, num_proc: int) -> None:
    """`write_splits` for the streamed preparation (lit_nlp.data.prepare.write_prepared): the
    same layout, with the splits' rows read back from pass 1's files as `dest` assigns them."""
    from lit_nlp.data.prepare import write_prepared

    tokenizer.save_pretrained(tmp / "tokenizer")
    write_prepared(tmp, tokenizer, cleaned, dest, extra, columns, encode, num_proc)
    finish(tmp, meta)


def finish(tmp: Path, meta: dict) -> None:
    """The last step of a build: the work files of the streamed preparation removed, and
    DONE_MARKER written (a cache without it is unfinished)."""
    from lit_nlp.data.prepare import WORK_DIR

    shutil.rmtree(tmp / WORK_DIR, ignore_errors=True)
    (tmp / DONE_MARKER).write_text(json.dumps(meta, indent=2))


def load_splits(path: Path, splits: tuple[str, ...]) -> tuple[dict, object, dict]:
    """(meta, tokenizer, {split: dataset}) of a finished cache."""
    import datasets
    from transformers import AutoTokenizer

    meta = json.loads((path / DONE_MARKER).read_text())
    tokenizer = AutoTokenizer.from_pretrained(str(path / "tokenizer"))
    loaded = {s: datasets.load_from_disk(str(path / s)) for s in splits if (path / s).is_dir()}
    return meta, tokenizer, loaded
