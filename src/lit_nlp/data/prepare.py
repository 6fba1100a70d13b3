"""Preparing data in a bounded amount of memory, whatever the corpus's size.

Table tasks (classification, text-to-text) go through two passes over their rows:
1. `clean_sources`: each source file is read in chunks (lit_nlp.data.io.TableStream); worker
   processes clean each chunk (the task's function) and hash its rows (lit_nlp.data.dedup);
   the cleaned rows go to an Arrow file on disk as they come, and memory keeps per row only
   the hashes, two flags and a label code (about 40 bytes).
2. The task decides what to drop, its labels and the splits on those arrays; `write_prepared`
   then reads the kept rows back in order, the workers tokenize them (the task's `encode`), and
   the tokenized rows are written straight into the cache's `datasets` folders.
Tasks whose files are read whole by their own readers (extractive QA, token classification)
hand their frames to `write_frames`, which tokenizes the same way.

`num_proc` worker processes are forked, so they share the task's functions without pickling;
at most two chunks per worker are in flight. The first chunk of each pass runs in this process
and the workers start only when there is a second one, so small files (the tests' fixtures)
never fork. A progress bar with rows/s shows on the console once a pass lasts PROGRESS_DELAY_S.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from lit_nlp.data.dedup import RowHashes

log = logging.getLogger(__name__)

# Rows per tokenizing task: 8,000 SST-2 rows are about 0.5 MB of text in and 1.5 MB of token
# ids and jsonl out, and a fifth of a second of work on one core, so handing them to a worker
# and back costs little beside it.
TASK_ROWS = 8_000
# the rows passed to a task's encode() at a time, as datasets.map passed them
ENCODE_BATCH = 1_000
PROGRESS_DELAY_S = 3.0  # a pass shows its progress bar once it has run this long (tests: none)
# the cache's tokenized split: one Arrow file in the layout datasets.save_to_disk writes
SHARD = "data-00000-of-00001.arrow"
SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}
WORK_DIR = "work"  # cleaned rows between the passes, inside the cache's tmp folder; removed at the end


# ----------------------------------------------------------------------------- worker processes
_WORK: Callable | None = None  # what the forked workers run; set just before they are forked


def _run(item):
    return _WORK(item)


def available_cores() -> int:
    """The cores this process may run on (a SLURM job's share, not the whole node)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@contextmanager
def _no_tokenizer_threads():
    """Forked workers tokenize one batch each; tokenizers' own thread pool in each of them would
    only fight over the same cores (and a pool used before the fork could deadlock)."""
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


def parallel_map(work: Callable, items: Iterable, num_proc: int) -> Iterator:
    """work(item) for every item, results in order: in this process for the first item, and in
    `num_proc` forked processes from the second on (none when there is only one, or num_proc
    is 1, or the platform cannot fork). At most 2 x num_proc items are in flight."""
    global _WORK
    items = iter(items)
    first = next(items, None)
    if first is None:
        return
    second = next(items, None)
    if second is None or num_proc < 2 or "fork" not in multiprocessing.get_all_start_methods():
        yield work(first)
        for item in () if second is None else chain([second], items):
            yield work(item)
        return
    _WORK = work
    with _no_tokenizer_threads():
        pool = multiprocessing.get_context("fork").Pool(num_proc)
    try:
        pending = deque([pool.apply_async(_run, (second,))])
        yield work(first)  # while the workers start on the second
        for item in items:
            pending.append(pool.apply_async(_run, (item,)))
            if len(pending) >= 2 * num_proc:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
        pool.close()
        pool.join()
    finally:
        pool.terminate()
        _WORK = None


def progress(total: int | None, desc: str):
    """A console progress bar in rows and rows/s, shown only once it has run PROGRESS_DELAY_S."""
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=" rows", unit_scale=True, delay=PROGRESS_DELAY_S, mininterval=1.0,
                file=sys.stderr, dynamic_ncols=True)


# ----------------------------------------------------------------------------- pass 1: clean and hash
@dataclass
class CleanedSource:
    """One source split after pass 1: its cleaned rows on disk (`path`, Arrow IPC file of string
    columns), their hashes, and the code of each row's `count_column` value (an index into
    `Cleaned.values`), or None."""

    path: Path
    rows: int
    hashes: RowHashes
    codes: np.ndarray | None


