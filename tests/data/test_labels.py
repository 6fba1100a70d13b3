"""Label checks (sentences, one value spelled two ways, id-like columns, single-row classes) and
the multi-label readers (a separated list in one column, several 0/1 columns)."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from lit_nlp.data.labels import (
    check_labels,
    label_column_problems,
    label_sets_of_columns,
    rarest_label,
    split_label_lists,
)
from lit_nlp.errors import LitNlpError, raise_if_any


def check(counts: dict, rows: int | None = None, multi_label: bool = False):
    counts = Counter(counts)
    return check_labels(counts, rows or sum(counts.values()), "t.csv", "label", multi_label)


def test_clean_label_set_passes():
    assert check({"negative": 500, "neutral": 300, "positive": 700}) == ([], [])
    # multi-word class names are names, not sentences
    assert check({"Arts, Culture & Entertainment": 40, "Science and Technology": 60}) == ([], [])


def test_sentence_like_labels_are_a_problem_with_counts():
    problems, _ = check({"positive": 3000, "negative": 2000,
                         "and then the bus never came so I walked home": 2, "what a day this has been": 1})
    assert len(problems) == 1
    msg = problems[0]
    assert msg.startswith("t.csv: 2 labels in 3 rows read like sentences")
    assert "'and then the bus never came so I walked ...' (2 rows)" in msg and "label column" in msg


def test_one_value_spelled_two_ways():
    problems, _ = check({"1": 3980, "1.0": 20, "0": 4000})
    assert problems == ["t.csv: labels '1' (3,980 rows), '1.0' (20 rows) are one value spelled 2 ways and would "
                        "train as separate classes: write them one way in the file"]
    problems, _ = check({"Positive": 10, "positive": 300, "negative": 200})
    assert len(problems) == 1 and "'positive' (300 rows), 'Positive' (10 rows)" in problems[0]


def test_a_column_of_nearly_unique_values_is_not_a_label_column():
    problems, _ = check({f"id{i}": 1 for i in range(90)} | {"x": 10})
    assert any("91 distinct values in 100 rows" in p for p in problems)


def test_single_row_classes_among_thousands_are_noted_not_refused():
    problems, notes = check({"sports": 2000, "politics": 1500, "sprots": 1})
    assert problems == []
    assert notes == ["t.csv: 1 class has a single training row among 3,501 ('sprots' (1 row)): "
                     "they can be neither learned nor evaluated"]
    # among a few hundred rows a single-row class is not remarkable
    assert check({"a": 200, "b": 100, "c": 1}) == ([], [])


def test_split_label_lists():
    cells = pd.Series(["sports|politics", "politics | sports|", "", "tech|tech"])
    assert split_label_lists(cells, "|").tolist() == [("politics", "sports"), ("politics", "sports"), (), ("tech",)]


def read_label_columns(frame: pd.DataFrame, columns: list[str], source: str) -> pd.Series:
    """A whole frame's label sets, or its one error, as the data module reads them chunk by chunk."""
    sets, bad = label_sets_of_columns(frame, columns)
    raise_if_any(label_column_problems(bad, source))
    return sets


def test_read_label_columns_and_its_errors():
    frame = pd.DataFrame({"toxic": ["1", "0", "1.0"], "insult": ["0", "true", "1"]})
    assert read_label_columns(frame, ["toxic", "insult"], "f.csv").tolist() == [("toxic",), ("insult",),
                                                                                 ("toxic", "insult")]
    bad = pd.DataFrame({"toxic": ["1", "", "yes", "yes"], "insult": ["0", "0", "1", "2"]})
    with pytest.raises(LitNlpError) as err:
        read_label_columns(bad, ["toxic", "insult"], "f.csv")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("f.csv: ")
    assert "column 'toxic' has 3 values that are not 0/1 ('yes' x2, '' x1)" in msg
    assert "column 'insult' has 1 values that are not 0/1 ('2' x1)" in msg


def test_rarest_label_is_the_stratum():
    sets = pd.Series([("a", "b"), ("a",), (), ("b", "c")])
    counts = Counter({"a": 50, "b": 20, "c": 5})
    assert rarest_label(sets, counts).tolist() == ["b", "a", "", "c"]
