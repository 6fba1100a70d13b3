"""read_table for each format, and its one-line errors that name the file."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from lit_nlp.data.io import file_format, read_table, require_columns
from lit_nlp.errors import LitNlpError

ROWS = [{"text": "a fine film", "label": "positive"}, {"text": "NA", "label": "negative"},
        {"text": "dull, slow", "label": "negative"}]


def check(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == ["text", "label"]
    assert frame["text"].tolist() == ["a fine film", "NA", "dull, slow"]
    assert frame["label"].tolist() == ["positive", "negative", "negative"]


def test_csv(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame(ROWS).to_csv(path, index=False)
    frame = read_table(path)
    check(frame)
    # "NA" is a review, not a missing value
    assert not frame.isna().any().any()


def test_csv_honours_quotes(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text,label\n"one, two",a\n"say ""hi""",b\n')
    assert read_table(path)["text"].tolist() == ["one, two", 'say "hi"']


def test_tsv_keeps_quotes_as_text(tmp_path):
    # GLUE's SST-2 files have unbalanced quotes that are part of the sentence
    path = tmp_path / "d.tsv"
    path.write_text('sentence\tlabel\n"quoted" start\t1\nit \'s a " mess\t0\nNA\t1\n')
    frame = read_table(path)
    assert frame["sentence"].tolist() == ['"quoted" start', 'it \'s a " mess', "NA"]
    assert frame["label"].tolist() == ["1", "0", "1"]


def test_txt_reads_as_tsv(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("text\tlabel\nx\ty\n")
    assert file_format(path) == "tsv"
    assert read_table(path)["text"].tolist() == ["x"]


def test_jsonl(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    check(read_table(path))


def test_json_list_and_data_key(tmp_path):
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps(ROWS))
    check(read_table(listed))
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"version": 1, "data": ROWS}))
    check(read_table(wrapped))


def test_json_other_shape_is_an_error(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"rows": ROWS}))
    with pytest.raises(LitNlpError, match="d.json"):
        read_table(path)


def test_parquet(tmp_path):
    path = tmp_path / "d.parquet"
    pd.DataFrame(ROWS).to_parquet(path)
    check(read_table(path))


def test_explicit_format_overrides_suffix(tmp_path):
    path = tmp_path / "d.dat"
    path.write_text("text,label\nx,y\n")
    assert read_table(path, fmt="csv")["label"].tolist() == ["y"]
    with pytest.raises(LitNlpError, match="xml"):
        read_table(path, fmt="xml")


