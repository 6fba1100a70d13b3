"""Prediction from a run dir, a `.ckpt` or an `export/` folder, and predict.py's command line.
Loading finds the task in lit_nlp.tasks.TASKS; the task's predictor (lit_nlp/predictors/) owns
its input columns, its cleaning and batching and its output line."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch
import transformers
from hydra.utils import get_class
from transformers import AutoTokenizer

from lit_nlp.errors import LitNlpError
from lit_nlp.predictors.common import write_predictions
from lit_nlp.tasks import TASKS, Task, TaskPredictor
from lit_nlp.onnx import BACKENDS
from lit_nlp.run_layout import (
    BEST_CHECKPOINTS,
    CHECKPOINT_DIR,
    LAST_CHECKPOINT,
    ONNX_DIR,
    SETTINGS_FILE,
    export_dir,
)


def _task(settings: dict, path: Path) -> Task:
    if settings.get("task") not in TASKS:
        raise LitNlpError(f"{path} was trained for task {settings.get('task')!r}, which this lit_nlp does not "
                          f"know ({', '.join(TASKS)}); predict with the lit_nlp version that trained it")
    return TASKS[settings["task"]]


def _from_export(path: Path, device: str, backend: str = "torch", threads: int | None = None,
                 **speed) -> TaskPredictor:
    settings = json.loads((path / SETTINGS_FILE).read_text())
    task = _task(settings, path)
    if backend == "torch":
        model = get_class(task.auto_model).from_pretrained(path)
    else:  # the ONNX file of `python -m lit_nlp.onnx` in the predictor's place (same inputs, same outputs)
        from transformers import AutoConfig

        from lit_nlp.onnx import check_task
        from lit_nlp.onnx.runtime import OnnxModel

        check_task(settings["task"])
        if device == "auto":
            device = "cpu"  # onnxruntime-gpu is not a dependency
        model = OnnxModel(onnx_file(path, backend), AutoConfig.from_pretrained(path), device, threads=threads)
    return get_class(task.predictor)(model, AutoTokenizer.from_pretrained(path), settings, device=device, **speed)


def module_from_checkpoint(path: Path):
    """(the task's LightningModule with the checkpoint's weights, its data module state)."""
    try:
        # weights_only: a checkpoint cannot run code while loading
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated file, not a checkpoint, unsafe content
        raise LitNlpError(f"cannot read checkpoint {path}: {str(err).splitlines()[0]}") from None
    state = next((v for v in ckpt.values() if isinstance(v, dict) and "tokenizer_files" in v), None)
    if state is None or "hyper_parameters" not in ckpt:
        raise LitNlpError(f"{path} is not a lit_nlp checkpoint (no data module state)")
    task = _task(state["text_settings"], path)
    # the LightningModule rebuilds the architecture from the checkpoint's hyperparameters (a
    # LoRA run's base from model.backbone.pretrained), and completes a checkpoint that holds only
    # what trained with the frozen base weights, as Lightning's restore does
    module = get_class(task.module)(**ckpt["hyper_parameters"])
    module.on_load_checkpoint(ckpt)
    module.load_state_dict(ckpt["state_dict"])
    return module, state


def _from_checkpoint(path: Path, device: str, **speed) -> TaskPredictor:
    module, state = module_from_checkpoint(path)
    task = TASKS[state["text_settings"]["task"]]
    settings = {**state["text_settings"], **module.export_settings()}  # the checkpoint's own threshold
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in state["tokenizer_files"].items():
            (Path(tmp) / name).write_text(text)
        tokenizer = AutoTokenizer.from_pretrained(tmp)
    return get_class(task.predictor)(module.model, tokenizer, settings, device=device, **speed)


def onnx_file(export: Path, backend: str) -> Path:
    """The export's ONNX file for backend onnx or onnx-int8."""
    from lit_nlp.onnx.export import INT8_FILE, MODEL_FILE

    path = export / ONNX_DIR / (INT8_FILE if backend == "onnx-int8" else MODEL_FILE)
    if not path.is_file():
        raise LitNlpError(f"{path} not found; write it with: python -m lit_nlp.onnx {export}")
    return path


def find_checkpoint(run_dir: Path) -> Path | None:
    """The best checkpoint of a run dir, else last.ckpt."""
    ckpts = run_dir / CHECKPOINT_DIR
    best = sorted(ckpts.glob(BEST_CHECKPOINTS), key=lambda p: p.stat().st_mtime)
    if best:
        return best[-1]
    return ckpts / LAST_CHECKPOINT if (ckpts / LAST_CHECKPOINT).is_file() else None


