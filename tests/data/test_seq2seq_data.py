"""Seq2SeqDataModule on tiny local files with a BPE tokenizer trained from the data (no hub):
template filling, truncation of the context only, label padding, SQuAD JSON and list-valued
references, dropped rows, splits and the one-line errors."""

from __future__ import annotations

import json
import random
import re

import pytest

from conftest import one_line, write_table
from lit_nlp.codecs.common import IGNORE_INDEX
from lit_nlp.data.seq2seq import Seq2SeqDataModule
from lit_nlp.data.tokenizers import BPETokenizer
from lit_nlp.errors import LitNlpError

QA_TEMPLATE = "question: {question} context: {context}"
WORDS = "red blue green cat dog paris rome apple pear the a we saw and then it was near by with".split()


def qa_rows(n: int, seed: int = 0, context_words: tuple[int, int] = (4, 10)) -> list[dict]:
    """Unique rows: a numbered question, a context of random words, a 1-3 word answer."""
    rng = random.Random(seed)
    return [{"question": f"which word number {i} is it?",
             "context": " ".join(rng.choices(WORDS, k=rng.randint(*context_words))),
             "answer": " ".join(rng.choices(WORDS, k=rng.randint(1, 3)))} for i in range(n)]


@pytest.fixture
def make_dm(tmp_path):
    """A QA data module with tiny settings; `prepare=True` also runs prepare_data and setup."""

    def make(prepare: bool = True, **kwargs) -> Seq2SeqDataModule:
        settings = dict(source_template=QA_TEMPLATE, target_column="answer", truncate_column="context",
                        cleaning={"steps": ["unicode", "whitespace"]}, cache_dir=str(tmp_path / "cache"),
                        max_source_length=64, max_target_length=8, batch_size=8, eval_batch_size=8, seed=0,
                        tokenizer=BPETokenizer(vocab_size=300))
        settings.update(kwargs)
        for key in ("train_file", "validation_file", "test_file"):
            if settings.get(key) is not None:
                settings[key] = str(settings[key])
        dm = Seq2SeqDataModule(**settings)
        if prepare:
            dm.prepare_data()
            dm.setup("fit")
        return dm

    return make


def all_rows(dm) -> list[dict]:
    return [row for split in ("train", "validation", "test") for row in dm.datasets[split]]


# ----------------------------------------------------------------- template and tokens
def test_template_filled_with_cleaned_columns(make_dm, tmp_path):
    rows = qa_rows(40)
    rows[0] = {"question": "  Which  COLOR is it?", "context": "The  RED\tcar", "answer": " Red "}
    dm = make_dm(train_file=write_table(rows, tmp_path / "d.jsonl"))
    assert dm.cleaner.lowercase is True  # the BPE tokenizer lowercases, so cleaning follows it
    by_source = {r["source"]: r for r in all_rows(dm)}
    first = by_source["question: which color is it? context: the red car"]
    tok = dm.tokenizer
    assert tok.decode(first["input_ids"], skip_special_tokens=True) == first["source"]
    assert tok.decode(first["labels"], skip_special_tokens=True) == "red"
    assert first["references"] == ["red"]  # without references_column the target is the only one
    for row in rows[1:]:
        filled = by_source[QA_TEMPLATE.format(**row)]
        assert filled["references"] == [row["answer"]]
        # T5 style: one </s> closes both sides, and nothing opens them
        assert filled["input_ids"][-1] == filled["labels"][-1] == tok.eos_token_id
        assert tok.eos_token_id not in filled["input_ids"][:-1]
    # what predict needs to fill the template the same way
    settings = dm.text_settings()
    assert settings["source_template"] == QA_TEMPLATE and settings["truncate_column"] == "context"
    assert settings["cleaning"]["lowercase"] is True


def test_collate_pads_labels_with_minus_100_and_inputs_with_pad(make_dm, tmp_path):
    dm = make_dm(train_file=write_table(qa_rows(120, seed=1), tmp_path / "d.jsonl"))
    pad = dm.tokenizer.pad_token_id
    padded_inputs = padded_labels = 0
    for b, batch in enumerate(dm.val_dataloader()):
        rows = dm.datasets["validation"].select(range(b * 8, b * 8 + len(batch["labels"])))
        assert batch["labels"].shape[1] == max(len(r["labels"]) for r in rows)
        assert batch["input_ids"].shape == batch["attention_mask"].shape
        assert pad not in batch["labels"]  # pad is a real id to the loss; -100 is ignored
        for labels, ids, mask, row in zip(batch["labels"], batch["input_ids"], batch["attention_mask"], rows):
            n, m = len(row["labels"]), len(row["input_ids"])
            assert labels[:n].tolist() == row["labels"] and (labels[n:] == IGNORE_INDEX).all()
            assert ids[:m].tolist() == row["input_ids"] and (ids[m:] == pad).all()
            assert mask[:m].all() and not mask[m:].any()
            padded_labels += n < len(labels)
            padded_inputs += m < len(ids)
        assert batch["references"] == [r["references"] for r in rows]
        assert batch["source"] == [r["source"] for r in rows]
    assert padded_labels and padded_inputs  # the checks above really saw padding


