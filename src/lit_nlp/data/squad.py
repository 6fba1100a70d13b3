"""Reading the official SQuAD JSON (data[].paragraphs[].qas[].answers[]) into flat rows: v1.1
as it is, and v2's unanswerable questions (no answer) when asked for."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from lit_nlp.errors import LitNlpError


def read_squad(path: str | Path, encoding: str = "utf-8", allow_unanswerable: bool = False,
               keep_offsets: bool = False) -> pd.DataFrame:
    """One row per question: id, title, context, question, answer (the first gold answer, the
    training target) and answers (every distinct gold answer, for exact match / F1).

    keep_offsets: also `answer_texts` and `answer_starts`, every gold answer as written (not
    stripped, not de-duplicated) with its character start in the context, which span extraction
    labels from; an answer without `answer_start` is then an error.
    allow_unanswerable: a question without answer text (SQuAD v2's is_impossible) is kept with
    answer "" and no answers, instead of being an error."""
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
                place = f"{where}.qas[{q}] (question id {qa.get('id', '?')})"
                if "question" not in qa or "answers" not in qa:
                    problems.append(f"{place} lacks 'question' or 'answers'")
                    continue
                given = [ans for ans in qa["answers"] if str(ans.get("text", "")).strip()]
                answers = list(dict.fromkeys(str(ans["text"]).strip() for ans in given))
                if not answers and not allow_unanswerable:
                    no_answer.append(place)
                    continue
                row = {"id": qa.get("id", f"{a}-{p}-{q}"), "title": article.get("title", ""),
                       "context": paragraph["context"], "question": qa["question"],
                       "answer": answers[0] if answers else "", "answers": answers}
                if keep_offsets:
                    lacking = [i for i, ans in enumerate(given) if not isinstance(ans.get("answer_start"), int)]
                    if lacking:
                        problems.append(f"{place} answer {lacking[0]} lacks an integer 'answer_start'")
                        continue
                    row["answer_texts"] = [str(ans["text"]) for ans in given]
                    row["answer_starts"] = [ans["answer_start"] for ans in given]
                rows.append(row)
    if problems:
        raise LitNlpError(f"{path}: {len(problems)} malformed entries, first: {problems[0]}")
    if no_answer:
        raise LitNlpError(f"{path}: {len(no_answer)} questions have no answer text (first: {no_answer[0]}); "
                          "SQuAD v2-style unanswerable questions need data.allow_unanswerable=true "
                          "(extractive QA: data=extractive_qa)")
    if not rows:
        raise LitNlpError(f"{path}: no questions found")
    return pd.DataFrame(rows)
