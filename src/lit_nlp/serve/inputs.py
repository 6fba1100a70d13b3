"""What one input of POST /predict holds for the model's task (the fields predict.py takes), and
the checks a request body passes before it reaches a model worker: each problem named with its
item, its field and the fix, all in one line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from lit_nlp.codecs.seq2seq import template_fields
from lit_nlp.errors import LitNlpError

# JSON's names for what json.loads returns
JSON_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "a number",
              float: "a number", type(None): "null"}
SHOWN_PROBLEMS = 3  # a request with more names the first three and counts the rest


class RequestError(Exception):
    """A request the server refuses: its HTTP `status`, a `kind` for /metrics' error counts,
    and one line that says what to fix."""

    def __init__(self, kind: str, message: str, status: int = 422):
        super().__init__(message)
        self.kind, self.message, self.status = kind, message, status


@dataclass(frozen=True)
class Inputs:
    """The fields one input may hold: each accepted set (`shapes`, the first the usual one),
    the fields that are lists of words, and the predictor's row column of each request field
    where the two differ (extractive QA: the training run's question and context columns)."""

    task: str
    shapes: tuple[tuple[str, ...], ...]
    word_lists: frozenset[str] = frozenset()
    columns: dict[str, str] = field(default_factory=dict)

    @property
    def fields(self) -> list[str]:
        return list(dict.fromkeys(f for shape in self.shapes for f in shape))

    def example(self, shape: int = 0) -> dict:
        return {f: ["word", "..."] if f in self.word_lists else "..." for f in self.shapes[shape]}

    def describe(self) -> str:
        """The accepted objects, as a user would type them."""
        return " or ".join(json.dumps(self.example(i)) for i in range(len(self.shapes)))

    def to_row(self, item: dict) -> dict:
        """A checked input as the predictor's predict_rows reads it."""
        return {self.columns.get(k, k): v for k, v in item.items()}

    def from_row(self, row: dict) -> dict:
        """A predicted row with the request's field names again."""
        back = {column: name for name, column in self.columns.items()}
        return {back.get(k, k): v for k, v in row.items()}


def _classification(settings: dict) -> Inputs:
    # a pair model (NLI, paraphrase) needs both texts in every input, as in training
    return Inputs("classification", (("text", "text_pair"),) if settings.get("text_pair_column") else (("text",),))


def _seq2seq(settings: dict) -> Inputs:
    # the template's columns, or one `text` taken as predict.py's text= takes it (the whole
    # source, or the one column of a one-column template)
    fields = tuple(template_fields(settings["source_template"]))
    return Inputs("seq2seq", (fields,) if fields == ("text",) else (fields, ("text",)))


def _extractive_qa(settings: dict) -> Inputs:
    return Inputs("extractive_qa", (("question", "context"),),
                  columns={"question": settings["question_column"], "context": settings["context_column"]})


def _token_classification(settings: dict) -> Inputs:
    return Inputs("token_classification", (("text",), ("tokens",)), word_lists=frozenset({"tokens"}))


# text_settings()["task"] -> its request fields; a new task adds one line
TASK_INPUTS = {"classification": _classification, "seq2seq": _seq2seq, "extractive_qa": _extractive_qa,
               "token_classification": _token_classification}


def task_inputs(settings: dict) -> Inputs:
    """The request fields of a model, from its saved text settings."""
    task = settings.get("task")
    if task not in TASK_INPUTS:
        raise LitNlpError(f"serve.py does not know the inputs of a {task!r} model ({', '.join(TASK_INPUTS)})")
    return TASK_INPUTS[task](settings)


def read_request(body: bytes, inputs: Inputs, max_chars: int, max_items: int) -> tuple[list[dict], bool]:
    """The inputs of a POST /predict body (one object, or a list of them) and whether it was
    one object; RequestError for the first thing wrong with the body, or for every input
    problem found (the first SHOWN_PROBLEMS named)."""
    example = inputs.describe()
    if not body.strip():
        raise RequestError("malformed_json", f"the body is empty; send {example}, or a list of such objects", 400)
    try:
        payload = json.loads(body)
    except json.JSONDecodeError as err:
        raise RequestError("malformed_json", f"the body is not valid JSON ({err.msg}: line {err.lineno}, column "
                                             f"{err.colno}); send {example}, or a list of such objects", 400) from None
    except (UnicodeDecodeError, RecursionError):
        raise RequestError("malformed_json", f"the body is not UTF-8 JSON text of sane depth; send {example}",
                           400) from None
    single = isinstance(payload, dict)
    items = [payload] if single else payload
    if not isinstance(items, list):
        raise RequestError("wrong_type", f"the body must be a JSON object like {example} or a list of them, "
                                         f"got {_json_type(payload)}")
    if not items:
        raise RequestError("empty", f"the list is empty; send 1 to {max_items} objects like {example}")
    if len(items) > max_items:
        raise RequestError("too_many_items", f"{len(items)} items, over max_items={max_items}; send at most "
                                             f"{max_items} per request (or start the server with a larger max_items=)")
    problems = [(i, kind, message) for i, item in enumerate(items)
                for kind, message in _item_problems(item, inputs, max_chars)]
    if problems:
        shown = [message if single else f"items[{i}]: {message}" for i, _, message in problems[:SHOWN_PROBLEMS]]
        more = f" (and {len(problems) - SHOWN_PROBLEMS} more)" if len(problems) > SHOWN_PROBLEMS else ""
        raise RequestError(problems[0][1], "; ".join(shown) + more)
    return items, single


def _item_problems(item, inputs: Inputs, max_chars: int) -> list[tuple[str, str]]:
    """(kind, message) for each problem of one input."""
    if not isinstance(item, dict):
        return [("wrong_type", f"must be a JSON object like {inputs.describe()}, got {_json_type(item)}")]
    # what is unknown and what is missing, in one message with one example
    wrong = []
    unknown = [k for k in item if k not in inputs.fields]
    if unknown:
        wrong.append(("unknown_field", "unknown field " + ", ".join(json.dumps(k)[:60] for k in unknown)))
    given = [k for k in item if k in inputs.fields]
    if not any(set(shape) == set(given) for shape in inputs.shapes):
        fitting = [shape for shape in inputs.shapes if set(given) <= set(shape)]
        if fitting:
            wrong.append(("missing_field", "missing field " + ", ".join(f for f in fitting[0] if f not in given)))
        else:
            wrong.append(("mixed_fields", f"fields {', '.join(given)} do not go together"))
    problems = [(wrong[0][0], f"{', '.join(m for _, m in wrong)}; a {inputs.task} model takes {inputs.describe()}")
                ] if wrong else []
    for key in given:
        problems += _value_problems(key, item[key], inputs, max_chars)
    return problems


def _value_problems(key: str, value, inputs: Inputs, max_chars: int) -> list[tuple[str, str]]:
    if key in inputs.word_lists:
        if not isinstance(value, list):
            return [("wrong_type", f"field {key} must be a list of words (strings), got {_json_type(value)}")]
        if not value:
            return [("empty", f"field {key} is an empty list")]
        bad = next((i for i, word in enumerate(value) if not isinstance(word, str) or not word.strip()), None)
        if bad is not None:
            kind = "empty" if isinstance(value[bad], str) else "wrong_type"
            return [(kind, f"{key}[{bad}] must be a non-empty string, got {_json_type(value[bad])}"
                           + (" without text" if kind == "empty" else ""))]
        chars = sum(len(word) for word in value) + len(value) - 1  # the words joined by spaces
    else:
        if not isinstance(value, str):
            return [("wrong_type", f"field {key} must be a string, got {_json_type(value)}")]
        if not value.strip():
            return [("empty", f"field {key} is empty")]
        chars = len(value)
    if chars > max_chars:
        return [("too_long", f"field {key} has {chars:,} characters, over max_chars={max_chars}; shorten it "
                             "(or start the server with a larger max_chars=)")]
    return []


def _json_type(value) -> str:
    return JSON_TYPES.get(type(value), type(value).__name__)
