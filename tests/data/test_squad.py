"""read_squad on small SQuAD-v1.1-shaped JSON written per test: one row per question, the
first gold answer as target, every distinct answer kept; one-line errors naming file and place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import one_line
from lit_nlp.data.squad import read_squad
from lit_nlp.errors import LitNlpError


def qa(qid: str, question: str, *answers: str) -> dict:
    return {"id": qid, "question": question,
            "answers": [{"text": a, "answer_start": 0} for a in answers]}


def squad_doc() -> dict:
    """Two articles, three paragraphs, four questions; duplicated and blank gold answers."""
    return {"version": "1.1", "data": [
        {"title": "Rivers", "paragraphs": [
            {"context": "The Nile flows north into the Mediterranean Sea.",
             "qas": [qa("q1", "Which way does the Nile flow?", "north", "north", "North "),
                     qa("q2", "Into which sea?", "the Mediterranean Sea", "Mediterranean Sea", " ")]},
            {"context": "The Amazon carries more water than any other river.",
             "qas": [qa("q3", "Which river carries the most water?", "The Amazon")]},
        ]},
        {"title": "Cities", "paragraphs": [
            {"context": "Vienna lies on the Danube.",
             "qas": [{"question": "On which river is Vienna?", "answers": [{"text": "the Danube"}]}]},
        ]},
    ]}


def write_json(doc, path: Path) -> Path:
    path.write_text(json.dumps(doc))
    return path


def test_rows_target_and_all_distinct_answers(tmp_path):
    frame = read_squad(write_json(squad_doc(), tmp_path / "train.json"))
    assert {"id", "title", "context", "question", "answer", "answers"} <= set(frame.columns)
    assert frame["id"].tolist()[:3] == ["q1", "q2", "q3"]
    assert frame["title"].tolist() == ["Rivers", "Rivers", "Rivers", "Cities"]
    assert frame["question"].tolist()[2] == "Which river carries the most water?"
    assert frame["context"].tolist()[:2] == ["The Nile flows north into the Mediterranean Sea."] * 2
    # the first gold answer is the training target; duplicates and blanks are not kept
    assert frame["answer"].tolist() == ["north", "the Mediterranean Sea", "The Amazon", "the Danube"]
    assert [list(a) for a in frame["answers"]] == [
        ["north", "North"], ["the Mediterranean Sea", "Mediterranean Sea"], ["The Amazon"], ["the Danube"]]
    # a question without an id still gets a unique one
    assert frame["id"].nunique() == 4


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(LitNlpError) as err:
        read_squad(missing)
    msg = one_line(err)
    assert str(missing) in msg and "not found" in msg


def test_not_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"data": [\n  {"title": "x",,}\n]}')
    with pytest.raises(LitNlpError) as err:
        read_squad(path)
    msg = one_line(err)
    assert str(path) in msg and "JSON" in msg and "line 2" in msg


@pytest.mark.parametrize("doc", [[{"title": "a list, not an object"}], {"version": "1.1"}, {"data": {"title": "x"}}],
                         ids=["top-level list", "no data", "data not a list"])
def test_no_data_list(tmp_path, doc):
    path = write_json(doc, tmp_path / "other.json")
    with pytest.raises(LitNlpError) as err:
        read_squad(path)
    msg = one_line(err)
    assert str(path) in msg and '"data"' in msg


@pytest.mark.parametrize("key", ["question", "answers"])
def test_qa_lacking_question_or_answers(tmp_path, key):
    doc = squad_doc()
    del doc["data"][1]["paragraphs"][0]["qas"][0][key]
    path = write_json(doc, tmp_path / "broken.json")
    with pytest.raises(LitNlpError) as err:
        read_squad(path)
    msg = one_line(err)
    assert str(path) in msg and "data[1].paragraphs[0].qas[0]" in msg and "'question' or 'answers'" in msg


def test_paragraph_lacking_context(tmp_path):
    doc = squad_doc()
    del doc["data"][0]["paragraphs"][1]["context"]
    path = write_json(doc, tmp_path / "broken.json")
    with pytest.raises(LitNlpError) as err:
        read_squad(path)
    msg = one_line(err)
    assert str(path) in msg and "data[0].paragraphs[1]" in msg and "'context'" in msg


@pytest.mark.parametrize("answers", [[], [{"text": "  "}, {"text": ""}]], ids=["no answers", "blank answers"])
def test_question_without_answer_text(tmp_path, answers):
    # SQuAD v2's unanswerable questions: no target to train on
    doc = squad_doc()
    doc["data"][0]["paragraphs"][1]["qas"][0]["answers"] = answers
    path = write_json(doc, tmp_path / "v2.json")
    with pytest.raises(LitNlpError) as err:
        read_squad(path)
    msg = one_line(err)
    assert str(path) in msg and "data[0].paragraphs[1].qas[0] (question id q3)" in msg and "no answer" in msg
    assert "data.allow_unanswerable=true" in msg


def test_no_questions_at_all(tmp_path):
    path = write_json({"data": [{"title": "empty", "paragraphs": []}]}, tmp_path / "empty.json")
    with pytest.raises(LitNlpError) as err:
        read_squad(path)
    assert str(path) in one_line(err)


def test_offsets_kept_on_request(tmp_path):
    doc = squad_doc()
    doc["data"][0]["paragraphs"][0]["qas"][0]["answers"] = [
        {"text": "north", "answer_start": 15}, {"text": "north ", "answer_start": 15}, {"text": " ", "answer_start": 0}]
    doc["data"][1]["paragraphs"][0]["qas"][0]["answers"] = [{"text": "the Danube", "answer_start": 16}]
    frame = read_squad(write_json(doc, tmp_path / "train.json"), keep_offsets=True)
    # every non-blank answer as written, with its start; answers (for the metrics) stay distinct and stripped
    assert [list(t) for t in frame["answer_texts"]][0] == ["north", "north "]
    assert [list(s) for s in frame["answer_starts"]][0] == [15, 15]
    assert list(frame["answers"][0]) == ["north"]
    assert "answer_texts" not in read_squad(tmp_path / "train.json").columns


def test_offsets_need_answer_start(tmp_path):
    # squad_doc's "Vienna" question has an answer without answer_start
    path = write_json(squad_doc(), tmp_path / "train.json")
    with pytest.raises(LitNlpError) as err:
        read_squad(path, keep_offsets=True)
    msg = one_line(err)
    assert str(path) in msg and "data[1].paragraphs[0].qas[0]" in msg and "'answer_start'" in msg


def test_unanswerable_questions_on_request(tmp_path):
    doc = squad_doc()
    doc["data"][0]["paragraphs"][1]["qas"][0]["answers"] = []
    doc["data"][0]["paragraphs"][1]["qas"][0]["is_impossible"] = True
    frame = read_squad(write_json(doc, tmp_path / "v2.json"), allow_unanswerable=True, keep_offsets=False)
    row = frame.set_index("id").loc["q3"]
    assert row["answer"] == "" and list(row["answers"]) == []
    assert len(frame) == 4
