"""Reading the official SQuAD v1.1 JSON (data[].paragraphs[].qas[].answers[]) into flat rows."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from lit_nlp.errors import LitNlpError


def read_squad(path: str | Path, encoding: str = "utf-8") -> pd.DataFrame:
    """One row per question: id, title, context, question, answer (the first gold answer, the
    training target) and answers (every distinct gold answer, for exact match / F1)."""
    path = Path(path)
    if not path.is_file():
        raise LitNlpError(f"data file not found: {path}")
    try:
        with open(path, encoding=encoding) as fh:
            doc = json.load(fh)
    except UnicodeDecodeError as err:
        raise LitNlpError(f"{path} is not valid {encoding} (bad byte at offset {err.start})") from None
    except json.JSONDecodeError as err:
        raise LitNlpError(f"{path} is not valid JSON (line {err.lineno}, column {err.colno}): {err.msg}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise LitNlpError(f"{path}: not SQuAD JSON (expected a top-level \"data\" list of articles)")
    rows, problems, no_answer = [], [], []
    for a, article in enumerate(doc["data"]):
        for p, paragraph in enumerate(article.get("paragraphs") or []):
            where = f"data[{a}].paragraphs[{p}]"
            if "context" not in paragraph or "qas" not in paragraph:
                problems.append(f"{where} lacks 'context' or 'qas'")
                continue
            for q, qa in enumerate(paragraph["qas"]):
                if "question" not in qa or "answers" not in qa:
                    problems.append(f"{where}.qas[{q}] lacks 'question' or 'answers'")
                    continue
                answers = list(dict.fromkeys(str(ans.get("text", "")).strip() for ans in qa["answers"]))
                answers = [ans for ans in answers if ans]
                if not answers:
                    no_answer.append(f"{where}.qas[{q}]")
                    continue
                rows.append({"id": qa.get("id", f"{a}-{p}-{q}"), "title": article.get("title", ""),
                             "context": paragraph["context"], "question": qa["question"],
                             "answer": answers[0], "answers": answers})
    if problems:
        raise LitNlpError(f"{path}: {len(problems)} malformed entries, first: {problems[0]}")
    if no_answer:
        raise LitNlpError(f"{path}: {len(no_answer)} questions have no answer text (first: {no_answer[0]}); "
                          "SQuAD v2-style unanswerable questions are not supported")
    if not rows:
        raise LitNlpError(f"{path}: no questions found")
    return pd.DataFrame(rows)