def test_train_loader_batches(make_dm, tmp_path):
    dm = make_dm(train_file=write_table(qa_rows(120, seed=2), tmp_path / "d.jsonl"))
    n = 0
    for batch in dm.train_dataloader():
        assert set(batch) >= {"input_ids", "attention_mask", "labels"}
        assert dm.tokenizer.pad_token_id not in batch["labels"]
        n += len(batch["labels"])
    assert n == len(dm.datasets["train"])


@pytest.mark.parametrize("template", [QA_TEMPLATE, "context: {context} question: {question}"],
                         ids=["context last", "question last"])
def test_truncation_cuts_the_context_never_the_question(make_dm, tmp_path, template):
    max_len = 24
    rows = qa_rows(60, seed=3, context_words=(30, 40)) + qa_rows(20, seed=4, context_words=(2, 3))
    for i, row in enumerate(rows):
        row["question"] = f"which word number {i} comes third?"  # unique after the merge
    dm = make_dm(train_file=write_table(rows, tmp_path / "d.jsonl"), source_template=template,
                 max_source_length=max_len)
    by_question = {r["question"]: r for r in rows}
    eos = dm.tokenizer.eos_token_id
    # the decoded source is the template with the whole question and the context cut short
    pattern = re.escape(template).replace(re.escape("{context}"), "(?P<context>.*)") \
        .replace(re.escape("{question}"), "(?P<question>which word number \\d+ comes third\\?)")
    cut = 0
    for row in all_rows(dm):
        ids = row["input_ids"]
        assert len(ids) <= max_len and ids[-1] == eos
        decoded = dm.tokenizer.decode(ids, skip_special_tokens=True)
        match = re.fullmatch(pattern, decoded)
        assert match, decoded
        original = by_question[match["question"]]["context"]
        kept = match["context"]
        assert original.startswith(kept), (kept, original)
        if kept != original:
            cut += 1
            assert len(kept) > 0
            # only as much as needed: the source fills max_source_length exactly
            assert len(ids) == max_len, decoded
        else:
            assert dm.tokenizer(template.format(**by_question[match["question"]]))["input_ids"] == ids
    assert cut >= 50  # the long rows were all cut, the short ones kept whole


def test_target_truncated_to_max_target_length(make_dm, tmp_path):
    rows = [{**r, "answer": " ".join(["red blue green cat"] * 5)} for r in qa_rows(40, seed=5)]
    dm = make_dm(train_file=write_table(rows, tmp_path / "d.jsonl"), max_target_length=6)
    labels = [r["labels"] for r in all_rows(dm)]
    assert {len(x) for x in labels} == {6}
    assert all(x[-1] == dm.tokenizer.eos_token_id for x in labels)


# ----------------------------------------------------------------- formats and references
def squad_json(n: int) -> dict:
    qas = [{"id": f"q{i}", "question": f"what is thing {i}?",
            "answers": [{"text": f"Thing {i}", "answer_start": 0}, {"text": f"thing {i}"},
                        {"text": f"the thing {i}"}, {"text": f"Thing {i}"}]} for i in range(n)]
    return {"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": f"In this paragraph thing {i} is named.", "qas": [qas[i]]} for i in range(n)]}]}


def test_squad_format(make_dm, tmp_path):
    path = tmp_path / "train-v1.1.json"
    path.write_text(json.dumps(squad_json(40)))
    dm = make_dm(train_file=path, format="squad", references_column="answers")
    assert sum(dm.meta["rows"].values()) == 40
    for row in all_rows(dm):
        i = int(re.search(r"thing (\d+)\?", row["source"]).group(1))
        assert row["source"] == f"question: what is thing {i}? context: in this paragraph thing {i} is named."
        assert dm.tokenizer.decode(row["labels"], skip_special_tokens=True) == f"thing {i}"  # the first answer
        # every gold answer, cleaned like the target (lowercased, so "Thing 3" and "thing 3" match)
        assert list(dict.fromkeys(row["references"])) == [f"thing {i}", f"the thing {i}"]