@dataclass
class Cleaned:
    """Pass 1's result: {split: CleanedSource}, the distinct `count_column` values in order of
    first appearance, and {split: the notes of the task's cleaning function, added up}."""

    sources: dict[str, CleanedSource]
    values: list
    notes: dict[str, dict[str, Counter]]


@dataclass
class RowRecipe:
    """What pass 1 does to a chunk of raw rows: `clean(chunk) -> (cleaned frame, notes)` (the
    task's reading and cleaning; notes: {name: Counter} merged over chunks, for errors that
    count over the whole file), then the hashes: `key_columns` (leakage, conflicts),
    `required_columns` (empty), `gold_columns` {column: reason} (no gold). `count_column` is
    kept in memory as codes instead of on disk (class labels: counted, stratified on, mapped
    to ids)."""

    clean: Callable[[pd.DataFrame], tuple[pd.DataFrame, dict]]
    key_columns: list[str]
    required_columns: list[str]
    gold_columns: dict[str, str]
    count_column: str | None = None


def _clean_chunk(recipe: RowRecipe, chunk: pd.DataFrame):
    frame, notes = recipe.clean(chunk)
    hashes = RowHashes.of(frame, recipe.key_columns, recipe.required_columns, recipe.gold_columns)
    values, codes = None, None
    if recipe.count_column:
        index: dict = {}
        codes = np.fromiter((index.setdefault(v, len(index)) for v in frame[recipe.count_column].tolist()),
                            dtype=np.int64, count=len(frame))
        values = list(index)
    stored = [c for c in frame.columns if c != recipe.count_column]
    table = pa.table({c: pa.array(frame[c].tolist(), type=pa.string()) for c in stored})
    return table, hashes, values, codes, notes


def clean_sources(streams: dict[str, Iterable[pd.DataFrame]], recipe: RowRecipe, work_dir: Path,
                  num_proc: int) -> Cleaned:
    """Pass 1 over every source split (train first), see the module docstring; one set of
    workers for all of them. `Cleaned.notes`: {split: the notes of its chunks, added up}."""
    work_dir.mkdir(parents=True, exist_ok=True)
    release_memory()
    index: dict = {}  # count_column value -> code, over all splits
    sources: dict[str, CleanedSource] = {}
    notes: dict[str, dict[str, Counter]] = {}
    start, total = time.perf_counter(), 0
    current = None  # (split, sink, writer, hashes, codes, rows) of the split being written

    def close(current) -> None:
        split, sink, writer, parts, codes, rows = current
        writer.close()
        sink.close()
        sources[split] = CleanedSource(work_dir / f"{split}.arrow", rows, RowHashes.concat(parts),
                                       np.concatenate(codes) if recipe.count_column else None)

    items = ((split, chunk) for split, chunks in streams.items() for chunk in chunks)
    with progress(None, "reading and cleaning") as bar:
        try:
            for split, (table, hashes, values, local, chunk_notes) in parallel_map(
                    lambda item: (item[0], _clean_chunk(recipe, item[1])), items, num_proc):
                if current is None or current[0] != split:
                    if current is not None:
                        close(current)
                    sink = pa.OSFile(str(work_dir / f"{split}.arrow"), "wb")
                    current = (split, sink, pa.ipc.new_file(sink, table.schema), [], [], 0)
                current[2].write_table(table)
                current[3].append(hashes)
                if local is not None:
                    current[4].append(np.array([index.setdefault(v, len(index)) for v in values],
                                               dtype=np.int32)[local])
                for name, counter in chunk_notes.items():
                    notes.setdefault(split, {}).setdefault(name, Counter()).update(counter)
                current = (*current[:5], current[5] + len(table))
                total += len(table)
                bar.update(len(table))
        except BaseException:
            if current is not None:
                current[2].close()
                current[1].close()
            raise
        if current is not None:
            close(current)
    seconds = time.perf_counter() - start
    log.info("read and cleaned %d rows in %.1f s (%.0f rows/s, %d processes)", total, seconds,
             total / max(seconds, 1e-9), num_proc)
    return Cleaned(sources, list(index), notes)


