"""What the predictors share: the device, how batches are shaped (eager or compiled, dynamic
or static), which inputs the model's forward takes, and reading predict.py's input= file."""

from __future__ import annotations

import csv
import inspect
import json
from pathlib import Path

import pandas as pd
import torch

from lit_nlp.data.io import read_table, require_columns
from lit_nlp.data.shapes import bucket_lengths, fill_rows
from lit_nlp.errors import LitNlpError
from lit_nlp.models.compiled import compile_for


def resolve_device(device: str) -> torch.device:
    """`auto` (CUDA when there is one), or the device named, checked to exist here."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise LitNlpError(f"device={device!r} is not a device; use auto, cpu, cuda or cuda:<index>") from None
    if chosen.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (chosen.index or 0) >= count:
            raise LitNlpError(f"device={device} but torch {torch.__version__} sees {count} CUDA device(s); "
                              "use device=cpu or device=auto")
    return chosen


def forward_keys(model: torch.nn.Module) -> set[str]:
    """The keyword arguments the model's forward takes (DistilBERT takes no token_type_ids)."""
    return set(inspect.signature(model.forward).parameters)


class BatchShapes:
    """How a predictor runs its batches: the model eagerly with dynamic padding, or compiled
    (`compile=`), and then, where it replays CUDA graphs or `static_shapes` asks for it, padded
    to the training run's bucket lengths and filled to the batch size (data/shapes.py)."""

    def __init__(self, model, device: torch.device, max_length: int, length_buckets: int = 8,
                 compile: bool | dict = False, static_shapes: bool | None = None):
        self.call = compile_for(model, compile, device.type) or model
        graphs = bool(getattr(self.call, "cuda_graphs", False))
        self.static = graphs if static_shapes is None else static_shapes
        self.buckets = bucket_lengths(max_length, length_buckets) if self.static else None

    def rows(self, features: list[dict], batch_size: int) -> list[dict]:
        """`features` filled up to the batch size with copies (only their first len(features)
        outputs are read), when shapes are static."""
        return fill_rows(features, batch_size) if self.static else features


def place_model(model, settings: dict, device: str, compile: bool | dict, static_shapes: bool | None):
    """A predictor's model on its device in eval mode, with how its batches run (BatchShapes,
    from the training run's max_length and length_buckets) and the inputs its forward takes:
    (device, model, shapes, forward keys)."""
    chosen = resolve_device(device)
    model = model.to(chosen).eval()
    shapes = BatchShapes(model, chosen, settings["max_length"], settings.get("length_buckets", 8), compile,
                         static_shapes)
    return chosen, model, shapes, forward_keys(model)


def read_input(args: dict, columns: dict[str, str | None], hint: str) -> pd.DataFrame:
    """predict.py's input=<file> (headerless with column_names=a,b), checked to hold `columns`
    (option or template field -> column); a missing one is reported with `hint`."""
    names = args.get("column_names")
    frame = read_table(args["input"], column_names=names.strip("[]").split(",") if names else None)
    require_columns(frame, columns, args["input"], hint=hint, headerless_key="column_names")
    return frame


def refuse_qa_args(args: dict) -> None:
    """question=/context= are for extractive QA models only."""
    if args["question"]:
        raise LitNlpError(f"question=... and context=... are for extractive QA models; {args['model_path']} "
                          "is not one: use text=... or input=<file>")


class EncoderPredictor:
    """What the predictors of encoder tasks (classification, extractive QA, token
    classification) hold: the model on its device with how its batches run (`place_model`),
    its tokenizer and the training run's saved settings. Each task's predictor adds its own
    reading, encoding and decoding."""

    def __init__(self, model, tokenizer, settings: dict, device: str = "auto", compile: bool | dict = False,
                 static_shapes: bool | None = None):
        self.device, self.model, self.shapes, self._forward_keys = place_model(model, settings, device, compile,
                                                                               static_shapes)
        self.tokenizer = tokenizer
        self.settings = settings


def write_predictions(results: list[dict], output: str | Path) -> Path:
    """csv (one prob_<label> column per class) or jsonl (a `probabilities` object); seq2seq
    rows carry their input columns and `prediction`, extractive QA rows theirs and answer,
    score, start, end (+ the `n_best` list in jsonl), token classification rows their
    `entities` (and `tags`), which csv cells hold as JSON text."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".jsonl":
        with open(output, "w", encoding="utf-8") as fh:
            for row in results:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif output.suffix == ".csv":
        # multi-label: the label set as one cell, "insult|obscene"; QA's n-best list stays in jsonl
        flat = [{**{k: "|".join(v) if k == "labels" else _cell(v) for k, v in r.items()
                    if k not in ("probabilities", "n_best")},
                 **{f"prob_{n}": p for n, p in r.get("probabilities", {}).items()}} for r in results]
        with open(output, "w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(flat[0]))
            writer.writeheader()
            writer.writerows(flat)
    else:
        raise LitNlpError(f"output={output}: use a .csv or .jsonl file name")
    return output




def _cell(value):
    """A csv cell: lists and mappings (entities, tokens) as JSON text."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else value
