"""Labels as files bring them: multi-label columns read into label sets, and the checks that
catch a label column that does not hold labels before it becomes the model's head."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import pandas as pd


# A label that reads like running text: a sentence that slipped into the label column (a row
# broken by an unquoted line break, a shifted column). Class names rarely run past 4 words
# ("Arts, Culture & Entertainment").
SENTENCE_WORDS, SENTENCE_CHARS = 5, 50
# A class with a single row among this many or more is reported: it can be neither learned
# nor evaluated, and is more often a typo than a class.
RARE_AMONG = 1000
TRUE_VALUES, FALSE_VALUES = {"1", "1.0", "true"}, {"0", "0.0", "false"}


def split_label_lists(labels: pd.Series, separator: str) -> pd.Series:
    """'sports|politics' -> ('politics', 'sports'): each part stripped, empty parts (a trailing
    separator) and repeats ignored, sorted so that equal sets compare equal. An empty cell is
    a text with no label (most comments carry no toxicity label)."""
    return labels.map(lambda cell: tuple(sorted({p.strip() for p in str(cell).split(separator)} - {""})))


def label_sets_of_columns(frame: pd.DataFrame, columns: list[str]) -> tuple[pd.Series, dict[str, Counter]]:
    """Several 0/1 columns (one per label, named by the column) -> a label set per row. 0/1,
    0.0/1.0 and true/false are read; anything else, empty cells included, is counted: (a label
    set per row, {column: Counter of its values that are not 0/1}). A file read in chunks adds
    the counters up over its chunks; `label_column_problems` makes them the error."""
    bad, flags = {}, {}
    for column in columns:
        values = frame[column].astype(str).str.strip().str.lower()
        wrong = values[~values.isin(TRUE_VALUES | FALSE_VALUES)]
        if len(wrong):
            bad[column] = Counter(wrong)
        flags[column] = values.isin(TRUE_VALUES).to_numpy()
    sets = pd.Series([tuple(c for c in columns if flags[c][i]) for i in range(len(frame))], index=frame.index,
                     dtype=object)
    return sets, bad


def label_column_problems(bad: dict[str, Counter], source: str) -> list[str]:
    """The error about 0/1 label columns holding other values (`label_sets_of_columns`' counts)."""
    problems = [f"column '{column}' has {sum(counts.values())} values that are not 0/1 ("
                + ", ".join(f"{v!r} x{n}" for v, n in counts.most_common(3)) + ")" for column, counts in bad.items()]
    if problems:
        return [f"{source}: " + "; ".join(problems) + "; data.label_columns must name 0/1 columns"]
    return []


def _rows(n: int) -> str:
    return f"{n:,} row" if n == 1 else f"{n:,} rows"


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _spelling_key(value: str):
    """'1', '1.0' and '01' are one number; 'Positive' and 'positive ' one word."""
    number = _number(value)
    return number if number is not None else " ".join(value.casefold().split())


def check_labels(counts: Counter, rows: int, source: str, column: str, multi_label: bool = False) -> tuple[list, list]:
    """(problems, notes) about a training label set: `counts` maps each label to its rows.

    Problems would make wrong classes: labels that read like sentences, one value spelled two
    ways (1 and 1.0, Positive and positive), and a column with nearly one value per row (a
    text or id column). Notes: classes with a single row among 1,000 or more."""
    problems, notes = [], []

    def listed(labels: Iterable[str], limit: int = 3) -> str:
        labels = sorted(labels, key=lambda lab: (-counts[lab], lab))
        shown = ", ".join(f"{lab[:40] + '...' if len(lab) > 40 else lab!r} ({_rows(counts[lab])})"
                          for lab in labels[:limit])
        return shown + (f" and {len(labels) - limit} more" if len(labels) > limit else "")

    sentences = [lab for lab in counts if len(lab.split()) >= SENTENCE_WORDS or len(lab) >= SENTENCE_CHARS]
    if sentences:
        problems.append(f"{len(sentences)} {'label' if len(sentences) == 1 else 'labels'} in "
                        f"{_rows(sum(counts[s] for s in sentences))} read like "
                        f"sentences ({listed(sentences)}): is '{column}' the label column, and does every "
                        "row have its fields (a line break inside an unquoted text splits a row)?")
    if not multi_label and len(counts) >= 20 and len(counts) > rows / 2:
        problems.append(f"'{column}' has {len(counts):,} distinct values in {rows:,} rows: a text or id column, "
                        "not labels? set data.label_column")
    groups: dict = {}
    for lab in counts:
        groups.setdefault(_spelling_key(lab), []).append(lab)
    for spellings in groups.values():
        if len(spellings) > 1:
            problems.append(f"labels {listed(spellings)} are one value spelled {len(spellings)} ways and would "
                            "train as separate classes: write them one way in the file")
    if rows >= RARE_AMONG:
        single = [lab for lab, n in counts.items() if n == 1]
        if single:
            notes.append(f"{len(single)} {'class has' if len(single) == 1 else 'classes have'} a single training "
                         f"row among {rows:,} ({listed(single)}): "
                         "they can be neither learned nor evaluated")
    return [f"{source}: {p}" for p in problems], [f"{source}: {n}" for n in notes]


def rarest_label(label_sets: pd.Series, counts: Counter) -> pd.Series:
    """Each row's least frequent label ('' for none): the stratum of a multi-label row, so that
    splits keep rare labels in proportion (a cheap stand-in for iterative stratification)."""
    return label_sets.map(lambda labels: min(labels, key=lambda lab: (counts[lab], lab)) if labels else "")
