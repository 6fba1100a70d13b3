"""The streamed preparation (lit_nlp.data.prepare) against the whole-file one it replaced
(lit_nlp.bench.data_baseline): the same rows kept, in the same splits, with the same counts and
the same tokenized rows; the same result for any data.num_proc; a progress bar once it runs long."""

from __future__ import annotations

import json
import random

import datasets
import pytest

from conftest import ROOT, synthetic_rows, write_table
from lit_nlp.bench.data_baseline import WholeFileCleaner, prepare_whole
from lit_nlp.data import io, prepare
from lit_nlp.data.classification import ClassificationDataModule
from lit_nlp.data.seq2seq import Seq2SeqDataModule
from lit_nlp.data.tokenizers import PretrainedTokenizer
from lit_nlp.resolvers import minilm_dir

STEPS = ["unicode", "html", "urls", "emails", "mentions", "contractions", "whitespace"]
SST2 = ROOT.parent / "shared" / "data" / "sst2"  # beside the checkout on the project's machines, not in every clone


def messy_rows(n: int, seed: int) -> list[dict]:
    """Sentiment rows as files bring them: exact repeats, texts that clean to another row's
    text (case, spaces, markup), the same text with the other label, empty texts and labels."""
    rng = random.Random(seed)
    rows = synthetic_rows(n, seed=seed)
    rows += [dict(r) for r in rng.sample(rows, n // 15)]
    rows += [{"text": r["text"], "label": "negative" if r["label"] == "positive" else "positive"}
             for r in rng.sample(rows, n // 60)]
    rows += [{"text": f"  <b>{r['text'].upper()}</b> ", "label": r["label"]} for r in rng.sample(rows, n // 30)]
    rows += [{"text": "", "label": "positive"}, {"text": " <i></i> ", "label": "negative"},
             {"text": "a film without a label", "label": ""}]
    rng.shuffle(rows)
    return rows


def cache_contents(folder) -> dict:
    """What a cache holds, comparable: meta, the cleaned rows (bytes) and the tokenized rows."""
    out = {"meta": json.loads((folder / "meta.json").read_text())}
    for split in ("train", "validation", "test"):
        if (folder / split).is_dir():
            tokenized = datasets.load_from_disk(str(folder / split))
            out[split] = ((folder / f"{split}.jsonl").read_bytes(), tokenized.features, tokenized.to_dict())
    return out


@pytest.fixture(scope="module")
def minilm():
    return PretrainedTokenizer(minilm_dir())


@pytest.mark.parametrize("layout", ["train_only", "given_files", "folds", "pairs"])
def test_streamed_preparation_equals_the_whole_file_one(tmp_path, minilm, layout):
    rows = messy_rows(600, seed=3)
    if layout == "pairs":
        rows = [{**r, "answer": " ".join(reversed(r["text"].split()))} for r in rows]  # repeats stay repeats
    train = write_table(rows, tmp_path / "train.csv")
    files = {"train": str(train), "validation": None, "test": None}
    if layout in ("given_files", "folds"):
        # the validation file repeats training texts (leakage) and has a repeat of its own
        files["validation"] = str(write_table(rows[:80] + rows[100:101], tmp_path / "dev.csv"))
    if layout == "given_files":
        files["test"] = str(write_table(messy_rows(100, seed=9), tmp_path / "test.csv"))
    settings = dict(text_pair_column="answer" if layout == "pairs" else None, val_ratio=0.1, test_ratio=0.1,
                    num_folds=4 if layout == "folds" else None, fold=1, seed=5, max_length=24)
    dm = ClassificationDataModule(train_file=files["train"], validation_file=files["validation"],
                                  test_file=files["test"], format="csv", cleaning={"steps": STEPS},
                                  label_checks="warn", cache_dir=str(tmp_path / "cache"), tokenizer=minilm,
                                  num_proc=1, **settings)
    dm.prepare_data()
    meta = assert_same_as_whole_file_path(dm, tmp_path, files, minilm, text_column="text", label_column="label",
                                          fmt="csv", **settings)
    assert {"train/duplicate", "train/conflicting_labels", "train/empty", "train/empty_label"} <= set(meta["dropped"])


@pytest.mark.skipif(not (SST2 / "train.tsv").is_file(), reason=f"SST-2 not found in {SST2}")
def test_streamed_preparation_equals_the_whole_file_one_on_sst2(tmp_path, minilm):
    # SST-2's first 20,000 training sentences and its dev file as the validation file, in two
    # processes (pass 1 forks for the second file)
    train = tmp_path / "train.tsv"
    with open(SST2 / "train.tsv", encoding="utf-8") as fh:
        train.write_text("".join(fh.readlines()[:20_001]), encoding="utf-8")
    files = {"train": str(train), "validation": str(SST2 / "dev.tsv"), "test": None}
    settings = dict(text_pair_column=None, val_ratio=0.1, test_ratio=0.1, num_folds=None, fold=0, seed=42,
                    max_length=66, label_names=["negative", "positive"])
    dm = ClassificationDataModule(train_file=files["train"], validation_file=files["validation"], format="tsv",
                                  text_column="sentence", cleaning={"steps": STEPS}, cache_dir=str(tmp_path / "cache"),
                                  tokenizer=minilm, num_proc=2, **settings)
    dm.prepare_data()
    meta = assert_same_as_whole_file_path(dm, tmp_path, files, minilm, text_column="sentence", label_column="label",
                                          fmt="tsv", **settings)
    # 22 of SST-2's repeats among these rows; every row read is kept or counted as dropped
    assert meta["dropped"] == {"train/duplicate": 22}
    assert meta["rows_read"]["train"] == meta["rows"]["train"] + meta["rows"]["test"] + 22


def assert_same_as_whole_file_path(dm, tmp_path, files, minilm, **settings) -> dict:
    """The cache `dm` built equals the whole-file path's (meta counts, cleaned rows, tokenized
    rows); returns the meta."""
    # the steps as they ran then; MiniLM is uncased, so lowercase=auto settles on true
    cleaner = WholeFileCleaner(STEPS, lowercase=True)
    baseline = tmp_path / "baseline"
    baseline.mkdir()
    prepare_whole(baseline, files, minilm.build(), cleaner, **settings)
    new, old = cache_contents(dm.cache_path), cache_contents(baseline)
    for key in ("label_names", "rows_read", "rows", "dropped", "label_counts", "cleaning"):
        assert new["meta"][key] == old["meta"][key], key
    for split in ("train", "validation", "test"):
        assert new[split][0] == old[split][0], f"{split}.jsonl"
        assert new[split][1] == old[split][1] and new[split][2] == old[split][2], f"{split} tokenized"
    return new["meta"]


def test_num_proc_gives_the_same_cache(tmp_path, minilm, monkeypatch):
    # chunks of 60 rows and tasks of 50: the 900-odd rows go through forked workers
    monkeypatch.setattr(io, "CHUNK_ROWS", 60)
    monkeypatch.setattr(prepare, "TASK_ROWS", 50)
    forks = []
    get_context = prepare.multiprocessing.get_context
    monkeypatch.setattr(prepare.multiprocessing, "get_context", lambda method: forks.append(method) or get_context(method))
    train = write_table(messy_rows(800, seed=4), tmp_path / "train.csv")
    qa = write_table([{"question": f"q{i} {r['text']}", "answer": r["label"]} for i, r in
                      enumerate(synthetic_rows(300, seed=6))], tmp_path / "qa.jsonl")
    caches = {}
    for num_proc in (1, 2):
        cache = tmp_path / f"cache{num_proc}"
        classification = ClassificationDataModule(train_file=str(train), cleaning={"steps": STEPS}, seed=1,
                                                  label_checks="warn", cache_dir=str(cache), tokenizer=minilm,
                                                  max_length=24, num_proc=num_proc)
        seq2seq = Seq2SeqDataModule(train_file=str(qa), format="jsonl", source_template="{question}",
                                    target_column="answer", cache_dir=str(cache), tokenizer=minilm, num_proc=num_proc,
                                    max_source_length=24, max_target_length=4)
        for dm in (classification, seq2seq):
            dm.prepare_data()
        caches[num_proc] = [cache_contents(dm.cache_path) for dm in (classification, seq2seq)]
    assert caches[1] == caches[2]
    assert forks == ["fork"] * 4  # pass 1 and pass 2 of each data module, with num_proc=2 only
    assert caches[2][0]["meta"]["rows_read"] == {"train": 800 + 53 + 13 + 26 + 3}


def test_progress_bar_shows_rows_per_second(tmp_path, minilm, monkeypatch, capsys):
    monkeypatch.setattr(prepare, "PROGRESS_DELAY_S", 0)
    train = write_table(synthetic_rows(200, seed=2), tmp_path / "train.csv")
    ClassificationDataModule(train_file=str(train), cache_dir=str(tmp_path / "cache"), tokenizer=minilm,
                             num_proc=1).prepare_data()
    err = capsys.readouterr().err
    assert "reading and cleaning" in err and "tokenizing" in err and "rows/s" in err


def test_malformed_line_deep_in_a_large_file_stops_the_build_with_its_line(tmp_path, minilm):
    # 160,000 rows; line 150,000 (the header is line 1) holds an unquoted comma
    lines = [f"review number {i} was fine,positive" for i in range(160_000)]
    lines[149_998] = "review, with a comma,negative"
    path = tmp_path / "big.csv"
    path.write_text("text,label\n" + "\n".join(lines) + "\n")
    dm = ClassificationDataModule(train_file=str(path), cleaning={"steps": []}, cache_dir=str(tmp_path / "cache"),
                                  tokenizer=minilm, num_proc=1)
    with pytest.raises(Exception) as err:
        dm.prepare_data()
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert "1 of 160,000 rows" in message and "line 150000 has 3" in message and "comma" in message
    assert not list((tmp_path / "cache").rglob("meta.json"))  # nothing half-built is taken for a cache


def test_label_column_values_are_counted_over_the_whole_file(tmp_path, minilm, monkeypatch):
    # chunks of 3 rows: the 0/1 columns' other values are counted over every chunk, as before
    monkeypatch.setattr(io, "CHUNK_ROWS", 3)
    rows = [{"text": f"text {i}", "toxic": ["1", "0", "yes"][i % 3], "insult": "0"} for i in range(12)]
    path = write_table(rows, tmp_path / "labels.csv")
    dm = ClassificationDataModule(train_file=str(path), label_columns=["toxic", "insult"],
                                  cache_dir=str(tmp_path / "cache"), tokenizer=minilm, num_proc=1)
    with pytest.raises(Exception) as err:
        dm.prepare_data()
    assert str(err.value) == (f"{path}: column 'toxic' has 4 values that are not 0/1 ('yes' x4); "
                              "data.label_columns must name 0/1 columns")
