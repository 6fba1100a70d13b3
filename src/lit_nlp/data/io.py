"""Reading local table files (csv, tsv, json, jsonl, parquet) with one-line errors."""

from __future__ import annotations

import csv
import json
import re
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


def read_table(
    path: str | Path,
    fmt: str | None = None,
    encoding: str = "utf-8",
    quoting: str = "auto",
    column_names: list[str] | None = None,
) -> pd.DataFrame:
    """Read a whole file as a DataFrame of strings (no value is parsed as NaN: a review that
    says "NA" stays "NA").

    `quoting`: `auto` (csv honours double quotes; tsv, like the GLUE files, takes them as
    plain characters), `quotes` or `none`. `column_names`: the file (csv/tsv) has no header
    row and these are its columns. Every csv/tsv row must have as many fields as the header
    (or `column_names`); the error names the lines that do not.
    """
    path = Path(path)
    if not path.is_file():
        raise LitNlpError(f"data file not found: {path}")
    if path.stat().st_size == 0:
        raise LitNlpError(f"data file is empty: {path}")
    fmt = file_format(path, fmt)
    if quoting not in ("auto", "quotes", "none"):
        raise LitNlpError(f"data.quoting must be auto, quotes or none, got {quoting!r}")
    if column_names is not None and fmt not in ("csv", "tsv"):
        raise LitNlpError(f"data.column_names is for csv/tsv files without a header row; {path} is {fmt}, "
                          "whose columns are named: remove data.column_names")
    try:
        if fmt in ("csv", "tsv"):
            quotes = quoting == "quotes" or (quoting == "auto" and fmt == "csv")
            frame = read_delimited(path, "," if fmt == "csv" else "\t", encoding, quotes, column_names)
        elif fmt == "jsonl":
            frame = pd.read_json(path, lines=True, dtype=False, encoding=encoding)
        elif fmt == "json":
            with open(path, encoding=encoding) as fh:
                records = json.load(fh)
            if isinstance(records, dict) and isinstance(records.get("data"), list):
                records = records["data"]
            if not isinstance(records, list):
                raise LitNlpError(f"{path}: expected a JSON list of records (or {{\"data\": [...]}})")
            frame = pd.DataFrame.from_records(records)
        else:
            frame = pd.read_parquet(path)
    except UnicodeDecodeError as err:
        raise LitNlpError(
            f"{path} is not valid {encoding} (bad byte at offset {err.start}); re-save it as UTF-8 "
            "or set data.encoding (e.g. data.encoding=latin-1)"
        ) from None
    except pd.errors.EmptyDataError:
        raise LitNlpError(f"data file is empty: {path}") from None
    except (pd.errors.ParserError, ValueError) as err:
        if isinstance(err, LitNlpError):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise LitNlpError(f"cannot parse {path} as {fmt}: {first}") from None
    if frame.empty:
        raise LitNlpError(f"data file has no rows: {path}")
    return frame