def release_memory() -> None:
    """Hand freed memory back to the system before workers are forked: a forked worker's
    resident set starts as its parent's, so every page the parent keeps counts again in each
    worker (the per-row arrays of 10M rows are about 400 MB). glibc keeps freed small blocks
    for reuse, Arrow its buffers; both are asked to let go."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    pa.default_memory_pool().release_unused()
    libc = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(libc).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, musl): nothing to trim
        pass


def destinations(sources: dict[str, CleanedSource], keep: dict[str, np.ndarray],
                 parts: dict[str, list[tuple[str, np.ndarray]]]) -> dict[str, np.ndarray]:
    """{source split: the output split of each of its rows (SPLIT_IDS; -1: dropped)}, from the
    rows kept and the splits' parts (lit_nlp.data.splits.carve_indices: positions among the
    kept rows of each source)."""
    dest = {split: np.full(source.rows, -1, dtype=np.int8) for split, source in sources.items()}
    kept = {split: np.flatnonzero(keep[split]) for split in sources}
    for split, split_parts in parts.items():
        for source, rows in split_parts:
            dest[source][kept[source][rows]] = SPLIT_IDS[split]
    return dest


def split_rows(dest: dict[str, np.ndarray]) -> dict[str, int]:
    """{output split: its rows} of the splits that have rows, in SPLIT_IDS order."""
    rows = {split: int(sum(np.count_nonzero(d == code) for d in dest.values())) for split, code in SPLIT_IDS.items()}
    return {split: n for split, n in rows.items() if n}


def _batches(source: CleanedSource) -> Iterator[pa.RecordBatch]:
    """The cleaned rows of a source back from disk, batch by batch (read, not memory-mapped: a
    mapped file's pages would count in the process's resident memory as it is read through)."""
    with pa.OSFile(str(source.path), "rb") as fh:
        reader = pa.ipc.open_file(fh)
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)


def column_values(cleaned: Cleaned, dest: dict[str, np.ndarray], split: str, column: str) -> Iterator[str]:
    """The `column` values of an output split's rows in order (a trained tokenizer learns from
    the training rows' texts without holding them all)."""
    for source_split, source in cleaned.sources.items():
        offset = 0
        for batch in _batches(source):
            mine = dest[source_split][offset:offset + len(batch)] == SPLIT_IDS[split]
            offset += len(batch)
            if mine.any():
                yield from batch.column(column).filter(pa.array(mine)).to_pylist()


# ----------------------------------------------------------------------------- pass 2: tokenize and write
def _encode_task(encode: Callable, tokenizer, item):
    """Tokenize one task's rows (a pa.Table, or a DataFrame from write_frames) in ENCODE_BATCH
    slices; returns (split, tokenized rows as an Arrow table, the rows as jsonl text, rows).
    The table is typed and ordered as datasets.map wrote it from the rows as a DataFrame: a
    column that `encode` returns under an input column's name keeps that column's place and,
    where its values allow, its type."""
    from datasets import Features
    from datasets.arrow_writer import OptimizedTypedSequence

    split, rows = item
    if isinstance(rows, pd.DataFrame):
        frame, rows = rows, pa.Table.from_pandas(rows, preserve_index=False)
        columns, schema = rows.to_pydict(), rows.schema
    else:
        columns = rows.to_pydict()
        frame = pd.DataFrame(columns)
        schema = pa.Schema.from_pandas(frame, preserve_index=False)
    out: dict[str, list] = {}
    for start in range(0, len(frame), ENCODE_BATCH):
        encoded = encode({k: v[start:start + ENCODE_BATCH] for k, v in columns.items()}, tokenizer=tokenizer)
        for key, values in encoded.items():
            if isinstance(values, pa.Array):  # typed already (classification's tokenize_to_arrow)
                out.setdefault(key, []).append(values)
            else:
                out.setdefault(key, []).extend(values)
    inputs = Features.from_arrow_schema(schema)
    order = [c for c in schema.names if c in out] + [c for c in out if c not in inputs]
    # datasets' own typing of map() results: input_ids int32, masks int8, other ints int64
    table = pa.table({key: pa.concat_arrays(out[key]) if out[key] and isinstance(out[key][0], pa.Array) else
                      pa.array(OptimizedTypedSequence(out[key], col=key, try_type=inputs.get(key))) for key in order})
    text = frame.to_json(orient="records", lines=True, force_ascii=False)
    return split, table, text if text.endswith("\n") or not text else text + "\n", len(frame)


