"""Extractive QA data: windows and their span labels round-trip to the gold answer text, the
question is never cut, SQuAD JSON and flat files give the same windows, splits are carved by
paragraph, only training rows are ever dropped (counted), and bad input ends with one line
naming the file and the question id."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import one_line, write_table
from lit_nlp.codecs.common import IGNORE_INDEX
from lit_nlp.codecs.extractive_qa import collate_qa, encode_windows, span_labels
from lit_nlp.data.extractive_qa import ExtractiveQADataModule, parse_answers
from lit_nlp.data.tokenizers import PretrainedTokenizer, WordPieceTokenizer
from lit_nlp.errors import LitNlpError
from lit_nlp.resolvers import minilm_dir

# 70 distinct words, so every answer text occurs once; a few are cut into word pieces by MiniLM's
# vocabulary (e.g. "tessellation"), which the labels must cover whole
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
         "quebec romeo sierra tango uniform victor whiskey xray yankee zulu amber basalt cobalt dolomite "
         "emerald feldspar garnet hematite ilmenite jasper kyanite lazurite malachite nephrite obsidian "
         "peridot quartz rhodonite sapphire tessellation umbrella velvet wolfram xylophone yarrow zeppelin "
         "anchor beacon compass dinghy estuary fathom galley harbour isthmus jetty keel lagoon mooring "
         "nautical outrigger pontoon").split()
CONTEXT = " ".join(WORDS)


@pytest.fixture(scope="module")
def minilm_tokenizer():
    return PretrainedTokenizer(minilm_dir()).build()


def char_start(text: str, context: str = CONTEXT) -> int:
    return (" " + context + " ").index(" " + text + " ")


# ----------------------------------------------------------------- windows and labels
@pytest.mark.parametrize("answer", ["alpha", "kilo lima mike", "tessellation umbrella", "pontoon", "sapphire"])
def test_window_labels_round_trip_to_the_gold_text(minilm_tokenizer, answer):
    question = "which words are these?"
    start = char_start(answer)
    w = encode_windows(minilm_tokenizer, [question], [CONTEXT], max_length=40, doc_stride=12,
                       answer_texts=[[answer]], answer_starts=[[start]])
    n = len(w["input_ids"])
    assert n >= 4 and w["example"] == [0] * n  # a long context: several windows of one question
    q_ids = minilm_tokenizer(question, add_special_tokens=False)["input_ids"]
    labelled = 0
    for i in range(n):
        ids, offsets, words = w["input_ids"][i], w["offsets"][i], w["word_ids"][i]
        assert len(ids) <= 40
        assert ids[:len(q_ids) + 2] == [minilm_tokenizer.cls_token_id, *q_ids, minilm_tokenizer.sep_token_id]  # never cut
        context_tokens = [k for k, (a, _) in enumerate(offsets) if a >= 0]
        assert context_tokens and all(words[k] >= 0 for k in context_tokens)
        assert all(offsets[k] == [-1, -1] and words[k] == -1 for k in range(len(ids)) if k not in context_tokens)
        s, e = w["start_positions"][i], w["end_positions"][i]
        inside = offsets[context_tokens[0]][0] <= start and start + len(answer) <= offsets[context_tokens[-1]][1]
        if inside:
            assert CONTEXT[offsets[s][0]:offsets[e][1]] == answer
            labelled += 1
        else:
            assert s == e == 0  # the CLS position
    assert labelled >= 1  # an answer cut by one window boundary lies whole in the next window
    # consecutive windows share doc_stride context tokens
    for i in range(n - 1):
        this = [tuple(o) for o in w["offsets"][i] if o[0] >= 0]
        following = [tuple(o) for o in w["offsets"][i + 1] if o[0] >= 0]
        assert this[-12:] == following[:12]


def test_trained_wordpiece_windows_round_trip(tmp_path):
    tokenizer = WordPieceTokenizer(vocab_size=200).build([CONTEXT, "where is it?"])
    answers = ["golf hotel", "zeppelin", "outrigger pontoon"]
    w = encode_windows(tokenizer, ["where is it?"] * 3, [CONTEXT] * 3, 24, 6,
                       [[a] for a in answers], [[char_start(a)] for a in answers])
    found = {}
    for i, example in enumerate(w["example"]):
        s, e = w["start_positions"][i], w["end_positions"][i]
        if s:
            found.setdefault(example, set()).add(CONTEXT[w["offsets"][i][s][0]:w["offsets"][i][e][1]])
    assert found == {0: {"golf hotel"}, 1: {"zeppelin"}, 2: {"outrigger pontoon"}}


def test_span_labels_spaces_and_partial_windows():
    offsets = [[-1, -1], [-1, -1], [10, 15], [16, 20], [21, 26], [-1, -1]]  # context tokens 2..4
    assert span_labels(offsets, 16, 20, 0) == (3, 3)
    assert span_labels(offsets, 10, 26, 0) == (2, 4)
    assert span_labels(offsets, 17, 19, 0) == (3, 3)  # inside one token: that token
    assert span_labels(offsets, 21, 30, 0) == (0, 0)  # runs past the window
    assert span_labels(offsets, 5, 15, 0) == (0, 0)  # starts before it
    # a gold text written with surrounding spaces labels its words
    w = encode_windows(PretrainedTokenizer(minilm_dir()).build(), ["q?"], ["one two three"], 32, 4,
                       [[" two "]], [[3]])
    s, e = w["start_positions"][0], w["end_positions"][0]
    assert "one two three"[w["offsets"][0][s][0]:w["offsets"][0][e][1]] == "two"


def test_unanswerable_windows_point_at_cls(minilm_tokenizer):
    w = encode_windows(minilm_tokenizer, ["is it there?"], [CONTEXT], 40, 12, [[]], [[]])
    assert len(w["input_ids"]) > 1 and set(w["start_positions"]) == set(w["end_positions"]) == {0}


def test_collate_pads_and_keeps_filler_labels():
    rows = [{"input_ids": [101, 5, 6, 102, 7, 102], "attention_mask": [1] * 6, "token_type_ids": [0, 0, 0, 0, 1, 1],
             "offsets": [[-1, -1]] * 4 + [[0, 3], [-1, -1]], "word_ids": [-1] * 4 + [0, -1],
             "start_positions": 4, "end_positions": 4, "id": "a", "context": "abc", "answers": ["abc"]},
            {"input_ids": [101, 5, 102, 8, 9, 10, 11, 102], "attention_mask": [1] * 8, "token_type_ids": [0] * 3 + [1] * 5,
             "offsets": [[-1, -1]] * 3 + [[0, 1], [2, 3], [4, 5], [6, 7], [-1, -1]], "word_ids": [-1] * 3 + [0, 1, 2, 3, -1],
             "start_positions": IGNORE_INDEX, "end_positions": IGNORE_INDEX, "id": "b", "context": "a b c d", "answers": []}]
    batch = collate_qa(rows, pad_token_id=0, pad_to_multiple_of=8)
    assert batch["input_ids"].shape == (2, 8) and batch["input_ids"][0, 6:].tolist() == [0, 0]
    assert batch["attention_mask"][0].tolist() == [1] * 6 + [0, 0]
    assert batch["context_mask"].tolist() == [[False] * 4 + [True] + [False] * 3, [False] * 3 + [True] * 4 + [False]]
    assert batch["start_positions"].tolist() == [4, IGNORE_INDEX]
    assert batch["id"] == ["a", "b"] and batch["answers"] == [["abc"], []] and batch["offsets"][0][4] == [0, 3]


# ----------------------------------------------------------------- answers in flat files
@pytest.mark.parametrize("value", [
    {"text": ["kilo", "kilo lima"], "answer_start": [51, 51]},
    [{"text": "kilo", "answer_start": 51}, {"text": "kilo lima", "answer_start": 51}],
    '{"text": ["kilo", "kilo lima"], "answer_start": [51, 51]}',
    '[{"text": "kilo", "answer_start": 51}, {"text": "kilo lima", "answer_start": "51"}]',
    {"text": np.array(["kilo", "kilo lima", " "]), "answer_start": np.array([51, 51, 0])},  # parquet
], ids=["hf dict", "list", "json dict", "json list", "numpy arrays"])
def test_parse_answers_layouts(value):
    assert parse_answers(value) == (["kilo", "kilo lima"], [51, 51])


@pytest.mark.parametrize("value,message", [
    ("kilo at 51", "not JSON"), ({"text": ["a"]}, "lacks 'text' or 'answer_start'"),
    ({"text": ["a", "b"], "answer_start": [1]}, "2 texts but 1 answer_start"),
    ([{"text": "a"}], "lacks 'text' or 'answer_start'"), ({"text": ["a"], "answer_start": ["x"]}, "not a whole number"),
    (7, "not a list of answers"),
])
def test_parse_answers_errors(value, message):
    with pytest.raises(ValueError, match=message):
        parse_answers(value)


def test_parse_answers_none_means_unanswerable():
    assert parse_answers([]) == parse_answers("") == parse_answers({"text": [], "answer_start": []}) == ([], [])


# ----------------------------------------------------------------- the data module
def paragraphs(n: int, questions_per: int = 3, offset: int = 0) -> list[tuple[str, list[dict]]]:
    """n contexts of 12 words each, with questions_per questions, each answered by one word."""
    out = []
    for p in range(n):
        words = [WORDS[(p * 7 + k) % len(WORDS)] for k in range(12)] + [f"para{p + offset}"]
        context = " ".join(words)
        qas = [{"id": f"p{p + offset}-q{j}", "question": f"what is word {j} of paragraph {p + offset}?",
                "answer": words[j * 4], "start": char_start(words[j * 4], context)} for j in range(questions_per)]
        out.append((context, qas))
    return out


def squad_json(paras, path: Path) -> Path:
    doc = {"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": c, "qas": [{"id": q["id"], "question": q["question"],
                                "answers": [{"text": q["answer"], "answer_start": q["start"]}]} for q in qas]}
        for c, qas in paras]}]}
    path.write_text(json.dumps(doc))
    return path


def flat_rows(paras) -> list[dict]:
    return [{"id": q["id"], "question": q["question"], "context": c,
             "answers": {"text": [q["answer"]], "answer_start": [q["start"]]}} for c, qas in paras for q in qas]


def data_module(tmp_path, train_file, **kwargs) -> ExtractiveQADataModule:
    settings = dict(max_length=32, doc_stride=8, cache_dir=str(tmp_path / "cache"), batch_size=4,
                    tokenizer=PretrainedTokenizer(minilm_dir()))
    settings.update(kwargs)
    dm = ExtractiveQADataModule(train_file=str(train_file), **settings)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_squad_json_and_flat_files_give_the_same_windows(tmp_path):
    paras = paragraphs(10)
    squad = data_module(tmp_path, squad_json(paras, tmp_path / "train.json"))
    jsonl = data_module(tmp_path, write_table(flat_rows(paras), tmp_path / "train.jsonl"), format="jsonl")
    rows = [{**r, "answers": json.dumps(r["answers"])} for r in flat_rows(paras)]
    csv = data_module(tmp_path, write_table(rows, tmp_path / "train.csv"), format=None)
    assert len({squad.cache_path, jsonl.cache_path, csv.cache_path}) == 3
    for split in ("train", "validation", "test"):
        a, b, c = (dm.datasets[split].to_pandas() for dm in (squad, jsonl, csv))
        assert len(a) > 0 and a.equals(b) and a.equals(c), split
    assert squad.report()["data/rows_read/train"] == 30
    assert sum(squad.report()[f"data/rows/{s}"] for s in ("train", "validation", "test")) == 30
    assert sum(squad.report()[f"data/windows/{s}"] for s in ("train", "validation", "test")) > 30  # several per question


def test_splits_are_carved_by_paragraph_and_batches_carry_what_decoding_needs(tmp_path):
    dm = data_module(tmp_path, squad_json(paragraphs(20), tmp_path / "train.json"), val_ratio=0.2, test_ratio=0.2)
    contexts = {s: set(dm.datasets[s]["context"]) for s in ("train", "validation", "test")}
    assert (len(contexts["train"]), len(contexts["validation"]), len(contexts["test"])) == (12, 4, 4)
    assert not (contexts["train"] & contexts["validation"] or contexts["train"] & contexts["test"]
                or contexts["validation"] & contexts["test"])
    batch = next(iter(dm.val_dataloader()))
    assert {"input_ids", "attention_mask", "token_type_ids", "context_mask", "start_positions", "end_positions",
            "offsets", "word_ids", "id", "context", "answers"} <= set(batch)
    assert batch["input_ids"].shape[0] == 4 and batch["input_ids"].shape[1] <= 32
    for i in range(4):  # labels point at the gold word, or at CLS in windows without it
        s, e = int(batch["start_positions"][i]), int(batch["end_positions"][i])
        if s:
            assert batch["context"][i][batch["offsets"][i][s][0]:batch["offsets"][i][e][1]] == batch["answers"][i][0]
    facts = dm.model_facts()
    assert facts["max_answer_length"] == 30 and facts["n_best"] == 5 and facts["unanswerable"] is False
    assert dm.main_metric == "val/f1" and dm.text_settings()["task"] == "extractive_qa"
    assert set(dm.state_dict()["tokenizer_files"]) >= {"tokenizer.json"}


def test_only_training_rows_are_dropped_and_counted(tmp_path):
    train = flat_rows(paragraphs(10))
    train += [dict(train[0]), dict(train[1]), {**train[2], "id": "blank", "question": "  "}]
    evaluation = flat_rows(paragraphs(3, offset=50))
    evaluation += [dict(evaluation[0], id="again"), {**evaluation[1], "id": "no-question", "question": ""}]
    dm = data_module(tmp_path, write_table(train, tmp_path / "train.jsonl"), format="jsonl",
                     validation_file=str(write_table(evaluation, tmp_path / "dev.jsonl")), test_ratio=0.0)
    report = dm.report()
    assert report["data/dropped/train/duplicate"] == 2 and report["data/dropped/train/empty"] == 1
    assert report["data/rows/train"] == 30 and "data/rows/test" not in report
    # the evaluation file is scored whole: repeated and empty questions included
    assert report["data/rows_read/validation"] == report["data/rows/validation"] == 11
    assert set(dm.datasets["validation"]["id"]) == {r["id"] for r in evaluation}


def test_unanswerable_questions_on_request(tmp_path):
    rows = flat_rows(paragraphs(6))
    for row in rows[::3]:
        row["answers"] = {"text": [], "answer_start": []}
    path = write_table(rows, tmp_path / "v2.jsonl")
    with pytest.raises(LitNlpError) as err:
        data_module(tmp_path, path, format="jsonl")
    msg = one_line(err)
    assert str(path) in msg and "6 questions have no answer" in msg and "question id p0-q0" in msg
    assert "data.allow_unanswerable=true" in msg
    dm = data_module(tmp_path, path, format="jsonl", allow_unanswerable=True)
    windows = pd.concat([dm.datasets[s].to_pandas() for s in ("train", "validation", "test")])
    none = windows[windows["answers"].map(len) == 0]
    assert none["id"].nunique() == 6 and (none["start_positions"] == 0).all() and (none["end_positions"] == 0).all()
    assert dm.model_facts()["unanswerable"] is True


# ----------------------------------------------------------------- bad input: one line, file and question id
def test_answer_not_at_its_start(tmp_path):
    paras = paragraphs(5)
    paras[2][1][1]["start"] += 3
    path = squad_json(paras, tmp_path / "train.json")
    with pytest.raises(LitNlpError) as err:
        data_module(tmp_path, path)
    msg = one_line(err)
    assert str(path) in msg and "1 answers are not in the context at their answer_start" in msg
    assert "question id p2-q1" in msg and "fix answer_start" in msg


def test_problems_of_several_files_in_one_message(tmp_path):
    rows = flat_rows(paragraphs(4))
    rows[5]["answers"] = {"text": [rows[5]["answers"]["text"][0]], "answer_start": [0]}
    dev = flat_rows(paragraphs(2, offset=9))
    dev[1]["answers"] = {"text": []}
    train_path = write_table(rows, tmp_path / "train.jsonl")
    dev_path = write_table(dev, tmp_path / "dev.jsonl")
    with pytest.raises(LitNlpError) as err:
        data_module(tmp_path, write_table(rows, tmp_path / "train.jsonl"), format="jsonl", validation_file=str(dev_path))
    msg = one_line(err)
    assert f"{dev_path}: 1 malformed answers (first: question id p9-q1: column 'answers' lacks 'text' or 'answer_start')" in msg
    rows[5]["answers"]["answer_start"] = [0]
    dev[1]["answers"] = {"text": ["nowhere"], "answer_start": [0]}
    write_table(dev, dev_path)
    with pytest.raises(LitNlpError) as err:
        data_module(tmp_path, train_path, format="jsonl", validation_file=str(dev_path))
    msg = one_line(err)
    assert f"{train_path}: 1 answers" in msg and "question id p1-q2" in msg
    assert f"{dev_path}: 1 answers" in msg and "question id p9-q1" in msg


def test_squad_answer_without_start(tmp_path):
    doc = json.loads(squad_json(paragraphs(3), tmp_path / "train.json").read_text())
    del doc["data"][0]["paragraphs"][1]["qas"][2]["answers"][0]["answer_start"]
    path = tmp_path / "train.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(LitNlpError) as err:
        data_module(tmp_path, path)
    msg = one_line(err)
    assert str(path) in msg and "question id p1-q2" in msg and "'answer_start'" in msg


def test_missing_columns_repeated_ids_and_long_questions(tmp_path):
    rows = flat_rows(paragraphs(6))
    path = write_table([{k: v for k, v in r.items() if k != "context"} for r in rows], tmp_path / "nocontext.jsonl")
    with pytest.raises(LitNlpError) as err:
        data_module(tmp_path, path, format="jsonl")
    msg = one_line(err)
    assert str(path) in msg and "context_column=context" in msg and "data.context_column" in msg

    rows[4]["id"] = rows[3]["id"]
    rows[7]["question"] = "why " * 30
    path = write_table(rows, tmp_path / "bad.jsonl")
    with pytest.raises(LitNlpError) as err:
        data_module(tmp_path, path, format="jsonl")
    msg = one_line(err)
    assert "1 question ids occur more than once (first: question id p1-q0)" in msg
    assert "1 questions leave no room for context in data.max_length=32 with data.doc_stride=8" in msg
    assert "question id p2-q1" in msg


def test_config_problems_are_collected():
    with pytest.raises(LitNlpError) as err:
        ExtractiveQADataModule(train_file=None, format="xml", max_length=64, doc_stride=64, n_best=0)
    msg = one_line(err)
    for part in ("data.train_file", "data.format=xml", "data.doc_stride=64", "data.n_best"):
        assert part in msg


def test_cache_is_reused(tmp_path):
    path = squad_json(paragraphs(6), tmp_path / "train.json")
    first = data_module(tmp_path, path)
    second = data_module(tmp_path, path)
    assert first.cache_path == second.cache_path
    assert len(list((tmp_path / "cache" / "extractive_qa").iterdir())) == 2  # the cache and its lock file
    other = data_module(tmp_path, path, doc_stride=4)
    assert other.cache_path != first.cache_path
    pd.testing.assert_frame_equal(first.datasets["train"].to_pandas(), second.datasets["train"].to_pandas())
    assert torch.is_tensor(next(iter(second.train_dataloader()))["input_ids"])


def test_a_seeded_sample_of_training_questions(tmp_path):
    train = squad_json(paragraphs(20), tmp_path / "train.json")
    dev = squad_json(paragraphs(4, offset=40), tmp_path / "dev.json")
    dm = data_module(tmp_path, train, validation_file=str(dev), max_train_rows=24)
    report = dm.report()
    assert report["data/rows_read/train"] == 60 and report["data/train_sample"] == 24
    assert report["data/rows/train"] + report["data/rows/test"] == 24  # the test split is carved from the sample
    assert report["data/rows/validation"] == report["data/rows_read/validation"] == 12  # evaluation files stay whole
    again = data_module(tmp_path, train, validation_file=str(dev), max_train_rows=24, seed=1)
    assert set(again.datasets["train"]["id"]) != set(dm.datasets["train"]["id"])
    trained = data_module(tmp_path, train, validation_file=str(dev), max_train_rows=24,
                          tokenizer=WordPieceTokenizer(vocab_size=200))  # built from the sample
    assert trained.report()["data/train_sample"] == 24


def test_evaluation_windows_come_longest_first(tmp_path):
    dm = data_module(tmp_path, squad_json(paragraphs(20), tmp_path / "train.json"), max_length=24, doc_stride=4)
    for split in ("validation", "test"):
        lengths = [len(ids) for ids in dm.datasets[split]["input_ids"]]
        assert lengths == sorted(lengths, reverse=True) and len(set(lengths)) > 1
