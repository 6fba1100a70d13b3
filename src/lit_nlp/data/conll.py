"""Reading tagged sentences for token classification: CoNLL column files as distributed, and
jsonl/json/parquet files with a list of tokens and a list of tags per row.

CoNLL: one token per line, the token in the first column and its tag in `tag_column` (an int
index, default the last column); a blank or whitespace-only line (WNUT-17 ends sentences with a
lone tab) ends a sentence; a `-DOCSTART-` line is a document boundary, not a token. A file is
tab-separated when its first token line holds a tab (tokens may then hold spaces), else
columns are split on runs of spaces and tabs. Line ends may be \\n, \\r\\n or \\r alone.

Nothing is dropped silently: every problem (a line with another number of columns than the
file's first token line, an empty token, a tag that is not O or B-/I-/E-/S-<type>) is
collected and reported in one error that names the file and the first lines.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lit_nlp.data.io import read_table, require_columns
from lit_nlp.data.tag_schemes import tag_problem
from lit_nlp.errors import LitNlpError

FORMATS = ("conll", "jsonl", "json", "parquet")
DOCSTART = "-DOCSTART-"
# problems of one kind listed in an error; the count covers all of them
SHOWN = 3
_SPACES = re.compile(r"[ \t]+")
NOT_A_TAG = "not O or B-/I-/E-/S-<type>"


@dataclass(frozen=True)
class Sentence:
    """One sentence and where it came from: `line` is the line of its first token (CoNLL) or
    its 1-based row (jsonl, json, parquet)."""

    tokens: list[str]
    tags: list[str]
    file: str
    line: int


@dataclass
class TaggedSentences:
    """The sentences of one file with the counts that show nothing was lost."""

    sentences: list[Sentence] = field(default_factory=list)
    docstart_lines: int = 0
    blank_lines: int = 0

    @property
    def tokens(self) -> int:
        return sum(len(s.tokens) for s in self.sentences)

    def counts(self) -> dict[str, int]:
        """{'sentences', 'tokens', 'docstart_lines', 'blank_lines'}."""
        return {"sentences": len(self.sentences), "tokens": self.tokens,
                "docstart_lines": self.docstart_lines, "blank_lines": self.blank_lines}


def tagged_format(path: str | Path, fmt: str | None = None) -> str:
    """The explicit `fmt`, else jsonl/json/parquet by the file's suffix, else conll (CoNLL files
    come as .conll, .txt, .iob, .bio, .tsv, WNUT-17's .annotated, CoNLL-2003's .testa ...)."""
    if fmt:
        if fmt not in FORMATS:
            raise LitNlpError(f"unknown tagged-data format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(path).suffix.lower().lstrip(".")
    return suffix if suffix in FORMATS[1:] else "conll"


def read_tagged(path: str | Path, fmt: str | None = None, tag_column: int = -1, tokens_column: str = "tokens",
                tags_column: str = "tags", tag_names: Sequence[str] | None = None,
                encoding: str = "utf-8") -> TaggedSentences:
    """Sentences of a CoNLL file (`tag_column`) or of a jsonl/json/parquet file (`tokens_column`,
    `tags_column`; `tag_names` maps tags stored as ids, as Hugging Face exports them, to names)."""
    path = Path(path)
    if not path.is_file():
        raise LitNlpError(f"data file not found: {path}")
    fmt = tagged_format(path, fmt)
    if fmt == "conll":
        return read_conll(path, tag_column, encoding)
    return read_token_lists(path, fmt, tokens_column, tags_column, tag_names, encoding)


# ---------------------------------------------------------------------------- CoNLL columns
def _text(path: Path, encoding: str) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise LitNlpError(f"{path}, line {line}: not valid {encoding} (bad byte at offset {err.start}); "
                          "re-save it as UTF-8 or set the encoding (e.g. encoding=latin-1)") from None
    return text.removeprefix("\ufeff")  # a byte-order mark would glue itself to the first token


def _lines(text: str) -> list[str]:
    """Physical lines without their line ends: \\n and \\r\\n, or \\r in a file with no \\n."""
    if "\n" not in text:
        text = text.replace("\r", "\n")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the final line end closes the last line; it does not open another
    return [line.rstrip("\r") for line in lines]


def _listed(items: list[str], one: str, many: str, what: str) -> str:
    """'2 lines have <what> (first; second)', '1 line has <what> (first)'."""
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return f"{len(items)} {one if len(items) == 1 else many} {what} (" + "; ".join(items[:SHOWN]) + more + ")"


def read_conll(path: str | Path, tag_column: int = -1, encoding: str = "utf-8") -> TaggedSentences:
    """Sentences of a CoNLL column file (see the module docstring for the format)."""
    path = Path(path)
    lines = _lines(_text(path, encoding))
    if not any(line.strip() for line in lines):
        raise LitNlpError(f"data file is empty: {path}")
    out = TaggedSentences()
    tabs = width = first = None
    tokens, tags, start = [], [], 0
    wrong_width, empty_tokens, bad_tags = [], [], []

    def end_sentence():
        nonlocal tokens, tags
        if tokens:
            out.sentences.append(Sentence(tokens, tags, str(path), start))
        tokens, tags = [], []

    for number, line in enumerate(lines, start=1):
        if not line.strip():
            out.blank_lines += 1
            end_sentence()
            continue
        if line.split(maxsplit=1)[0] == DOCSTART:  # CoNLL-2003 writes "-DOCSTART- -X- -X- O"
            out.docstart_lines += 1
            end_sentence()
            continue
        if tabs is None:
            tabs = "\t" in line.rstrip(" \t")
        fields = ([f.strip() for f in line.rstrip(" \t").split("\t")] if tabs
                  else _SPACES.split(line.strip(" \t")))
        if width is None:
            width, first = len(fields), number
            if width < 2:
                raise LitNlpError(f"{path}, line {number}: 1 column; a CoNLL file needs the token first and its "
                                  "tag in another column (tag_column)")
            if not -width <= tag_column < width or tag_column % width == 0:
                raise LitNlpError(f"{path}: tag_column={tag_column} but line {number} has {width} columns and the "
                                  f"first is the token; use 1..{width - 1} or -1 (the last)")
        if len(fields) != width:
            wrong_width.append(f"line {number} has {len(fields)}")
            continue
        token, tag = fields[0], fields[tag_column]
        if not token:
            empty_tokens.append(f"line {number}")
        problem = tag_problem(tag)
        if problem:
            bad_tags.append(f"line {number}: {problem}")
        if not tokens:
            start = number
        tokens.append(token)
        tags.append(tag)
    end_sentence()

    problems = []
    if wrong_width:
        sep = "tab" if tabs else "space"
        problems.append(_listed(wrong_width, "line has", "lines have", f"another number of columns than line {first}, "
                                             f"which has {width} {sep}-separated columns"))
    if empty_tokens:
        problems.append(_listed(empty_tokens, "line has", "lines have", "an empty token"))
    if bad_tags:
        problems.append(_listed(bad_tags, "tag is", "tags are", NOT_A_TAG))
    if problems:
        raise LitNlpError(f"{path}: " + "; ".join(problems))
    if not out.sentences:
        raise LitNlpError(f"{path} holds only {DOCSTART} lines ({out.docstart_lines}), no tokens")
    return out


# ---------------------------------------------------------------------------- token lists
def _as_list(value: Any) -> list | None:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, np.ndarray) and value.ndim == 1:  # parquet list columns read back as arrays
        return value.tolist()
    return None


def _is_id(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def read_token_lists(path: str | Path, fmt: str, tokens_column: str = "tokens", tags_column: str = "tags",
                     tag_names: Sequence[str] | None = None, encoding: str = "utf-8") -> TaggedSentences:
    """Sentences of a jsonl/json/parquet file with a list of tokens and a list of tags per row;
    tags are names, or ids into `tag_names`."""
    path = Path(path)
    frame = read_table(path, fmt, encoding=encoding)
    require_columns(frame, {"tokens_column": tokens_column, "tags_column": tags_column}, str(path),
                    hint="set tokens_column / tags_column to the list columns")
    out, problems = TaggedSentences(), {"shape": [], "ids": [], "tokens": [], "tags": []}
    for row, (tokens, tags) in enumerate(zip(frame[tokens_column], frame[tags_column]), start=1):
        tokens, tags = _as_list(tokens), _as_list(tags)
        if tokens is None or tags is None:
            problems["shape"].append(f"row {row}: {tokens_column} or {tags_column} is not a list")
            continue
        if not tokens or len(tokens) != len(tags):
            problems["shape"].append(f"row {row}: {len(tokens)} tokens, {len(tags)} tags")
            continue
        if any(_is_id(tag) for tag in tags):
            if tag_names is None or not all(_is_id(t) and 0 <= t < len(tag_names) for t in tags):
                problems["ids"].append(f"row {row}: {tags[:5]}")
                continue
            tags = [tag_names[t] for t in tags]
        if not all(isinstance(t, str) and t.strip() for t in tokens):
            k = next(k for k, t in enumerate(tokens) if not (isinstance(t, str) and t.strip()))
            problems["tokens"].append(f"row {row}: token {k} is {tokens[k]!r}")
        tags = [str(t) for t in tags]
        problems["tags"].extend(f"row {row}: {tag_problem(t)}" for t in tags if tag_problem(t))
        out.sentences.append(Sentence(tokens, tags, str(path), row))
    messages = {
        "shape": ("row needs", "rows need", "a non-empty list of tokens and as many tags"),
        "ids": ("row holds", "rows hold", f"tag ids that are not indices into the {len(tag_names)} tag_names"
                if tag_names else "tag ids; name the tag of each id, in id order (data.label_names)"),
        "tokens": ("row holds", "rows hold", "empty or non-text tokens"),
        "tags": ("tag is", "tags are", NOT_A_TAG),
    }
    found = [_listed(items, *messages[kind]) for kind, items in problems.items() if items]
    if found:
        raise LitNlpError(f"{path}: " + "; ".join(found))
    return out


# ---------------------------------------------------------------------------- untagged CoNLL
@dataclass
class TokenLines:
    """One sentence of a CoNLL file to tag: its tokens, its lines as read, the lines before it
    (blank and -DOCSTART- lines) and the column separator, so the file can be written back
    with one more column."""

    tokens: list[str]
    lines: list[str]
    before: list[str]
    separator: str


def read_conll_tokens(path: str | Path, encoding: str = "utf-8") -> tuple[list[TokenLines], list[str]]:
    """The sentences of a CoNLL file with one or more columns (the token first; tags, if any,
    are left alone) and the lines after the last sentence."""
    path = Path(path)
    if not path.is_file():
        raise LitNlpError(f"input file not found: {path}")
    lines = _lines(_text(path, encoding))
    sentences, pending, current = [], [], None
    for line in lines:
        if not line.strip() or line.split(maxsplit=1)[0] == DOCSTART:
            current = None
            pending.append(line)
            continue
        tabs = "\t" in line.rstrip(" \t")
        token = line.split("\t")[0].strip() if tabs else line.split()[0]
        if current is None:
            current = TokenLines([], [], pending, "\t" if tabs else " ")
            sentences.append(current)
            pending = []
        current.tokens.append(token)
        current.lines.append(line.rstrip(" \t"))
    if not sentences:
        raise LitNlpError(f"{path} holds no tokens (a CoNLL file: one token a line, a blank line between sentences)")
    return sentences, pending