class SplitWriters:
    """The tokenized splits and their cleaned rows (<split>.jsonl) written as tasks finish."""

    def __init__(self, tmp: Path, splits: Iterable[str]):
        from datasets.arrow_writer import ArrowWriter

        self.tmp = tmp
        self.writers, self.texts, self.rows = {}, {}, {}
        for split in splits:
            (tmp / split).mkdir(parents=True, exist_ok=True)
            self.writers[split] = ArrowWriter(path=str(tmp / split / SHARD))
            self.texts[split] = open(tmp / f"{split}.jsonl", "w", encoding="utf-8")
            self.rows[split] = 0

    def write(self, split: str, table: pa.Table, text: str) -> None:
        if table.num_rows:
            self.writers[split].write_table(table)
        self.texts[split].write(text)
        self.rows[split] += table.num_rows

    def close(self) -> dict[str, int]:
        """Finish every split's folder (the files datasets.load_from_disk reads); {split: rows}."""
        for split, writer in self.writers.items():
            writer.finalize()
            writer.close()
            self.texts[split].close()
            _describe_dataset(self.tmp / split)
        return self.rows


def _describe_dataset(folder: Path) -> None:
    """state.json and dataset_info.json beside the shard, as Dataset.save_to_disk writes them
    (the shard is written in place rather than copied there by save_to_disk)."""
    from dataclasses import asdict

    import datasets

    dataset = datasets.Dataset.from_file(str(folder / SHARD), in_memory=False)
    state = {"_data_files": [{"filename": SHARD}], "_fingerprint": dataset._fingerprint, "_format_columns": None,
             "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False, "_split": None}
    info = asdict(dataset.info)
    (folder / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
    (folder / "dataset_info.json").write_text(json.dumps({key: info[key] for key in sorted(info)}, indent=2))


def _write(tmp: Path, tokenizer, tasks: Iterable, splits: list[str], total: int, encode: Callable,
           num_proc: int) -> dict[str, int]:
    start = time.perf_counter()
    release_memory()  # the callers have let go of what the workers do not need
    writers = SplitWriters(tmp, splits)
    try:
        with progress(total, "tokenizing") as bar:
            for split, table, text, rows in parallel_map(lambda item: _encode_task(encode, tokenizer, item),
                                                         tasks, num_proc):
                writers.write(split, table, text)
                bar.update(rows)
    finally:
        written = writers.close()
    seconds = time.perf_counter() - start
    log.info("tokenized %d rows in %.1f s (%.0f rows/s, %d processes)", total, seconds, total / max(seconds, 1e-9),
             num_proc)
    return written


def write_prepared(tmp: Path, tokenizer, cleaned: Cleaned, dest: dict[str, np.ndarray],
                   extra: Callable[[str, np.ndarray], dict[str, pa.Array]], columns: list[str], encode: Callable,
                   num_proc: int) -> dict[str, int]:
    """Pass 2 of the table tasks: every output split's rows, in order, with `columns` (cleaned
    columns from disk, plus `extra(source split, row positions)` such as label ids), tokenized by
    `encode(rows, tokenizer=...)` into tmp/<split>/ and written as tmp/<split>.jsonl. Returns
    {split: rows written}."""
    rows = split_rows(dest)
    splits, total = list(rows), sum(rows.values())

    def tasks():
        pending: dict[str, list[pa.Table]] = {s: [] for s in splits}
        sizes = dict.fromkeys(splits, 0)
        for source_split, source in cleaned.sources.items():
            offset = 0
            for batch in _batches(source):
                here = dest[source_split][offset:offset + len(batch)]
                for split in splits:
                    rows = np.flatnonzero(here == SPLIT_IDS[split])
                    if not len(rows):
                        continue
                    table = pa.Table.from_batches([batch.take(pa.array(rows))])
                    for name, values in extra(source_split, offset + rows).items():
                        table = table.append_column(name, values)
                    pending[split].append(table.select(columns))
                    sizes[split] += len(rows)
                    if sizes[split] >= TASK_ROWS:
                        yield split, pa.concat_tables(pending[split])
                        pending[split], sizes[split] = [], 0
                offset += len(batch)
        for split in splits:
            if pending[split]:
                yield split, pa.concat_tables(pending[split])

    return _write(tmp, tokenizer, tasks(), splits, total, encode, num_proc)


def write_frames(tmp: Path, tokenizer, frames: dict[str, pd.DataFrame], encode: Callable,
                 num_proc: int) -> dict[str, int]:
    """Tokenize whole frames (tasks with their own readers) as write_prepared does."""
    total = sum(len(frame) for frame in frames.values())

    def tasks():
        for split, frame in frames.items():
            for start in range(0, len(frame), TASK_ROWS):
                yield split, frame.iloc[start:start + TASK_ROWS]

    return _write(tmp, tokenizer, tasks(), list(frames), total, encode, num_proc)
