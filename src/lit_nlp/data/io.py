"""Reading local table files (csv, tsv, json, jsonl, parquet) with one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd

from lit_nlp.errors import LitNlpError

FORMATS = ("csv", "tsv", "json", "jsonl", "parquet")


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
) -> pd.DataFrame:
    """Read a whole file as a DataFrame of strings (no value is parsed as NaN: a review that
    says "NA" stays "NA").

    `quoting`: `auto` (csv honours double quotes; tsv, like the GLUE files, takes them as
    plain characters), `quotes` or `none`.
    """
    path = Path(path)
    if not path.is_file():
        raise LitNlpError(f"data file not found: {path}")
    if path.stat().st_size == 0:
        raise LitNlpError(f"data file is empty: {path}")
    fmt = file_format(path, fmt)
    try:
        if fmt in ("csv", "tsv"):
            sep = "," if fmt == "csv" else "\t"
            quote_off = quoting == "none" or (quoting == "auto" and fmt == "tsv")
            frame = pd.read_csv(
                path, sep=sep, dtype=str, keep_default_na=False, encoding=encoding,
                quoting=csv.QUOTE_NONE if quote_off else csv.QUOTE_MINIMAL,
                on_bad_lines="error",
            )
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


def require_columns(frame: pd.DataFrame, columns: dict[str, str | None], source: str,
                    hint: str = "set data.<key>=<column>") -> None:
    """`columns` maps config key -> column name; a missing one is reported with the columns
    the file does have."""
    missing = [f"{key}={name}" for key, name in columns.items() if name and name not in frame.columns]
    if missing:
        raise LitNlpError(
            f"{source}: column(s) not found: {', '.join(missing)}; the file has columns "
            f"{list(map(str, frame.columns))}; {hint}"
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
