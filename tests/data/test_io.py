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


# ----------------------------------------------------------------- streamed: TableStream
def test_chunks_put_together_are_the_whole_file(tmp_path, monkeypatch):
    from lit_nlp.data import io

    monkeypatch.setattr(io, "CHUNK_ROWS", 7)
    rows = [{"text": f"review {i}, with \"quotes\"", "label": ["a", "b"][i % 2]} for i in range(50)]
    for name in ("d.csv", "d.tsv", "d.jsonl", "d.parquet"):
        path = tmp_path / name
        frame = pd.DataFrame(rows)
        if name.endswith("csv"):
            frame.to_csv(path, index=False)
        elif name.endswith("tsv"):
            frame.to_csv(path, sep="\t", index=False, quoting=3)
        elif name.endswith("jsonl"):
            frame.to_json(path, orient="records", lines=True)
        else:
            frame.to_parquet(path)
        stream = io.TableStream(path)
        assert stream.columns == ["text", "label"]
        chunks = list(stream.chunks())
        assert [len(c) for c in chunks] == [7] * 7 + [1], name
        assert pd.concat(chunks, ignore_index=True).to_dict("records") == rows, name


def test_numbers_read_alike_in_every_chunk(tmp_path, monkeypatch):
    # a whole-file read made a label column of 1s and a null floats ("1.0" in every row); in
    # chunks, a chunk with the null would read "1.0" and the others "1": each value reads as written
    from lit_nlp.data import io

    monkeypatch.setattr(io, "CHUNK_ROWS", 2)
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 0}\n{"text": "c", "label": null}\n'
                    '{"text": "d", "label": 1.5}\n\n{"text": "e", "stars": 5}\n')
    stream = io.TableStream(path)
    assert stream.columns == ["text", "label"] and stream.all_columns() == ["text", "label", "stars"]
    frame = pd.concat(list(stream.chunks(columns=["text", "label"])), ignore_index=True)
    assert frame["label"].fillna("").astype(str).tolist() == ["1", "0", "", "1.5", ""]
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = tmp_path / "d.parquet"
    pq.write_table(pa.table({"label": pa.array([1, None, 2, 3], pa.int64())}), parquet)
    frame = pd.concat(list(io.TableStream(parquet).chunks()), ignore_index=True)
    assert frame["label"].fillna("").astype(str).tolist() == ["1", "", "2", "3"]


def test_deep_problems_are_named_by_line_and_byte(tmp_path):
    from lit_nlp.data.io import TableStream

    lines = [f'{{"text": "row {i}", "label": "a"}}' for i in range(150_000)]
    lines[149_999] = '{"text": "row", "label": }'
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LitNlpError, match="line 150000") as err:
        list(TableStream(path).chunks())
    assert_one_line_naming(err, path)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"text,label\n" + b"fine,a\n" * 200_000 + b"caf\xe9,b\n")
    with pytest.raises(LitNlpError, match=f"offset {11 + 7 * 200_000 + 3}") as err:
        TableStream(latin)  # checked before a row is read
    assert_one_line_naming(err, latin)


def test_a_column_missing_from_the_first_rows_is_looked_for_further(tmp_path, monkeypatch):
    from lit_nlp.data import io

    monkeypatch.setattr(io, "CHUNK_ROWS", 2)
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b"}\n{"text": "c", "label": "x"}\n')
    stream = io.TableStream(path)
    require_columns(stream, {"text_column": "text", "label_column": "label"}, str(path))
    with pytest.raises(LitNlpError, match=r"label_column=stars; the file has columns \['text', 'label'\]"):
        require_columns(stream, {"label_column": "stars"}, str(path))
    frame = pd.concat(list(stream.chunks(columns=["text", "label"])), ignore_index=True)
    assert frame["label"].fillna("").tolist() == ["", "", "x"]
