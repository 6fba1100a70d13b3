"""Reading tagged sentences: CoNLL column files as distributed (separators, line ends,
-DOCSTART-, blank lines), jsonl/json/parquet token lists, counts that account for every
line, and one-line errors that name the file and line. WNUT-17 is read when it is there."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from lit_nlp.data.conll import Sentence, read_conll, read_tagged, tagged_format
from lit_nlp.data.tag_schemes import detect_scheme, entities, entity_types
from lit_nlp.errors import LitNlpError

WNUT = Path(__file__).resolve().parents[3] / "shared" / "data" / "wnut17"


def write(tmp_path: Path, text: str, name: str = "d.conll") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def as_pairs(data) -> list[tuple[list[str], list[str], int]]:
    return [(s.tokens, s.tags, s.line) for s in data.sentences]


# ---------------------------------------------------------------- CoNLL columns


def test_tab_separated_with_lone_tab_lines(tmp_path):
    # WNUT-17's layout: token<TAB>tag, a sentence ends at an empty line or a lone tab
    path = write(tmp_path, "John\tB-person\nlives\tO\n\t\nin\tO\nNew York\tB-location\n\nok\tO\n")
    data = read_conll(path)
    assert as_pairs(data) == [(["John", "lives"], ["B-person", "O"], 1),
                              (["in", "New York"], ["O", "B-location"], 4),  # a tab file's tokens keep spaces
                              (["ok"], ["O"], 7)]
    assert data.counts() == {"sentences": 3, "tokens": 5, "docstart_lines": 0, "blank_lines": 2}
    assert data.sentences[0] == Sentence(["John", "lives"], ["B-person", "O"], str(path), 1)


CONLL2003 = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC

Peter NNP B-NP B-PER
-DOCSTART- -X- -X- O
Blackburn NNP B-NP B-PER
"""


def test_space_separated_columns_and_docstart(tmp_path):
    data = read_conll(write(tmp_path, CONLL2003))
    assert as_pairs(data) == [(["EU", "rejects", "German"], ["B-ORG", "O", "B-MISC"], 3),
                              (["Peter"], ["B-PER"], 7),  # a -DOCSTART- line ends a sentence too
                              (["Blackburn"], ["B-PER"], 9)]
    assert data.counts() == {"sentences": 3, "tokens": 5, "docstart_lines": 2, "blank_lines": 2}


def test_tag_column_picks_another_column(tmp_path):
    data = read_conll(write(tmp_path, CONLL2003), tag_column=2)
    assert data.sentences[0].tags == ["B-NP", "B-VP", "B-NP"]
    assert read_conll(write(tmp_path, CONLL2003), tag_column=-1).sentences[0].tags == ["B-ORG", "O", "B-MISC"]


@pytest.mark.parametrize("text", [
    "a\tB-X\r\nb\tI-X\r\n\r\nc\tO\r\n",  # Windows line ends
    "a\tB-X\rb\tI-X\r\rc\tO\r",  # old Mac line ends
    "\ufeffa\tB-X\nb\tI-X\r\n \t \nc\tO",  # byte-order mark, mixed ends, no final line end
    "a B-X\nb   I-X \n\n\n\nc\tO\n",  # runs of spaces, trailing space, several blank lines
])
def test_line_ends_and_spacing(tmp_path, text):
    data = read_conll(write(tmp_path, text))
    assert [(s.tokens, s.tags) for s in data.sentences] == [(["a", "b"], ["B-X", "I-X"]), (["c"], ["O"])]


def test_every_token_line_is_counted(tmp_path):
    lines = CONLL2003.splitlines()
    data = read_conll(write(tmp_path, CONLL2003))
    token_lines = [line for line in lines if line.strip() and not line.startswith("-DOCSTART-")]
    assert data.tokens == len(token_lines)
    assert data.tokens + data.docstart_lines + data.blank_lines == len(lines)