def _row_lines(text: str) -> list[str]:
    """The file's rows as physical lines, each with its line break, for csv.reader.

    A file whose rows end in "\\n" (or "\\r\\n") can hold a lone "\\r" inside a field: text
    pasted from a spreadsheet often does. csv.reader would end the row there (the stray "\\r"
    splits one tweet into two broken rows), so a lone "\\r" is read as text in such a file; only
    a file with no "\\n" at all ends its rows in "\\r"."""
    if "\n" not in text:
        parts = text.split("\r")
        return [p + "\r" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _placeholder(text: str) -> str:
    """A private-use character that does not occur in `text`, to carry lone "\\r"s past csv.reader."""
    code = 0xE000
    while chr(code) in text:
        code += 1
    return chr(code)


def read_delimited(path: Path, sep: str, encoding: str, quotes: bool,
                   column_names: list[str] | None = None) -> pd.DataFrame:
    """csv/tsv with Python's csv module, so that every row's field count and line are known:
    a row with more or fewer fields than the header is an error naming its line, never padded
    with empty values or shifted into an index column. Blank lines are skipped."""
    with open(path, encoding=encoding, newline="") as fh:
        text = fh.read().removeprefix("\ufeff")  # the byte-order mark spreadsheets write before the header
    lone_cr = _placeholder(text) if "\n" in text and "\r" in text else None
    if lone_cr:
        text = re.sub(r"\r(?!\n)", lone_cr, text)
    old_limit = csv.field_size_limit(2**31 - 1)  # a long article is one field; the default is 128 KiB
    reader = csv.reader(_row_lines(text), delimiter=sep, strict=quotes,
                        quoting=csv.QUOTE_MINIMAL if quotes else csv.QUOTE_NONE)
    records, starts = [], []
    end = 0  # the line the last row ended on; a row (quoted line breaks) may span several
    try:
        for fields in reader:
            if fields:
                records.append([f.replace(lone_cr, "\r") for f in fields] if lone_cr else fields)
                starts.append(end + 1)
            end = reader.line_num
    except csv.Error as err:
        raise LitNlpError(f"cannot parse {path} as {'csv' if sep == ',' else 'tsv'}: the row at line {end + 1}: "
                          f"{err}; fix the quotes there (a quote inside a quoted field is written \"\") "
                          "or set data.quoting=none") from None
    finally:
        csv.field_size_limit(old_limit)
    if not records:
        raise LitNlpError(f"data file is empty: {path}")
    if column_names is not None:
        names = [str(n) for n in column_names]
        if records[0] == names:
            raise LitNlpError(f"{path}: the first line is a header ({', '.join(names)}) but data.column_names says "
                              "the file has none; remove data.column_names")
        where = f"data.column_names' {len(names)}"
    else:
        names = [name or f"Unnamed: {i}" for i, name in enumerate(records.pop(0))]
        starts.pop(0)
        where = f"the header's {len(names)}"
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise LitNlpError(f"{path}: column name(s) {duplicated} occur more than once in the header; rename them "
                          "(or set data.column_names)")
    bad = [(line, len(fields)) for line, fields in zip(starts, records) if len(fields) != len(names)]
    if bad:
        shown = ", ".join(f"line {line} has {n}" for line, n in bad[:SHOWN])
        causes = []
        if any(n > len(names) for _, n in bad):
            causes.append(f"a field holds an unquoted {'comma' if sep == ',' else 'tab'}")
        if any(n < len(names) for _, n in bad):
            causes.append("a line break inside an unquoted field split a row")
        raise LitNlpError(f"{path}: {len(bad)} of {len(records)} rows do not have {where} fields ({shown}"
                          f"{', ...' if len(bad) > SHOWN else ''}): {' or '.join(causes)}; quote such fields "
                          "or fix those lines")
    return pd.DataFrame(records, columns=names, dtype=str)


def _looks_like_data(name: str) -> bool:
    """A header cell that reads like a value: a number, or a sentence (4+ words or 40+ characters)."""
    try:
        float(name)
        return True
    except ValueError:
        return len(name.split()) >= 4 or len(name) >= 40


def require_columns(frame: pd.DataFrame, columns: dict[str, str | None], source: str,
                    hint: str = "set data.<key>=<column>", headerless_key: str = "data.column_names") -> None:
    """`columns` maps config key -> column name; a missing one is reported with the columns
    the file does have, and, when those look like data, with the way to read a file that has
    no header row."""
    missing = [f"{key}={name}" for key, name in columns.items() if name and name not in frame.columns]
    if missing:
        names = list(map(str, frame.columns))
        datalike = [n for n in names if _looks_like_data(n)]
        if datalike:
            example = "text,label" if len(names) == 2 else ",".join(f"col{i}" for i in range(len(names)))
            hint = (f"the first line looks like data, not a header ({datalike[0][:60]!r}): if the file has no "
                    f"header row, name its {len(names)} columns with {headerless_key}=[{example}]; else {hint}")
        raise LitNlpError(
            f"{source}: column(s) not found: {', '.join(missing)}; the file has columns "
            f"{names}; {hint}"
        )


def load_hub_frames(name: str, subset: str | None, splits: dict) -> dict[str, pd.DataFrame]:
    """{our split: DataFrame} of a hub dataset (`splits` maps our split names to the hub's);
    needs hub access, so its failure says how to do without."""
    import datasets

    try:
        hub = datasets.load_dataset(name, subset)
    except Exception as err:  # network, unknown name: many exception types, one message
        raise LitNlpError(f"cannot load hub dataset {name}/{subset}: {str(err).splitlines()[0]}; "
                          "without hub access use local files (data.train_file=...)") from None
    return {split: hub[hub_split].to_pandas() for split, hub_split in splits.items() if hub_split}
