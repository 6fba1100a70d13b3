"""Reading local table files (csv, tsv, json, jsonl, parquet) with one-line errors."""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Iterable, Iterator
from itertools import chain, islice
from pathlib import Path

import pandas as pd

from lit_nlp.errors import LitNlpError

FORMATS = ("csv", "tsv", "json", "jsonl", "parquet")
# how many bad lines an error names; the count covers all of them
SHOWN = 3


def file_format(path: str | Path, fmt: str | None = None) -> str:
    """The explicit `fmt`, else the one the file name ends with."""
    if fmt:
        if fmt not in FORMATS:
            raise LitNlpError(f"unknown data format '{fmt}'; use one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix == "txt":
        suffix = "tsv"
    if suffix not in FORMATS:
        raise LitNlpError(
            f"cannot tell the format of {path} from its name; name it .csv/.tsv/.json/.jsonl/.parquet "
            "or set data.format"
        )
    return suffix


# Rows per chunk of a streamed table: 20,000 SST-2 rows are about 2 MB of text, so a chunk in
# each of a few worker processes and the reader's own stay in the tens of megabytes whatever
# the file's size.
CHUNK_ROWS = 20_000
# bytes decoded at a time when a file's encoding and line ends are checked before it is read
SCAN_BYTES = 1 << 20


def read_table(
    path: str | Path,
    fmt: str | None = None,
    encoding: str = "utf-8",
    quoting: str = "auto",
    column_names: list[str] | None = None,
) -> pd.DataFrame:
    """Read a whole file as a DataFrame of strings (no value is parsed as NaN: a review that
    says "NA" stays "NA"): the chunks of `TableStream` put together, for files that fit in
    memory (predict inputs, a QA or token-list file). Settings and errors as `TableStream`."""
    stream = TableStream(path, fmt, encoding, quoting, column_names)
    return pd.concat(list(stream.chunks()), ignore_index=True)


class TableStream:
    """A table file read in chunks of rows (`chunks()`), never whole: csv/tsv through Python's
    csv module line by line, jsonl line by line, parquet in Arrow record batches; a JSON
    document (one list of records) has to be parsed whole and is then cut into chunks.

    `quoting`: `auto` (csv honours double quotes; tsv, like the GLUE files, takes them as
    plain characters), `quotes` or `none`. `column_names`: the file (csv/tsv) has no header
    row and these are its columns. Every csv/tsv row must have as many fields as the header
    (or `column_names`); the error, raised once the file is read, counts them all and names
    the first lines. The encoding is checked before any row is read (the error names the
    byte offset). `columns` is known on opening (jsonl: the keys of the first chunk's rows,
    `all_columns()` every key in the file).

    Why Python's csv module rather than pyarrow's csv reader: Arrow ends a row at any carriage
    return, takes `"abc"def` for `abcdef` where the csv module stops on it, and numbers records
    rather than lines once a quoted field spans lines; read line by line, the csv module reads
    1.2M SST-2 rows/s here, a small share of what tokenizing costs.
    """

    def __init__(self, path: str | Path, fmt: str | None = None, encoding: str = "utf-8", quoting: str = "auto",
                 column_names: list[str] | None = None):
        path = Path(path)
        if not path.is_file():
            raise LitNlpError(f"data file not found: {path}")
        if path.stat().st_size == 0:
            raise LitNlpError(f"data file is empty: {path}")
        self.path, self.fmt, self.encoding = path, file_format(path, fmt), encoding
        if quoting not in ("auto", "quotes", "none"):
            raise LitNlpError(f"data.quoting must be auto, quotes or none, got {quoting!r}")
        if column_names is not None and self.fmt not in ("csv", "tsv"):
            raise LitNlpError(f"data.column_names is for csv/tsv files without a header row; {path} is {self.fmt}, "
                              "whose columns are named: remove data.column_names")
        self.quotes = quoting == "quotes" or (quoting == "auto" and self.fmt == "csv")
        self.column_names = [str(n) for n in column_names] if column_names is not None else None
        self.rows = 0  # rows yielded so far
        self._chunk_rows = CHUNK_ROWS
        self._first: list[pd.DataFrame] = []  # chunks read ahead to learn the columns
        self._chunks = self._read()
        if self.fmt == "parquet":
            self.columns = self._parquet_columns()
        else:  # csv/tsv: the header; jsonl/json: the keys of the first chunk's rows
            self._first = [next(self._chunks, None)]
            if self._first[0] is None:
                raise LitNlpError(f"data file has no rows: {path}")
            self.columns = list(map(str, self._first[0].columns))

    def chunks(self, rows: int | None = None, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        """The rows in chunks of `rows` (default CHUNK_ROWS; the first chunk, read on opening,
        has CHUNK_ROWS); with `columns`, every chunk has those columns (a jsonl key that some
        rows lack is missing, NaN, there, as in a whole-file read)."""
        self._chunk_rows = rows or CHUNK_ROWS
        first, self._first = self._first, []
        for chunk in chain(first, self._chunks):
            chunk = _with_columns(chunk, columns)
            self.rows += len(chunk)
            yield chunk
        if self.rows == 0:
            raise LitNlpError(f"data file has no rows: {self.path}")

    def all_columns(self) -> list[str]:
        """Every column of the file (jsonl/json: every key of any row, in order of first
        appearance); reads the file again, so only for an error message."""
        if self.fmt == "jsonl":
            seen: dict[str, None] = {}
            for record in self._json_records():
                seen.update(dict.fromkeys(record))
            return list(seen)
        if self.fmt == "json":
            seen = {}
            for record in self._json_document():
                seen.update(dict.fromkeys(record))
            return list(seen)
        return self.columns

    # ------------------------------------------------------------- formats
    def _read(self) -> Iterator[pd.DataFrame]:
        try:
            if self.fmt in ("csv", "tsv"):
                yield from self._delimited()
            elif self.fmt == "jsonl":
                yield from self._record_chunks(self._json_records())
            elif self.fmt == "json":
                yield from self._record_chunks(iter(self._json_document()))
            else:
                yield from self._parquet()
        except UnicodeDecodeError as err:  # json and parquet: jsonl and csv are checked before reading
            raise LitNlpError(f"{self.path} is not valid {self.encoding} (bad byte at offset {err.start}); re-save it "
                              f"as UTF-8 or set data.encoding (e.g. data.encoding=latin-1)") from None

    def _scan(self) -> tuple[bool, str | None]:
        """Check the encoding over the whole file first (a bad byte named by its offset in the
        file, before any work is done) and learn its line ends: (has "\n", the placeholder for
        lone "\r"s or None); see `_row_lines`."""
        decoder = codecs.getincrementaldecoder(self.encoding)()
        has_lf = lone_cr = False
        offset, last = 0, ""  # bytes read before this block; the last character decoded
        with open(self.path, "rb") as fh:
            while True:
                block = fh.read(SCAN_BYTES)
                try:
                    text = decoder.decode(block, final=not block)
                except UnicodeDecodeError as err:  # err.object: the bytes held back from the last block + this one
                    at = offset - (len(err.object) - len(block)) + err.start
                    raise LitNlpError(f"{self.path} is not valid {self.encoding} (bad byte at offset {at}); re-save "
                                      "it as UTF-8 or set data.encoding (e.g. data.encoding=latin-1)") from None
                offset += len(block)
                has_lf = has_lf or "\n" in text
                if not lone_cr:
                    # a "\r" that ends this block is judged with the next block's first character
                    found = _LONE_CR.search(last + text)
                    lone_cr = found is not None and (not block or found.start() < len(last + text) - 1)
                last = text[-1:] or last
                if not block:
                    break
        if not (has_lf and lone_cr):
            return has_lf, None
        used = set()
        with open(self.path, encoding=self.encoding, newline="") as fh:
            for text in iter(lambda: fh.read(SCAN_BYTES), ""):
                used.update(_PRIVATE_USE.findall(text))
        return has_lf, _placeholder(used)

    def _lines(self, has_lf: bool, lone_cr: str | None) -> Iterator[str]:
        """The file's rows as physical lines, each with its line break, for csv.reader.

        A file whose rows end in "\n" (or "\r\n") can hold a lone "\r" inside a field: text
        pasted from a spreadsheet often does. csv.reader would end the row there (the stray "\r"
        splits one tweet into two broken rows), so a lone "\r" is carried past it as a
        private-use character that the file does not hold; only a file with no "\n" at all
        ends its rows in "\r"."""
        with open(self.path, encoding=self.encoding, newline="\n" if has_lf else "\r") as fh:
            first = True
            for line in fh:
                if first:  # the byte-order mark spreadsheets write before the header
                    line, first = line.removeprefix("\ufeff"), False
                if lone_cr and "\r" in line:
                    line = _LONE_CR.sub(lone_cr, line)
                yield line

    def _delimited(self) -> Iterator[pd.DataFrame]:
        """csv/tsv with Python's csv module, so that every row's field count and line are known:
        a row with more or fewer fields than the header is an error naming its line, never padded
        with empty values or shifted into an index column. Blank lines are skipped."""
        path, sep = self.path, "," if self.fmt == "csv" else "\t"
        has_lf, lone_cr = self._scan()
        old_limit = csv.field_size_limit(2**31 - 1)  # a long article is one field; the default is 128 KiB
        reader = csv.reader(self._lines(has_lf, lone_cr), delimiter=sep, strict=self.quotes,
                            quoting=csv.QUOTE_MINIMAL if self.quotes else csv.QUOTE_NONE)
        names: list[str] | None = None
        records: list[list[str]] = []
        bad: list[tuple[int, int]] = []  # (line, fields) of the first SHOWN rows of another width
        bad_count = wider = narrower = total = 0
        end = 0  # the line the last row ended on; a row (quoted line breaks) may span several
        try:
            for fields in reader:
                if fields:
                    if lone_cr:
                        fields = [f.replace(lone_cr, "\r") for f in fields]
                    if names is None:
                        names, where = self._header(fields)
                        width = len(names)
                        if self.column_names is None:
                            end = reader.line_num
                            continue
                    total += 1
                    if len(fields) != width:
                        bad_count += 1
                        wider += len(fields) > width
                        narrower += len(fields) < width
                        if len(bad) < SHOWN:
                            bad.append((end + 1, len(fields)))
                    elif not bad_count:  # once a row is bad, the file is an error: stop collecting
                        records.append(fields)
                        if len(records) >= self._chunk_rows:
                            yield pd.DataFrame(records, columns=names, dtype=str)
                            records = []
                end = reader.line_num
        except csv.Error as err:
            raise LitNlpError(f"cannot parse {path} as {self.fmt}: the row at line {end + 1}: "
                              f"{err}; fix the quotes there (a quote inside a quoted field is written \"\") "
                              "or set data.quoting=none") from None
        finally:
            csv.field_size_limit(old_limit)
        if names is None:
            raise LitNlpError(f"data file is empty: {path}")
        if bad_count:
            shown = ", ".join(f"line {line} has {n}" for line, n in bad)
            causes = []
            if wider:
                causes.append(f"a field holds an unquoted {'comma' if sep == ',' else 'tab'}")
            if narrower:
                causes.append("a line break inside an unquoted field split a row")
            raise LitNlpError(f"{path}: {bad_count:,} of {total:,} rows do not have {where} fields ({shown}"
                              f"{', ...' if bad_count > SHOWN else ''}): {' or '.join(causes)}; quote such fields "
                              "or fix those lines")
        if records:
            yield pd.DataFrame(records, columns=names, dtype=str)

    def _header(self, first: list[str]) -> tuple[list[str], str]:
        """The column names (the header row, or data.column_names) and how the field-count
        error names them."""
        if self.column_names is not None:
            names = self.column_names
            if first == names:
                raise LitNlpError(f"{self.path}: the first line is a header ({', '.join(names)}) but data.column_names "
                                  "says the file has none; remove data.column_names")
            where = f"data.column_names' {len(names)}"
        else:
            names = [name or f"Unnamed: {i}" for i, name in enumerate(first)]
            where = f"the header's {len(names)}"
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise LitNlpError(f"{self.path}: column name(s) {duplicated} occur more than once in the header; rename "
                              "them (or set data.column_names)")
        return names, where

    def _json_records(self) -> Iterator[dict]:
        """jsonl: one JSON object a line; blank lines are skipped; a line that is not an object
        is an error naming it."""
        self._scan()  # the encoding, before the first row
        with open(self.path, encoding=self.encoding) as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise LitNlpError(f"cannot parse {self.path} as jsonl: line {number}: {err.msg} (column "
                                      f"{err.colno}); each line must be one JSON object") from None
                if not isinstance(record, dict):
                    raise LitNlpError(f"cannot parse {self.path} as jsonl: line {number} is a "
                                      f"{type(record).__name__}, not a JSON object with the columns as keys")
                yield record

    def _json_document(self) -> list[dict]:
        """json: one list of records (or {"data": [...]}), parsed whole: a JSON document cannot be
        read in parts with the standard library; convert a large one to jsonl."""
        try:
            with open(self.path, encoding=self.encoding) as fh:
                records = json.load(fh)
        except json.JSONDecodeError as err:
            raise LitNlpError(f"cannot parse {self.path} as json: {err.msg} (line {err.lineno}, column "
                              f"{err.colno})") from None
        if isinstance(records, dict) and isinstance(records.get("data"), list):
            records = records["data"]
        if not isinstance(records, list):
            raise LitNlpError(f"{self.path}: expected a JSON list of records (or {{\"data\": [...]}})")
        if not all(isinstance(r, dict) for r in records):
            raise LitNlpError(f"{self.path}: expected a JSON list of records (objects with the columns as keys)")
        return records

    def _record_chunks(self, records: Iterator[dict]) -> Iterator[pd.DataFrame]:
        """Records in chunks; each column holds the values as parsed (object dtype), so a number
        reads the same in every chunk (1 as "1", 1.5 as "1.5") and null stays missing."""
        while True:
            batch = list(islice(records, self._chunk_rows))
            if not batch:
                return
            keys = list(dict.fromkeys(key for record in batch for key in record))
            yield pd.DataFrame({key: pd.Series([r.get(key) for r in batch], dtype=object) for key in keys})

    def _parquet_file(self):
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(self.path)
        except Exception as err:  # pyarrow raises several types for a file that is not parquet
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise LitNlpError(f"cannot parse {self.path} as parquet: {first}") from None

    def _parquet_columns(self) -> list[str]:
        return [str(name) for name in self._parquet_file().schema_arrow.names]

    def _parquet(self) -> Iterator[pd.DataFrame]:
        """Arrow record batches; integer columns with nulls become Python ints and None in every
        batch alike (pandas would turn a batch with a null into floats: 1 read as "1.0")."""
        for batch in self._parquet_file().iter_batches(batch_size=self._chunk_rows):
            yield batch.to_pandas(integer_object_nulls=True)


class FrameStream:
    """Rows that come as DataFrames already (a hub dataset's batches, a file read whole by its
    own reader) behind TableStream's `columns` and `chunks()`."""

    def __init__(self, columns: list[str], frames: Iterable[pd.DataFrame]):
        self.columns = [str(c) for c in columns]
        self._frames = frames

    @classmethod
    def of(cls, frame: pd.DataFrame) -> FrameStream:
        rows = CHUNK_ROWS
        return cls(list(frame.columns), (frame.iloc[i:i + rows] for i in range(0, len(frame), rows)))

    def all_columns(self) -> list[str]:
        return self.columns

    def chunks(self, rows: int | None = None, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        for frame in self._frames:
            yield _with_columns(frame, columns)


def _with_columns(chunk: pd.DataFrame, columns: list[str] | None) -> pd.DataFrame:
    """The chunk with every one of `columns` (those it lacks added, all missing, as in a
    whole-file read of rows where some lack a key)."""
    if columns is None or set(columns) <= set(chunk.columns):
        return chunk
    return chunk.reindex(columns=list(chunk.columns) + [c for c in columns if c not in chunk.columns])


_LONE_CR = re.compile(r"\r(?!\n)")
_PRIVATE_USE = re.compile("[\ue000-\uf8ff]")


def _placeholder(used: set[str]) -> str:
    """A private-use character that the file does not hold, to carry lone "\r"s past csv.reader."""
    for code in range(0xE000, 0xF900):
        if chr(code) not in used:
            return chr(code)
    raise LitNlpError("the file holds every private-use character (U+E000-U+F8FF) and lone carriage returns; "
                      "replace the carriage returns inside its fields")


def _looks_like_data(name: str) -> bool:
    """A header cell that reads like a value: a number, or a sentence (4+ words or 40+ characters)."""
    try:
        float(name)
        return True
    except ValueError:
        return len(name.split()) >= 4 or len(name) >= 40


def require_columns(table: pd.DataFrame | TableStream | FrameStream | list[str], columns: dict[str, str | None], source: str,
                    hint: str = "set data.<key>=<column>", headerless_key: str = "data.column_names") -> None:
    """`columns` maps config key -> column name; a missing one is reported with the columns
    the file does have, and, when those look like data, with the way to read a file that has
    no header row. `table`: a DataFrame, a TableStream (checked against its columns before
    its rows are read) or the column names."""
    names = list(table.columns) if isinstance(table, (pd.DataFrame, TableStream, FrameStream)) else list(table)
    if isinstance(table, TableStream) and any(name and name not in names for name in columns.values()):
        names = table.all_columns()  # a jsonl key that the first rows lack may come later
    missing = [f"{key}={name}" for key, name in columns.items() if name and name not in names]
    if missing:
        names = list(map(str, names))
        datalike = [n for n in names if _looks_like_data(n)]
        if datalike:
            example = "text,label" if len(names) == 2 else ",".join(f"col{i}" for i in range(len(names)))
            hint = (f"the first line looks like data, not a header ({datalike[0][:60]!r}): if the file has no "
                    f"header row, name its {len(names)} columns with {headerless_key}=[{example}]; else {hint}")
        raise LitNlpError(
            f"{source}: column(s) not found: {', '.join(missing)}; the file has columns "
            f"{names}; {hint}"
        )


def hub_streams(name: str, subset: str | None, splits: dict) -> dict[str, FrameStream]:
    """{our split: its rows in chunks} of a hub dataset (`splits` maps our split names to the
    hub's); needs hub access, so its failure says how to do without."""
    import datasets

    try:
        hub = datasets.load_dataset(name, subset)
    except Exception as err:  # network, unknown name: many exception types, one message
        raise LitNlpError(f"cannot load hub dataset {name}/{subset}: {str(err).splitlines()[0]}; "
                          "without hub access use local files (data.train_file=...)") from None
    return {split: FrameStream(hub[hub_split].column_names,
                               hub[hub_split].to_pandas(batch_size=CHUNK_ROWS, batched=True))
            for split, hub_split in splits.items() if hub_split}