@pytest.mark.parametrize("text, message", [
    ("a\tO\nb\tO\textra\nc\tO\nd\n", (r"d\.conll: 2 lines have another number of columns than line 1, "
                                      r"which has 2 tab-separated columns \(line 2 has 3; line 4 has 1\)")),
    ("a O\nb\n", r"line 2 has 1"),
    ("a\tO\nb\tPER\n\nc\tB-X\nd\tU-X\n", (r"2 tags are not O or B-/I-/E-/S-<type> \(line 2: tag 'PER' is not O "
                                          r"or B-/I-/E-/S-<type>; line 5: tag 'U-X' is BILOU; rename U- to S-")),
    ("a\tO\n\tO\n", r"1 line has an empty token \(line 2\)"),
    ("a\nb\n", r"line 1: 1 column; a CoNLL file needs the token first and its tag"),
    ("", r"data file is empty"),
    (" \n\t\n\n", r"data file is empty"),
    ("-DOCSTART- -X- -X- O\n\n-DOCSTART- -X- -X- O\n", r"holds only -DOCSTART- lines \(2\), no tokens"),
])
def test_bad_files_are_one_line_errors(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(LitNlpError, match=message) as err:
        read_conll(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_every_problem_is_reported_at_once(tmp_path):
    text = "".join(f"w{i}\tPER\n" for i in range(5)) + "x\tO\ty\n"
    with pytest.raises(LitNlpError) as err:
        read_conll(write(tmp_path, text))
    message = str(err.value)
    assert "1 line has another number of columns" in message and "(line 6 has 3)" in message
    assert "5 tags are not O" in message and "line 3: tag 'PER'" in message and "and 2 more" in message


@pytest.mark.parametrize("tag_column", [0, 2, -3])
def test_tag_column_out_of_range(tmp_path, tag_column):
    with pytest.raises(LitNlpError, match=rf"tag_column={tag_column} but line 1 has 2 columns.*use 1..1 or -1"):
        read_conll(write(tmp_path, "a\tO\n"), tag_column=tag_column)


def test_bad_encoding_names_the_line(tmp_path):
    path = tmp_path / "d.conll"
    path.write_bytes(b"a\tO\n\nb\xff\tO\n")
    with pytest.raises(LitNlpError, match=r"d\.conll, line 3: not valid utf-8"):
        read_conll(path)
    assert read_conll(path, encoding="latin-1").sentences[1].tokens == ["b\xff"]


def test_missing_file(tmp_path):
    with pytest.raises(LitNlpError, match="data file not found"):
        read_tagged(tmp_path / "nope.conll")


# ---------------------------------------------------------------- token lists

ROWS = [{"words": ["John", "lives"], "ner": ["B-PER", "O"]}, {"words": ["in", "Paris"], "ner": ["O", "B-LOC"]}]


@pytest.mark.parametrize("suffix", ["jsonl", "json", "parquet"])
def test_token_lists(tmp_path, suffix):
    path = tmp_path / f"d.{suffix}"
    frame = pd.DataFrame(ROWS)
    if suffix == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif suffix == "json":
        path.write_text(json.dumps(ROWS))
    else:
        frame.to_parquet(path)
    data = read_tagged(path, tokens_column="words", tags_column="ner")
    assert as_pairs(data) == [(["John", "lives"], ["B-PER", "O"], 1), (["in", "Paris"], ["O", "B-LOC"], 2)]
    assert data.counts() == {"sentences": 2, "tokens": 4, "docstart_lines": 0, "blank_lines": 0}


def test_tag_ids_with_tag_names(tmp_path):
    # how Hugging Face exports a ClassLabel column
    path = tmp_path / "d.jsonl"
    pd.DataFrame([{"tokens": ["John", "lives"], "tags": [1, 0]}]).to_json(path, orient="records", lines=True)
    assert read_tagged(path, tag_names=["O", "B-PER", "I-PER"]).sentences[0].tags == ["B-PER", "O"]
    with pytest.raises(LitNlpError, match=r"1 row holds tag ids; name the tag of each id, in id order \(data.label_names\) \(row 1: \[1, 0\]\)"):
        read_tagged(path)
    with pytest.raises(LitNlpError, match=r"tag ids that are not indices into the 1 tag_names"):
        read_tagged(path, tag_names=["O"])


@pytest.mark.parametrize("rows, message", [
    ([{"tokens": ["a", "b"], "tags": ["O"]}], (r"1 row needs a non-empty list of tokens and as many tags "
                                               r"\(row 1: 2 tokens, 1 tags\)")),
    ([{"tokens": [], "tags": []}], r"row 1: 0 tokens, 0 tags"),
    ([{"tokens": "a b", "tags": ["O", "O"]}], r"row 1: tokens or tags is not a list"),
    ([{"tokens": ["a"], "tags": ["O"]}, {"tokens": ["a", " "], "tags": ["O", "O"]}],
     r"1 row holds empty or non-text tokens \(row 2: token 1 is ' '\)"),
    ([{"tokens": ["a"], "tags": ["PER"]}], r"row 1: tag 'PER' is not O"),
    ([{"words": ["a"], "tags": ["O"]}], r"column\(s\) not found: tokens_column=tokens"),
])
def test_bad_token_lists(tmp_path, rows, message):
    path = tmp_path / "d.jsonl"
    pd.DataFrame(rows).to_json(path, orient="records", lines=True)
    with pytest.raises(LitNlpError, match=message) as err:
        read_tagged(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_tagged_format():
    assert tagged_format("train.jsonl") == "jsonl" and tagged_format("x.parquet") == "parquet"
    assert tagged_format("emerging.test.annotated") == "conll" and tagged_format("eng.testa") == "conll"
    assert tagged_format("x.json", "conll") == "conll"
    with pytest.raises(LitNlpError, match="unknown tagged-data format 'csv'"):
        tagged_format("x.csv", "csv")


# ---------------------------------------------------------------- real data


@pytest.mark.skipif(not WNUT.is_dir(), reason="WNUT-17 is not on this machine")
def test_reads_wnut17():
    started = time.perf_counter()
    expected = {"wnut17train.conll": (3394, 62730, 1975), "emerging.dev.conll": (1009, 15733, 836),
                "emerging.test.annotated": (1287, 23394, 1079)}
    for name, (sentences, tokens, found) in expected.items():
        data = read_tagged(WNUT / name)
        tags = [s.tags for s in data.sentences]
        assert (len(data.sentences), data.tokens, sum(len(entities(t)) for t in tags)) == (sentences, tokens, found)
        assert detect_scheme(tags) == "BIO"
        assert entity_types(tags) == ["corporation", "creative-work", "group", "location", "person", "product"]
    assert time.perf_counter() - started < 2