def test_references_from_a_list_column(make_dm, tmp_path):
    rows = qa_rows(40, seed=6)
    for i, row in enumerate(rows):
        row["answers"] = [row["answer"], f"Answer {i}"] if i % 2 else [row["answer"]]
    dm = make_dm(train_file=write_table(rows, tmp_path / "d.jsonl"), references_column="answers")
    by_source = {QA_TEMPLATE.format(**r): r for r in rows}
    for row in all_rows(dm):
        expected = by_source[row["source"]]["answers"]
        assert row["references"] == [a.lower() for a in expected]


# ----------------------------------------------------------------- rows and splits
def test_empty_targets_and_fields_dropped_and_counted(make_dm, tmp_path):
    rows = qa_rows(100, seed=7)
    for row in rows[:5]:
        row["answer"] = ""
    for row in rows[5:7]:
        row["answer"] = "  \t "  # empty once whitespace is cleaned
    rows[7]["question"] = ""
    rows.append(dict(rows[50]))  # an exact duplicate
    dm = make_dm(train_file=write_table(rows, tmp_path / "d.jsonl"))
    report = dm.report()
    assert report["data/rows_read/train"] == 101
    assert report["data/dropped/train/empty"] == 1  # the empty question
    assert report["data/dropped/train/empty_target"] == 7
    assert report["data/dropped/train/duplicate"] == 1
    assert sum(report[f"data/rows/{s}"] for s in ("train", "validation", "test")) == 92
    assert all(dm.tokenizer.decode(r["labels"], skip_special_tokens=True) for r in all_rows(dm))


def test_all_targets_empty(make_dm, tmp_path):
    rows = [{**r, "answer": ""} for r in qa_rows(20)]
    path = write_table(rows, tmp_path / "d.jsonl")
    with pytest.raises(LitNlpError) as err:
        make_dm(train_file=path)
    msg = one_line(err)
    assert str(path) in msg and "answer" in msg


def test_split_sizes(make_dm, tmp_path):
    rows = qa_rows(200, seed=8)
    dm = make_dm(train_file=write_table(rows, tmp_path / "all.jsonl"), val_ratio=0.1, test_ratio=0.1)
    assert dm.meta["rows"] == {"train": 160, "validation": 20, "test": 20}
    assert {s: len(d) for s, d in dm.datasets.items()} == dm.meta["rows"]
    sources = [set(dm.datasets[s]["source"]) for s in ("train", "validation", "test")]
    assert not (sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2])
    assert set().union(*sources) == {QA_TEMPLATE.format(**r) for r in rows}

    train = write_table(rows[:160], tmp_path / "train.jsonl")
    val = write_table(rows[160:], tmp_path / "val.jsonl")
    dm = make_dm(train_file=train, validation_file=val, test_ratio=0.25)
    assert dm.meta["rows"] == {"train": 120, "validation": 40, "test": 40}
    assert set(dm.datasets["validation"]["source"]) == {QA_TEMPLATE.format(**r) for r in rows[160:]}


def test_main_metric_and_model_facts(make_dm, tmp_path):
    path = write_table(qa_rows(40), tmp_path / "d.jsonl")
    dm = make_dm(train_file=path)
    facts = dm.model_facts()
    assert facts["task"] == "qa" and facts["tokenizer"] is dm.tokenizer
    assert facts["vocab_size"] == len(dm.tokenizer) <= 300
    assert (facts["pad_token_id"], facts["eos_token_id"]) == (0, 1)
    assert dm.main_metric == "val/f1"
    assert make_dm(prepare=False, train_file=path, task="summarization").main_metric == "val/rougeLsum"


# ----------------------------------------------------------------- errors
@pytest.mark.parametrize("settings,named", [
    ({"source_template": "question: {question} passage: {passage}", "truncate_column": "passage"},
     "source_template field 'passage'"),
    ({"target_column": "summary"}, "target_column=summary"),
    ({"references_column": "answers"}, "references_column=answers"),
])
def test_missing_column_named(make_dm, tmp_path, settings, named):
    path = write_table(qa_rows(20), tmp_path / "d.jsonl")
    with pytest.raises(LitNlpError) as err:
        make_dm(train_file=path, **settings)
    msg = one_line(err)
    assert str(path) in msg and named in msg and "'question'" in msg  # and the columns the file has


def test_bad_config_reported_together(make_dm):
    with pytest.raises(LitNlpError) as err:
        make_dm(prepare=False, train_file=None, source_template="no fields", truncate_column="context",
                task="translation")
    msg = one_line(err)
    for part in ("data.train_file", "data.source_template", "data.truncate_column=context", "data.task"):
        assert part in msg


def test_missing_file(make_dm, tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(LitNlpError) as err:
        make_dm(train_file=missing)
    assert str(missing) in one_line(err)