# ----------------------------------------------------------------- errors
def assert_one_line_naming(err: pytest.ExceptionInfo, path) -> None:
    msg = str(err.value)
    assert str(path) in msg
    assert "\n" not in msg


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(LitNlpError, match="not found") as err:
        read_table(path)
    assert_one_line_naming(err, path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(LitNlpError, match="empty") as err:
        read_table(path)
    assert_one_line_naming(err, path)


@pytest.mark.parametrize("name, content", [
    ("blank.csv", "\n\n"),
    ("blank.jsonl", "\n"),
])
def test_whitespace_only_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(LitNlpError) as err:
        read_table(path)
    assert_one_line_naming(err, path)


def test_header_only_csv(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("text,label\n")
    with pytest.raises(LitNlpError, match="no rows") as err:
        read_table(path)
    assert_one_line_naming(err, path)


def test_empty_json_list(tmp_path):
    path = tmp_path / "d.json"
    path.write_text("[]")
    with pytest.raises(LitNlpError, match="no rows") as err:
        read_table(path)
    assert_one_line_naming(err, path)


def test_undecodable_bytes(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"text,label\ncaf\xe9 au lait,positive\n")
    with pytest.raises(LitNlpError, match="UTF-8|utf-8") as err:
        read_table(path)
    assert_one_line_naming(err, path)
    assert "encoding" in str(err.value)
    # the suggested fix works
    assert read_table(path, encoding="latin-1")["text"].tolist() == ["caf\u00e9 au lait"]


def test_undecodable_jsonl(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"text": "caf\xe9", "label": "p"}\n')
    with pytest.raises(LitNlpError) as err:
        read_table(path)
    assert_one_line_naming(err, path)


def test_unknown_extension(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_text("text,label\nx,y\n")
    with pytest.raises(LitNlpError, match="format") as err:
        read_table(path)
    assert_one_line_naming(err, path)


def test_malformed_csv(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("text,label\na,b\nc,d,e,f\n")
    with pytest.raises(LitNlpError, match="line 3 has 4") as err:
        read_table(path)
    assert_one_line_naming(err, path)


# ----------------------------------------------------------------- files as users bring them
def test_stray_carriage_returns_inside_unquoted_fields_are_text(tmp_path):
    # tweets pasted from a spreadsheet: a lone \r inside the text, rows ending in \r\n; a csv
    # reader that ends rows at any \r splits each such tweet into two broken rows
    path = tmp_path / "tweets.csv"
    path.write_bytes(b"text,label\r\ngreat game\rsee you there,positive\r\nmeh,neutral\r\n"
                     b"awful\r\rtraffic today,negative\r\n")
    frame = read_table(path)
    assert frame["text"].tolist() == ["great game\rsee you there", "meh", "awful\r\rtraffic today"]
    assert frame["label"].tolist() == ["positive", "neutral", "negative"]
    # the same with \n line ends, and a file that ends its rows in \r alone (no \n anywhere)
    path.write_bytes(b"text,label\ngreat game\rsee you there,positive\nmeh,neutral\n")
    assert read_table(path)["text"].tolist() == ["great game\rsee you there", "meh"]
    path.write_bytes(b"text,label\rgreat game,positive\rmeh,neutral\r")
    assert read_table(path)["label"].tolist() == ["positive", "neutral"]


def test_byte_order_mark_is_not_part_of_the_first_column_name(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("text,label\na,b\n".encode("utf-8-sig"))
    assert list(read_table(path).columns) == ["text", "label"]


def test_quoted_line_breaks_stay_in_the_field(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text,label\n"first line\nsecond line",a\nplain,b\n')
    assert read_table(path)["text"].tolist() == ["first line\nsecond line", "plain"]


def test_rows_with_too_few_fields_name_file_and_lines(tmp_path):
    # a line break inside an unquoted field: the halves arrive with 1 field each
    path = tmp_path / "broken.csv"
    path.write_text("text,label\nfine,a\nthe first half\nthe second half,b\nok,a\n")
    with pytest.raises(LitNlpError) as err:
        read_table(path)
    assert_one_line_naming(err, path)
    msg = str(err.value)
    assert "1 of 4 rows" in msg and "line 3 has 1" in msg and "header's 2 fields" in msg
    assert "line break" in msg


def test_rows_with_extra_fields_name_file_lines_and_counts(tmp_path):
    # pandas would take the first column as the index here and read 2 columns without a word
    path = tmp_path / "extra.csv"
    path.write_text("text,label\n" + "".join(f"{i},text {i},a\n" for i in range(5)) + "last,b\n")
    with pytest.raises(LitNlpError) as err:
        read_table(path)
    assert_one_line_naming(err, path)
    msg = str(err.value)
    assert "5 of 6 rows" in msg and "line 2 has 3, line 3 has 3, line 4 has 3, ..." in msg
    assert "comma" in msg


def test_unclosed_quote_names_the_line_where_the_row_starts(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('text,label\nfine,a\n"never closed,b\nmore,a\n')
    with pytest.raises(LitNlpError, match="line 3") as err:
        read_table(path)
    assert_one_line_naming(err, path)
    assert "data.quoting" in str(err.value)


def test_headerless_tsv_with_column_names(tmp_path):
    path = tmp_path / "dump.tsv"
    path.write_text("a gorgeous, witty film\tpositive\nflat and long\tnegative\n")
    frame = read_table(path, column_names=["text", "label"])
    assert frame.to_dict("records") == [{"text": "a gorgeous, witty film", "label": "positive"},
                                        {"text": "flat and long", "label": "negative"}]
    # without the names, the first row became the header: the column error says so
    frame = read_table(path)
    with pytest.raises(LitNlpError) as err:
        require_columns(frame, {"text_column": "text", "label_column": "label"}, str(path))
    msg = str(err.value)
    assert "\n" not in msg and "looks like data" in msg and "data.column_names=[text,label]" in msg


def test_numeric_header_is_taken_for_data():
    frame = pd.DataFrame({"0": ["x"], "1": ["y"]})
    with pytest.raises(LitNlpError, match="looks like data"):
        require_columns(frame, {"text_column": "text"}, "f.tsv")


def test_column_names_field_count_and_header_checks(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("x\ty\tz\n")
    with pytest.raises(LitNlpError, match="data.column_names' 2 fields") as err:
        read_table(path, column_names=["text", "label"])
    assert_one_line_naming(err, path)
    path.write_text("text\tlabel\nx\ty\n")
    with pytest.raises(LitNlpError, match="remove data.column_names"):
        read_table(path, column_names=["text", "label"])
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"text": "x"}\n')
    with pytest.raises(LitNlpError, match="csv/tsv"):
        read_table(jsonl, column_names=["text"])


def test_unnamed_and_duplicate_header_cells(tmp_path):
    # DataFrame.to_csv() writes its index under an empty header cell
    path = tmp_path / "d.csv"
    path.write_text(",text,label\n0,x,a\n")
    assert list(read_table(path).columns) == ["Unnamed: 0", "text", "label"]
    path.write_text("text,text,label\nx,y,a\n")
    with pytest.raises(LitNlpError, match="more than once"):
        read_table(path)


def test_malformed_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("[{\"text\": ")
    with pytest.raises(LitNlpError) as err:
        read_table(path)
    assert_one_line_naming(err, path)


def test_require_columns_lists_the_file_columns():
    frame = pd.DataFrame({"sentence": ["x"], "label": ["y"]})
    require_columns(frame, {"text_column": "sentence", "label_column": "label", "text_pair_column": None},
                    "f.csv")
    with pytest.raises(LitNlpError) as err:
        require_columns(frame, {"text_column": "text", "label_column": "label"}, "f.csv")
    msg = str(err.value)
    assert msg.startswith("f.csv")
    assert "text_column=text" in msg and "label_column" not in msg
    assert "'sentence'" in msg and "'label'" in msg
    assert "\n" not in msg


def test_require_columns_reports_every_missing_column():
    frame = pd.DataFrame({"a": ["x"]})
    with pytest.raises(LitNlpError) as err:
        require_columns(frame, {"text_column": "text", "label_column": "label"}, "f.csv")
    assert "text_column=text" in str(err.value) and "label_column=label" in str(err.value)
