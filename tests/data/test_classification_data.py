"""ClassificationDataModule end to end on tiny local files, with a WordPiece tokenizer trained
from the data (no hub), and its one-line errors; plus the CLI's exit on a missing file."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from conftest import ROOT, multilabel_rows, one_line, synthetic_rows, write_table
from lit_nlp.data.classification import ClassificationDataModule
from lit_nlp.data.tokenizers import WordPieceTokenizer
from lit_nlp.errors import LitNlpError

STEPS = ["unicode", "html", "urls", "emails", "mentions", "contractions", "whitespace"]


@pytest.fixture
def make_dm(tmp_path):
    """A data module with tiny settings; `prepare=True` also runs prepare_data and setup."""

    def make(prepare: bool = True, **kwargs) -> ClassificationDataModule:
        settings = dict(cleaning={"steps": STEPS}, cache_dir=str(tmp_path / "cache"), max_length=32,
                        batch_size=8, eval_batch_size=8, seed=0, tokenizer=WordPieceTokenizer(vocab_size=300))
        settings.update(kwargs)
        for key in ("train_file", "validation_file", "test_file"):
            if settings.get(key) is not None:
                settings[key] = str(settings[key])
        dm = ClassificationDataModule(**settings)
        if prepare:
            dm.prepare_data()
            dm.setup("fit")
        return dm

    return make


def split_frame(dm, split: str) -> pd.DataFrame:
    """The cleaned rows of a split as cached (text, label id)."""
    return pd.read_json(dm.cache_path / f"{split}.jsonl", lines=True, dtype=False)


def split_texts(dm, split: str) -> set:
    frame = split_frame(dm, split)
    cols = ["text", "text_pair"] if "text_pair" in frame else ["text"]
    return set(frame[cols].astype(str).agg("\x1f".join, axis=1))


def assert_counts_add_up(report: dict) -> None:
    """Every row read is kept in a split or dropped for a counted reason."""
    read = sum(v for k, v in report.items() if k.startswith("data/rows_read/"))
    kept = sum(v for k, v in report.items() if k.startswith("data/rows/"))
    dropped = sum(v for k, v in report.items() if k.startswith("data/dropped/"))
    assert read == kept + dropped, report


def assert_no_shared_text(dm):
    train, val, test = (split_texts(dm, s) for s in ("train", "validation", "test"))
    assert not train & val and not train & test and not val & test


# ----------------------------------------------------------------- splits
def test_single_file_stratified_splits(make_dm, tmp_path):
    rows = synthetic_rows(200)
    path = write_table(rows, tmp_path / "all.csv")
    dm = make_dm(train_file=path, val_ratio=0.1, test_ratio=0.1)
    report = dm.report()
    assert report["data/rows_read/train"] == 200
    assert (report["data/rows/train"], report["data/rows/validation"], report["data/rows/test"]) == (160, 20, 20)
    assert {len(dm.datasets[s]) for s in ("validation", "test")} == {20}
    assert_no_shared_text(dm)
    # stratified: each split holds the classes in the file's proportion (+-1 row from rounding)
    n_pos = sum(r["label"] == "positive" for r in rows)
    for split, size in (("train", 160), ("validation", 20), ("test", 20)):
        labels = split_frame(dm, split)["label"].tolist()
        pos_id = dm.label_names_resolved.index("positive")
        assert abs(labels.count(pos_id) - size * n_pos / 200) <= 1
    # every row of the file lands in exactly one split
    all_texts = {r["text"] for r in rows}
    assert set().union(*(split_texts(dm, s) for s in ("train", "validation", "test"))) == all_texts


def test_single_file_same_text_with_conflicting_labels_is_not_shared_between_splits(make_dm, tmp_path):
    # the same sentence labelled both ways (annotator disagreement) must still stay in one split:
    # otherwise validation/test score text that training has seen
    rows = synthetic_rows(120, seed=4)
    clash = [{"text": f"{r['text']} clash", "label": lab} for r in rows[:40] for lab in ("positive", "negative")]
    path = write_table(rows + clash, tmp_path / "all.csv")
    dm = make_dm(train_file=path, val_ratio=0.2, test_ratio=0.2)
    assert_no_shared_text(dm)


def test_separate_files_used_as_given(make_dm, tmp_path):
    rows = synthetic_rows(240, seed=1)
    train = write_table(rows[:160], tmp_path / "train.csv")
    val = write_table(rows[160:200], tmp_path / "val.csv")
    test = write_table(rows[200:], tmp_path / "test.csv")
    dm = make_dm(train_file=train, validation_file=val, test_file=test)
    assert dm.meta["rows"] == {"train": 160, "validation": 40, "test": 40}
    assert dm.meta["rows_read"] == {"train": 160, "validation": 40, "test": 40}
    assert split_texts(dm, "validation") == {r["text"] for r in rows[160:200]}
    assert split_texts(dm, "test") == {r["text"] for r in rows[200:]}
    assert_no_shared_text(dm)


def test_missing_test_split_is_carved_from_train(make_dm, tmp_path):
    rows = synthetic_rows(200, seed=2)
    train = write_table(rows[:160], tmp_path / "train.csv")
    val = write_table(rows[160:], tmp_path / "val.csv")
    dm = make_dm(train_file=train, validation_file=val, test_ratio=0.25)
    assert dm.meta["rows"] == {"train": 120, "validation": 40, "test": 40}
    assert split_texts(dm, "validation") == {r["text"] for r in rows[160:]}
    assert_no_shared_text(dm)


def test_folds_replace_validation(make_dm, tmp_path):
    path = write_table(synthetic_rows(200, seed=3), tmp_path / "all.csv")
    vals = []
    for fold in range(3):
        dm = make_dm(train_file=path, test_ratio=0.1, num_folds=3, fold=fold)
        assert dm.meta["rows"]["test"] == 20
        assert dm.meta["rows"]["train"] + dm.meta["rows"]["validation"] == 180
        vals.append(split_texts(dm, "validation"))
        assert_no_shared_text(dm)
    assert not vals[0] & vals[1] and not vals[1] & vals[2] and not vals[0] & vals[2]
    assert sum(map(len, vals)) == 180


# ----------------------------------------------------------------- labels
def test_string_labels_sorted_into_ids(make_dm, tmp_path):
    rows = synthetic_rows(100)
    dm = make_dm(train_file=write_table(rows, tmp_path / "d.csv"))
    assert dm.id2label == {0: "negative", 1: "positive"}
    by_text = {r["text"]: r["label"] for r in rows}
    frame = split_frame(dm, "train")
    assert all(dm.id2label[lab] == by_text[text] for text, lab in zip(frame["text"], frame["label"]))
    assert dm.datasets["train"]["labels"] == frame["label"].tolist()


def test_label_names_set_the_order(make_dm, tmp_path):
    rows = synthetic_rows(100)
    dm = make_dm(train_file=write_table(rows, tmp_path / "d.csv"), label_names=["positive", "negative"])
    assert dm.id2label == {0: "positive", 1: "negative"}
    by_text = {r["text"]: r["label"] for r in rows}
    frame = split_frame(dm, "train")
    assert all(dm.id2label[lab] == by_text[text] for text, lab in zip(frame["text"], frame["label"]))


def test_integer_labels_with_label_names(make_dm, tmp_path):
    # GLUE style: the file holds 0/1, the config names them
    rows = [{"text": r["text"], "label": int(r["label"] == "positive")} for r in synthetic_rows(100)]
    path = write_table(rows, tmp_path / "d.tsv")
    dm = make_dm(train_file=path, label_names=["negative", "positive"])
    assert dm.id2label == {0: "negative", 1: "positive"}
    by_text = {r["text"]: r["label"] for r in rows}
    frame = split_frame(dm, "train")
    assert frame["label"].tolist() == [by_text[t] for t in frame["text"]]


def test_integer_labels_without_names_keep_numeric_order(make_dm, tmp_path):
    rows = [{"text": r["text"], "label": 10 if r["label"] == "positive" else 2} for r in synthetic_rows(100)]
    dm = make_dm(train_file=write_table(rows, tmp_path / "d.jsonl"))
    assert dm.id2label == {0: "2", 1: "10"}


def test_text_pair_dataset(make_dm, tmp_path):
    rows = synthetic_rows(160, seed=5)
    pairs = [{"premise": r["text"], "hypothesis": f"answer {i % 7}", "label": r["label"]}
             for i, r in enumerate(rows)]
    path = write_table(pairs, tmp_path / "pairs.jsonl")
    dm = make_dm(train_file=path, text_column="premise", text_pair_column="hypothesis")
    frame = split_frame(dm, "train")
    assert set(frame.columns) >= {"text", "text_pair", "label"}
    assert_no_shared_text(dm)
    batch = next(iter(dm.val_dataloader()))
    # [CLS] a [SEP] b [SEP]: segment ids mark the second text
    assert (batch["token_type_ids"] == 1).any()
    assert batch["input_ids"].shape == batch["token_type_ids"].shape
    sep = dm.tokenizer.sep_token_id
    assert ((batch["input_ids"] == sep).sum(dim=1) == 2).all()


# ----------------------------------------------------------------- cleaning counts
@pytest.mark.parametrize("filter_eval_files", [False, True])
def test_report_counts_dropped_rows(make_dm, tmp_path, filter_eval_files):
    rows = synthetic_rows(120, seed=6)
    train_rows = rows[:100] + [dict(rows[0]), dict(rows[1]), dict(rows[1])]  # 3 duplicates
    train_rows += [{"text": "", "label": "positive"}, {"text": "  <br/> ", "label": "negative"}]  # 2 empty
    val_rows = rows[100:] + [dict(rows[2]), dict(rows[3])]  # 2 already in train
    train = write_table(train_rows, tmp_path / "train.csv")
    val = write_table(val_rows, tmp_path / "val.csv")
    dm = make_dm(train_file=train, validation_file=val, test_ratio=0.1,
                 cleaning={"steps": STEPS, "filter_eval_files": filter_eval_files})
    report = dm.report()
    assert report["data/rows_read/train"] == 105
    assert report["data/rows_read/validation"] == 22
    assert report["data/dropped/train/duplicate"] == 3
    assert report["data/dropped/train/empty"] == 2
    if filter_eval_files:  # the validation file loses its copies of training text
        assert report["data/dropped/validation/leakage"] == 2
        assert not any(k.startswith("data/dropped/validation/") and not k.endswith("leakage") for k in report)
        assert report["data/rows/train"] + report["data/rows/test"] == 100
        assert report["data/rows/validation"] == 20
    else:  # the validation file is scored whole: the training copies go instead
        assert report["data/dropped/train/leakage"] == 2
        assert not any(k.startswith("data/dropped/validation/") for k in report)
        assert report["data/rows/train"] + report["data/rows/test"] == 98
        assert report["data/rows/validation"] == 22
    assert_counts_add_up(report)
    assert_no_shared_text(dm)


def test_lowercase_auto_follows_tokenizer(make_dm, tmp_path):
    rows = [{"text": r["text"].upper(), "label": r["label"]} for r in synthetic_rows(60)]
    path = write_table(rows, tmp_path / "d.csv")
    uncased = make_dm(train_file=path)
    assert uncased.cleaner.lowercase is True
    assert all(t == t.lower() for t in split_frame(uncased, "train")["text"])
    cased = make_dm(train_file=path, tokenizer=WordPieceTokenizer(vocab_size=300, lowercase=False))
    assert cased.cleaner.lowercase is False
    assert all(t == t.upper() for t in split_frame(cased, "train")["text"])
    assert cased.text_settings()["cleaning"]["lowercase"] is False


# ----------------------------------------------------------------- cache
def test_second_module_loads_the_cache(make_dm, tmp_path, monkeypatch):
    path = write_table(synthetic_rows(100), tmp_path / "d.csv")
    first = make_dm(train_file=path)
    meta = first.cache_path / "meta.json"
    mtime = meta.stat().st_mtime_ns

    def no_rebuild(self, path):
        raise AssertionError("cache rebuilt although the settings did not change")

    monkeypatch.setattr(ClassificationDataModule, "build_cache", no_rebuild)
    second = make_dm(train_file=path)
    assert second.cache_path == first.cache_path
    assert meta.stat().st_mtime_ns == mtime
    assert second.meta == first.meta
    assert second.datasets["train"]["input_ids"] == first.datasets["train"]["input_ids"]


@pytest.mark.parametrize("change", [
    {"max_length": 16},
    {"seed": 1},
    {"val_ratio": 0.2},
    {"cleaning": {"steps": ["whitespace"]}},
    {"tokenizer": WordPieceTokenizer(vocab_size=200)},
    {"text_column": "text", "label_names": ["negative", "positive"]},
])
def test_settings_change_the_cache_key(make_dm, tmp_path, change):
    path = write_table(synthetic_rows(100), tmp_path / "d.csv")
    base = make_dm(prepare=False, train_file=path)
    assert make_dm(prepare=False, train_file=path).cache_path == base.cache_path
    assert make_dm(prepare=False, train_file=path, **change).cache_path != base.cache_path


def test_file_content_changes_the_cache_key(make_dm, tmp_path):
    path = write_table(synthetic_rows(100), tmp_path / "d.csv")
    before = make_dm(prepare=False, train_file=path).cache_path
    write_table(synthetic_rows(101), path)
    assert make_dm(prepare=False, train_file=path).cache_path != before


def test_max_length_change_rebuilds_with_truncation(make_dm, tmp_path):
    path = write_table(synthetic_rows(100), tmp_path / "d.csv")
    long = make_dm(train_file=path, max_length=64)
    short = make_dm(train_file=path, max_length=6)
    assert short.cache_path != long.cache_path
    assert max(map(len, long.datasets["train"]["input_ids"])) > 6
    assert max(map(len, short.datasets["train"]["input_ids"])) == 6


# ----------------------------------------------------------------- collate
def test_collate_pads_to_longest_in_batch(make_dm, tmp_path):
    path = write_table(synthetic_rows(200), tmp_path / "d.csv")
    dm = make_dm(train_file=path, max_length=64)
    widths = []
    for batch in dm.val_dataloader():
        lengths = batch["attention_mask"].sum(dim=1)
        width = batch["input_ids"].shape[1]
        assert width == int(lengths.max()) < 64
        assert batch["attention_mask"].shape == batch["input_ids"].shape
        # padding sits after the text and uses the pad id
        for row, n in zip(batch["input_ids"], lengths.tolist()):
            assert (row[n:] == dm.tokenizer.pad_token_id).all()
        widths.append(width)
    assert len(set(widths)) > 1


def test_collate_pad_to_multiple_of(make_dm, tmp_path):
    path = write_table(synthetic_rows(100), tmp_path / "d.csv")
    dm = make_dm(train_file=path, max_length=64, pad_to_multiple_of=8)
    for batch in dm.val_dataloader():
        width = batch["input_ids"].shape[1]
        assert width % 8 == 0 and width - int(batch["attention_mask"].sum(dim=1).max()) < 8


def test_train_loader_sees_every_row_once(make_dm, tmp_path):
    path = write_table(synthetic_rows(150), tmp_path / "d.csv")
    dm = make_dm(train_file=path, max_length=64)
    loader = dm.train_dataloader()
    seen, n = [], 0
    for batch in loader:
        seen.extend(batch["input_ids"].tolist())
        n += len(batch["labels"])
    assert n == len(dm.datasets["train"])
    strip = [tuple(t for t in ids if t != dm.tokenizer.pad_token_id) for ids in seen]
    assert sorted(strip) == sorted(tuple(ids) for ids in dm.datasets["train"]["input_ids"])


# ----------------------------------------------------------------- errors
def test_missing_train_file(make_dm, tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(LitNlpError) as err:
        make_dm(train_file=missing)
    assert str(missing) in one_line(err)


def test_missing_validation_file(make_dm, tmp_path):
    train = write_table(synthetic_rows(50), tmp_path / "train.csv")
    missing = tmp_path / "val_missing.csv"
    with pytest.raises(LitNlpError) as err:
        make_dm(train_file=train, validation_file=missing)
    assert str(missing) in one_line(err)


@pytest.mark.parametrize("key, column", [("text_column", "sentence"), ("label_column", "sentiment"),
                                         ("text_pair_column", "hypothesis")])
def test_missing_column(make_dm, tmp_path, key, column):
    path = write_table(synthetic_rows(50), tmp_path / "d.csv")
    with pytest.raises(LitNlpError) as err:
        make_dm(train_file=path, **{key: column})
    msg = one_line(err)
    assert str(path) in msg and column in msg and "'text'" in msg and "'label'" in msg


def test_empty_file(make_dm, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(LitNlpError, match="empty") as err:
        make_dm(train_file=path)
    assert str(path) in one_line(err)


def test_header_only_file(make_dm, tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("text,label\n")
    with pytest.raises(LitNlpError) as err:
        make_dm(train_file=path)
    assert str(path) in one_line(err)


def test_all_empty_text_column(make_dm, tmp_path):
    rows = [{"text": "" if i % 2 else "   ", "other": "x", "label": "ab"[i % 2]} for i in range(20)]
    path = write_table(rows, tmp_path / "blank.csv")
    with pytest.raises(LitNlpError) as err:
        make_dm(train_file=path)
    msg = one_line(err)
    assert str(path) in msg and "'text'" in msg


def test_unseen_labels_in_validation_and_test_files(make_dm, tmp_path):
    rows = synthetic_rows(200, seed=7)
    train = write_table(rows[:120], tmp_path / "train.csv")
    val_rows = rows[120:160] + [{"text": "brand new words here", "label": "neutral"}]
    test_rows = rows[160:] + [{"text": "another new sentence", "label": "mixed"}]
    val = write_table(val_rows, tmp_path / "val.csv")
    test = write_table(test_rows, tmp_path / "test.csv")
    with pytest.raises(LitNlpError) as err:
        make_dm(train_file=train, validation_file=val, test_file=test)
    msg = one_line(err)
    # both problems in one message, each with its file and label
    assert str(val) in msg and "neutral" in msg
    assert str(test) in msg and "mixed" in msg


def test_labels_outside_label_names(make_dm, tmp_path):
    path = write_table(synthetic_rows(60), tmp_path / "d.csv")
    with pytest.raises(LitNlpError) as err:
        make_dm(train_file=path, label_names=["positive", "neutral"])
    msg = one_line(err)
    assert str(path) in msg and "negative" in msg


def test_single_class(make_dm, tmp_path):
    rows = [{"text": r["text"], "label": "positive"} for r in synthetic_rows(40)]
    path = write_table(rows, tmp_path / "one.csv")
    with pytest.raises(LitNlpError, match="one class") as err:
        make_dm(train_file=path)
    msg = one_line(err)
    assert str(path) in msg and "'label'" in msg


def test_undecodable_bytes(make_dm, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"text,label\ncaf\xe9 au lait,positive\nfine film,negative\n")
    with pytest.raises(LitNlpError) as err:
        make_dm(train_file=path)
    msg = one_line(err)
    assert str(path) in msg and "encoding" in msg


def test_bad_config_reported_together(make_dm, tmp_path):
    with pytest.raises(LitNlpError) as err:
        make_dm(prepare=False, train_file=None, val_ratio=1.5, max_length=1)
    msg = one_line(err)
    assert "train_file" in msg and "val_ratio" in msg and "max_length" in msg


# ----------------------------------------------------------------- CLI
def test_cli_missing_file_exits_2_with_one_line(tmp_path):
    missing = tmp_path / "no_such_reviews.csv"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "train.py", "model=bert_tiny", "data=csv", f"data.train_file={missing}",
         f"hydra.run.dir={tmp_path / 'run'}", f"paths.cache_dir={tmp_path / 'cache'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert str(missing) in errors[0]


# ----------------------------------------------------------------- files and labels as users bring them
def test_stray_carriage_returns_keep_every_row(make_dm, tmp_path):
    # a spreadsheet export: unquoted texts holding a lone \r, rows ending in \r\n; read as
    # text, not as row ends, so no row breaks into halves that cleaning would drop as "empty"
    rows = synthetic_rows(120, seed=3)
    for row in rows[::4]:
        words = row["text"].split()
        row["text"] = " ".join(words[:2]) + "\r" + " ".join(words[2:])
    path = tmp_path / "tweets.csv"
    path.write_bytes(("text,label\r\n" + "".join(f"{r['text']},{r['label']}\r\n" for r in rows)).encode())
    dm = make_dm(train_file=path)
    report = dm.report()
    assert report["data/rows_read/train"] == 120
    assert not any(k.startswith("data/dropped/") for k in report)
    assert_counts_add_up(report)
    texts = set().union(*(split_frame(dm, s)["text"] for s in ("train", "validation", "test")))
    assert {r["text"].replace("\r", " ") for r in rows} == texts  # the whitespace step made \r a space


def test_row_with_too_few_fields_stops_with_file_and_line(make_dm, tmp_path):
    path = tmp_path / "broken.csv"
    lines = [f"{r['text']},{r['label']}" for r in synthetic_rows(40)]
    lines.insert(10, "the first half of a tweet")  # becomes line 12: header + 10 rows before it
    path.write_text("text,label\n" + "\n".join(lines) + "\n")
    with pytest.raises(LitNlpError) as err:
        make_dm(train_file=path)
    msg = one_line(err)
    assert str(path) in msg and "line 12 has 1" in msg


def test_headerless_tsv_with_column_names(make_dm, tmp_path):
    rows = synthetic_rows(80, seed=4)
    path = tmp_path / "dump.tsv"
    path.write_text("".join(f"{r['text']}\t{r['label']}\n" for r in rows))
    with pytest.raises(LitNlpError) as err:  # without names the first row is taken for the header
        make_dm(train_file=path, format="tsv")
    assert "data.column_names=[text,label]" in one_line(err)
    dm = make_dm(train_file=path, format="tsv", column_names=["text", "label"])
    assert sum(dm.meta["rows"].values()) == 80
    assert dm.label_names_resolved == ["negative", "positive"]


def test_empty_labels_are_dropped_and_counted(make_dm, tmp_path):
    rows = synthetic_rows(100, seed=5)
    for row in rows[:7]:
        row["label"] = " "
    dm = make_dm(train_file=write_table(rows, tmp_path / "d.csv"))
    report = dm.report()
    assert report["data/dropped/train/empty_label"] == 7
    assert dm.label_names_resolved == ["negative", "positive"]  # no class named ""
    assert_counts_add_up(report)


def test_bad_label_column_stops_with_counts_or_warns(make_dm, tmp_path, caplog):
    rows = synthetic_rows(100, seed=6)
    rows[3]["label"] = "and the rest of the review was in the label column"
    rows[4]["label"] = "1.0"
    rows[5]["label"] = "1"
    path = write_table(rows, tmp_path / "d.csv")
    with pytest.raises(LitNlpError) as err:
        make_dm(train_file=path)
    msg = one_line(err)
    assert str(path) in msg and "read like sentences" in msg and "'1' (1 row), '1.0' (1 row)" in msg
    assert "data.label_checks=warn" in msg
    with caplog.at_level("WARNING"):
        dm = make_dm(train_file=path, label_checks="warn")
    assert len(dm.meta["label_notes"]) == 2
    assert any("read like sentences" in r.getMessage() for r in caplog.records)


def test_evaluation_file_with_duplicates_is_scored_whole(make_dm, tmp_path, caplog):
    rows = synthetic_rows(160, seed=8)
    train = write_table(rows[:120], tmp_path / "train.csv")
    # an official dev file: 40 rows, 3 repeated, 2 also in train, 1 without a label
    dev_rows = rows[120:] + [dict(rows[121]), dict(rows[122]), dict(rows[122]), dict(rows[0]), dict(rows[1]),
                             {"text": "no gold label here", "label": ""}]
    dev = write_table(dev_rows, tmp_path / "dev.csv")
    with caplog.at_level("WARNING"):
        dm = make_dm(train_file=train, test_file=dev)
    report = dm.report()
    assert report["data/rows_read/test"] == 46
    assert report["data/rows/test"] == 45  # all but the row that has no label to score against
    assert report["data/dropped/test/empty_label"] == 1
    assert report["data/dropped/train/leakage"] == 2  # the training copies of dev text go instead
    assert_counts_add_up(report)
    assert any("evaluation file" in r.getMessage() and str(dev) in r.getMessage() for r in caplog.records)
    # the training and validation splits share no text with the evaluation file
    test_texts = split_texts(dm, "test")
    assert not (split_texts(dm, "train") | split_texts(dm, "validation")) & test_texts


def test_label_counts_reach_the_model(make_dm, tmp_path):
    rows = synthetic_rows(300, seed=9)
    rows = [r for r in rows if r["label"] == "negative"][:30] + [r for r in rows if r["label"] == "positive"]
    dm = make_dm(train_file=write_table(rows, tmp_path / "imbalanced.csv"))
    facts = dm.model_facts()
    counts = facts["label_counts"]
    assert len(counts) == 2 and counts[0] < counts[1] and sum(counts) == facts["train_rows"]
    assert counts == dm.meta["label_counts"]["train"]
    assert not facts["multi_label"]


@pytest.mark.parametrize("layout", ["separator", "columns"])
def test_multilabel_sets_from_a_list_column_or_01_columns(make_dm, tmp_path, layout):
    rows = multilabel_rows(200)
    path = write_table(rows, tmp_path / "topics.csv")
    if layout == "separator":
        dm = make_dm(train_file=path, label_column="labels", label_separator="|")
    else:
        dm = make_dm(train_file=path, label_columns=["money", "sport", "tech"])
    assert dm.multi_label and dm.main_metric == "val/f1_micro"
    assert dm.label_names_resolved == ["money", "sport", "tech"]
    by_text = {r["text"]: [r["money"], r["sport"], r["tech"]] for r in rows}
    for split in ("train", "validation", "test"):
        frame = split_frame(dm, split)
        assert "stratum" not in frame
        assert all(by_text[t] == list(labels) for t, labels in zip(frame["text"], frame["label"]))
    batch = next(iter(dm.train_dataloader()))
    assert batch["labels"].shape == (8, 3)
    totals = [sum(r[t] for r in rows) for t in ("money", "sport", "tech")]
    assert [sum(dm.meta["label_counts"][s][i] for s in ("train", "validation", "test")) for i in range(3)] == totals
    assert sum(dm.meta["rows"].values()) == 200
    assert dm.text_settings()["multi_label"] is True


def test_multilabel_label_errors(make_dm, tmp_path):
    rows = multilabel_rows(60)
    train = write_table(rows[:40], tmp_path / "train.csv")
    val = write_table(rows[40:] + [{"text": "weather news", "labels": "weather", "money": 0, "sport": 0, "tech": 0}],
                      tmp_path / "val.csv")
    with pytest.raises(LitNlpError) as err:
        make_dm(train_file=train, validation_file=val, label_column="labels", label_separator="|")
    assert str(val) in one_line(err) and "weather" in one_line(err)
    with pytest.raises(LitNlpError) as err:
        make_dm(prepare=False, train_file=train, label_separator="|", label_columns=["money"])
    assert "not both" in one_line(err)