def load_predictor(model_path: str | Path, device: str = "auto", compile: bool | dict = False,
                   static_shapes: bool | None = None, backend: str = "torch",
                   threads: int | None = None) -> TaskPredictor:
    """`model_path`: an export folder, a run dir (its export, else its best checkpoint) or a .ckpt.
    `compile`: as `model.compile` in training (on a GPU: CUDA graphs, with static shapes);
    `static_shapes`: force them on or off (None: with CUDA graphs). See predictors.common.BatchShapes.
    `backend`: torch, or onnx / onnx-int8 (the export's ONNX files, written by python -m lit_nlp.onnx);
    `threads`: ONNX Runtime's threads (default: one per core)."""
    speed = {"compile": compile, "static_shapes": static_shapes}
    path = Path(model_path).expanduser()
    if not path.exists():
        raise LitNlpError(f"model_path not found: {path}")
    if backend not in BACKENDS:
        raise LitNlpError(f"backend={backend} is not one of {', '.join(BACKENDS)}")
    if backend != "torch":
        if compile:
            raise LitNlpError("compile= is for backend=torch; ONNX Runtime optimises the graph itself")
        folder = path if (path / SETTINGS_FILE).is_file() else export_dir(path)
        if not (folder / SETTINGS_FILE).is_file():
            raise LitNlpError(f"backend={backend} reads an export folder; {path} is not one and holds none "
                              "(a .ckpt has no ONNX file: pass its run dir)")
        return _from_export(folder, device, backend, threads)
    if path.is_file():
        if path.suffix != ".ckpt":
            raise LitNlpError(f"model_path {path} is a file but not a .ckpt; pass a run dir, export dir or .ckpt")
        return _from_checkpoint(path, device, **speed)
    if (path / SETTINGS_FILE).is_file():
        return _from_export(path, device, **speed)
    if (export_dir(path) / SETTINGS_FILE).is_file():
        return _from_export(export_dir(path), device, **speed)
    ckpt = find_checkpoint(path)
    if ckpt is not None:
        return _from_checkpoint(ckpt, device, **speed)
    raise LitNlpError(f"{path} holds no export/ ({SETTINGS_FILE}) and no checkpoints/*.ckpt; "
                      "pass a run dir written by train.py, its export/ or a .ckpt")


# ---------------------------------------------------------------------------- command line
OPTIONS = {
    "model_path": "run dir, .ckpt or export dir (required)",
    "text": "a text to classify or tag (or, for seq2seq, the source); repeat text=... or give a JSON list",
    "text_pair": "the second text of a pair task (with one text=)",
    "input": "a csv/tsv/jsonl/json/parquet file of texts (seq2seq: with the template's columns; "
             "token classification: also a CoNLL file, or token lists)",
    "text_column": "the input's text column (default: the training config's)",
    "text_pair_column": "the input's second text column, for pair tasks",
    "tokens_column": "token classification: the input's list-of-tokens column (default: the training config's)",
    "question": "extractive QA: a question about context=...; repeat question=... for several",
    "context": "extractive QA: the text to find the answer in (one for all questions, or one per question)",
    "question_column": "extractive QA: the input's question column (default: the training config's)",
    "context_column": "extractive QA: the input's context column (default: the training config's)",
    "column_names": "the input's columns, comma-separated, for a csv/tsv without a header row (text,label)",
    "output": "write predictions to this .csv or .jsonl (default: print them)",
    "batch_size": "texts per batch (default 32)",
    "device": "auto | cpu | cuda | cuda:1 (default auto)",
    "compile": "true: compile the model as model.compile=true trains it (on a GPU: CUDA graphs, static shapes)",
    "backend": "torch (default) | onnx | onnx-int8: the export's ONNX files (python -m lit_nlp.onnx <run dir>)",
    "threshold": "multi-label: predict a label from this probability on (default: the model's own)",
}


def parse_args(argv: list[str]) -> dict:
    """key=value arguments. Values are taken literally (no quoting rules), so
    text="a gorgeous, witty film" arrives whole."""
    args: dict = {"text": [], "question": [], "context": []}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in OPTIONS:
            raise LitNlpError(f"unknown argument {arg!r}; use key=value with keys: {', '.join(OPTIONS)}")
        if key in ("question", "context"):
            args[key].append(value)
        elif key == "text":
            if value.startswith("[") and value.endswith("]"):
                try:
                    args["text"].extend(str(t) for t in json.loads(value))
                    continue
                except json.JSONDecodeError:
                    pass
            args["text"].append(value)
        else:
            args[key] = value
    if "model_path" not in args:
        raise LitNlpError("model_path=<run dir | .ckpt | export dir> is required")
    if args["question"] or args["context"]:
        if args["text"] or "input" in args:
            raise LitNlpError("give question=... context=..., or text=..., or input=<file>, not several")
        if not args["question"] or len(args["context"]) not in (1, len(args["question"])):
            raise LitNlpError(f"got {len(args['question'])} question=... and {len(args['context'])} context=...; "
                              "give one context for all questions, or one per question")
        return args
    if bool(args["text"]) == ("input" in args):
        raise LitNlpError("give either text=... or input=<file>")
    return args


def _batch_size(args: dict) -> int:
    try:
        return int(args.get("batch_size", 32))
    except ValueError:
        raise LitNlpError(f"batch_size must be a whole number, got {args['batch_size']!r}") from None


def run(argv: list[str]) -> list[dict]:
    """predict.py's command line: key=value arguments (see OPTIONS). The task's predictor turns
    them into rows, predicts and formats each result as one console line."""
    args = parse_args(argv)
    transformers.utils.logging.disable_progress_bar()  # per-file "Loading weights" bars
    compile = args.get("compile", "false").lower()
    if compile not in ("true", "false"):
        raise LitNlpError(f"compile must be true or false, got {args['compile']!r}")
    predictor = load_predictor(args["model_path"], args.get("device", "auto"), compile=compile == "true",
                               backend=args.get("backend", "torch"))
    rows = predictor.rows_from_args(args)
    results = predictor.predict_rows(rows, _batch_size(args))
    if "output" in args:
        # a task with a file format of its own (CoNLL) writes it; the others jsonl or csv
        writer = getattr(predictor, "write_output", write_predictions)
        path = writer(results, args["output"])
        print(f"wrote {len(results)} predictions to {path}", file=sys.stderr)
    else:
        for row in results:
            print(predictor.format_row(row))
    return results
