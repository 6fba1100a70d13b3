"""Prediction from a run dir, a `.ckpt` or an `export/` folder: the saved cleaning and
tokenizer prepare raw text exactly as in training; batched; CPU or GPU."""

from __future__ import annotations

import csv
import inspect
import json
import logging
import sys
import tempfile
from pathlib import Path

import torch
import transformers
from transformers import (
    AutoModelForQuestionAnswering,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

from lit_nlp.callbacks.export import SETTINGS_FILE
from lit_nlp.data.classification import pad_batch, tokenize
from lit_nlp.data.cleaning import TextCleaner
from lit_nlp.data.extractive_qa import collate_qa, encode_windows, question_too_long
from lit_nlp.data.io import read_table, require_columns
from lit_nlp.data.seq2seq import encode_sources, pad_seq2seq, template_fields
from lit_nlp.data.shapes import bucket_lengths, fill_rows
from lit_nlp.errors import LitNlpError
from lit_nlp.models.compiled import compile_for
from lit_nlp.models.span_decoding import QuestionAnswers, decode_batch

log = logging.getLogger(__name__)


def _device(device: str) -> torch.device:
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


class Predictor:
    """A model, its tokenizer and its text settings (cleaning, max length, labels; multi-label:
    the decision threshold)."""

    def __init__(self, model, tokenizer, settings: dict, device: str = "auto", compile: bool | dict = False,
                 static_shapes: bool | None = None):
        self.device = _device(device)
        self.model = model.to(self.device).eval()
        self.shapes = BatchShapes(self.model, self.device, settings["max_length"], settings.get("length_buckets", 8),
                                  compile, static_shapes)
        self.tokenizer = tokenizer
        self.settings = settings
        self.cleaner = TextCleaner(**settings["cleaning"])
        self.label_names = settings["label_names"]
        self.multi_label = settings.get("multi_label", False)
        self.threshold = settings.get("threshold", 0.5)
        # DistilBERT takes no token_type_ids
        self._forward_keys = set(inspect.signature(self.model.forward).parameters)

    @torch.inference_mode()
    def predict(self, texts: list[str], pairs: list[str] | None = None, batch_size: int = 32) -> list[dict]:
        """One dict per text: the cleaned-input's predicted `label`, its `score` and every class's
        probability; multi-label: the `labels` whose probability reaches the threshold, and
        every label's probability (a sigmoid each). Texts are processed in length order (less
        padding) and returned in input order."""
        cleaned = [self.cleaner(t) for t in texts]
        cleaned_pairs = [self.cleaner(p) for p in pairs] if pairs is not None else None
        order = sorted(range(len(texts)), key=lambda i: len(cleaned[i]))
        probs = [None] * len(texts)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            enc = tokenize(self.tokenizer, [cleaned[i] for i in idx],
                           [cleaned_pairs[i] for i in idx] if cleaned_pairs else None, self.settings["max_length"])
            rows = [{k: enc[k][j] for k in enc} for j in range(len(idx))]
            batch = pad_batch(self.shapes.rows(rows, batch_size), self.tokenizer.pad_token_id,
                              buckets=self.shapes.buckets)
            batch = {k: v.to(self.device) for k, v in batch.items() if k in self._forward_keys}
            logits = self.shapes.call(**batch).logits[:len(idx)].float()
            out = (logits.sigmoid() if self.multi_label else logits.softmax(-1)).cpu()
            for j, i in enumerate(idx):
                probs[i] = out[j]
        results = []
        for i, p in enumerate(probs):
            row = {"text": texts[i], **({"text_pair": pairs[i]} if pairs is not None else {})}
            if self.multi_label:
                row["labels"] = [n for n, v in zip(self.label_names, p) if v >= self.threshold]
            else:
                best = int(p.argmax())
                row.update(label=self.label_names[best], score=float(p[best]))
            results.append({**row, "probabilities": {n: float(v) for n, v in zip(self.label_names, p)}})
        return results


class Seq2SeqPredictor:
    """A seq2seq model with its template, cleaning and generation settings (the model's
    generation_config, as saved by training)."""

    def __init__(self, model, tokenizer, settings: dict, device: str = "auto", compile: bool | dict = False,
                 static_shapes: bool | None = None):
        self.device = _device(device)
        self.model = model.to(self.device).eval()
        if compile or static_shapes:
            # generate() calls the model with a new length at every token: it runs eagerly
            log.warning("compile=/static_shapes= do not apply to seq2seq prediction (generation runs eagerly)")
        self.tokenizer = tokenizer
        self.settings = settings
        self.cleaner = TextCleaner(**settings["cleaning"])
        self.fields = template_fields(settings["source_template"])

    @torch.inference_mode()
    def predict_rows(self, rows: list[dict], batch_size: int = 16, whole_source: bool = False) -> list[dict]:
        """Each row holds the template's columns (or, with `whole_source`, a finished source
        under "source"); returns the rows with a `prediction`."""
        template, truncate = self.settings["source_template"], self.settings["truncate_column"]
        fields = self.fields
        if whole_source:
            template, truncate, fields = "{source}", None, ["source"]
        cleaned = [{f: self.cleaner(str(row[f])) for f in fields} for row in rows]
        predictions = []
        for start in range(0, len(rows), batch_size):
            chunk = cleaned[start:start + batch_size]
            enc = encode_sources(self.tokenizer, chunk, template, truncate, self.settings["max_source_length"])
            batch = pad_seq2seq([{"input_ids": i, "attention_mask": m}
                                 for i, m in zip(enc["input_ids"], enc["attention_mask"])], self.tokenizer.pad_token_id)
            out = self.model.generate(**{k: v.to(self.device) for k, v in batch.items()},
                                      generation_config=self.model.generation_config)
            predictions += [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]
        return [{**row, "prediction": p} for row, p in zip(rows, predictions)]

    def predict(self, texts: list[str], pairs: list[str] | None = None, batch_size: int = 16) -> list[dict]:
        """`text=` input: fills a one-column template (summarize: {document}); with a template of
        several columns the text is taken as the whole source, as the template would write it."""
        if len(self.fields) == 1:
            rows = self.predict_rows([{self.fields[0]: t} for t in texts], batch_size)
        else:
            rows = self.predict_rows([{"source": t} for t in texts], batch_size, whole_source=True)
        return [{"text": t, "prediction": r["prediction"]} for t, r in zip(texts, rows)]


class SpanQAPredictor:
    """An extractive QA model with its windowing and decoding settings: the answer to a
    question is the best span of its context, found and scored as in validation."""

    def __init__(self, model, tokenizer, settings: dict, device: str = "auto", compile: bool | dict = False,
                 static_shapes: bool | None = None):
        self.device = _device(device)
        self.model = model.to(self.device).eval()
        self.shapes = BatchShapes(self.model, self.device, settings["max_length"], settings.get("length_buckets", 8),
                                  compile, static_shapes)
        self.tokenizer = tokenizer
        self.settings = settings
        self._forward_keys = set(inspect.signature(self.model.forward).parameters)

    @torch.inference_mode()
    def answer(self, questions: list[str], contexts: list[str], batch_size: int = 32) -> list[dict]:
        """One dict per question: `answer` (text of its context), `score`, `start`/`end` (the
        answer is context[start:end]) and `n_best` (the ranked answers)."""
        s = self.settings
        questions = [q.strip() for q in questions]
        long = question_too_long(self.tokenizer, questions, s["max_length"], s["doc_stride"])
        if long:
            raise LitNlpError(f"{len(long)} questions leave no room for context in the model's max_length "
                              f"{s['max_length']} (first: {questions[long[0]][:80]!r}); shorten them")
        windows = encode_windows(self.tokenizer, questions, contexts, s["max_length"], s["doc_stride"])
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in windows]
        features = [{**{k: windows[k][i] for k in keys}, "offsets": windows["offsets"][i],
                     "word_ids": windows["word_ids"][i], "context": contexts[windows["example"][i]]}
                    for i in range(len(windows["input_ids"]))]
        questions_answers = [QuestionAnswers() for _ in questions]
        # windows in length order (less padding); each goes back to its question
        order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = collate_qa(self.shapes.rows([features[i] for i in idx], batch_size), self.tokenizer.pad_token_id,
                               buckets=self.shapes.buckets)
            inputs = {k: batch[k].to(self.device) for k in keys if k in self._forward_keys}
            out = self.shapes.call(**inputs)
            n = len(idx)  # filler copies past the real windows are not decoded
            real = {k: v[:n] for k, v in batch.items() if isinstance(v, (list, torch.Tensor))}
            decoded = decode_batch(out.start_logits[:n], out.end_logits[:n], real, s["max_answer_length"],
                                   s["n_best"], s["align_to_words"])
            for i, (answers, no_answer) in zip(idx, decoded):
                questions_answers[windows["example"][i]].add_window(answers, no_answer)
        return [q.best(s["n_best"], s["unanswerable"]) for q in questions_answers]

    def predict_rows(self, rows: list[dict], batch_size: int = 32, question_column: str | None = None,
                     context_column: str | None = None) -> list[dict]:
        """Rows with a question and a context column (the training columns unless named); each
        comes back with answer, score, start, end and n_best added."""
        qcol = question_column or self.settings["question_column"]
        ccol = context_column or self.settings["context_column"]
        questions = ["" if row[qcol] is None else str(row[qcol]) for row in rows]
        contexts = ["" if row[ccol] is None else str(row[ccol]) for row in rows]
        return [{**row, **answer} for row, answer in zip(rows, self.answer(questions, contexts, batch_size))]

    def predict(self, texts: list[str], pairs: list[str] | None = None, batch_size: int = 32) -> list[dict]:
        """Questions (`texts`) and their contexts (`pairs`)."""
        if pairs is None or len(pairs) != len(texts):
            raise LitNlpError("extractive QA needs a context for every question: question=... context=...")
        return self.predict_rows([{"question": q, "context": c} for q, c in zip(texts, pairs)], batch_size,
                                 "question", "context")


# settings["task"] -> (Hugging Face auto class, LightningModule, predictor); the modules are
# imported only for checkpoints, which need them to rebuild the architecture
TASKS = {
    "classification": (AutoModelForSequenceClassification, "lit_nlp.models.classification.ClassificationModule",
                       Predictor),
    "seq2seq": (AutoModelForSeq2SeqLM, "lit_nlp.models.seq2seq.Seq2SeqModule", Seq2SeqPredictor),
    "extractive_qa": (AutoModelForQuestionAnswering, "lit_nlp.models.extractive_qa.ExtractiveQAModule",
                      SpanQAPredictor),
}


def _from_export(path: Path, device: str, **speed):
    settings = json.loads((path / SETTINGS_FILE).read_text())
    auto_class, _, predictor = TASKS[settings["task"]]
    return predictor(auto_class.from_pretrained(path), AutoTokenizer.from_pretrained(path), settings, device, **speed)


def _from_checkpoint(path: Path, device: str, **speed):
    from hydra.utils import get_class

    try:
        # weights_only: a checkpoint cannot run code while loading
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated file, not a checkpoint, unsafe content
        raise LitNlpError(f"cannot read checkpoint {path}: {str(err).splitlines()[0]}") from None
    state = next((v for v in ckpt.values() if isinstance(v, dict) and "tokenizer_files" in v), None)
    if state is None or "hyper_parameters" not in ckpt:
        raise LitNlpError(f"{path} is not a lit_nlp checkpoint (no data module state)")
    settings = state["text_settings"]
    _, module_class, predictor = TASKS[settings["task"]]
    module = get_class(module_class)(**ckpt["hyper_parameters"])
    module.load_state_dict(ckpt["state_dict"])
    settings = {**settings, **getattr(module, "export_settings", dict)()}  # the checkpoint's own threshold
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in state["tokenizer_files"].items():
            (Path(tmp) / name).write_text(text)
        tokenizer = AutoTokenizer.from_pretrained(tmp)
    return predictor(module.model, tokenizer, settings, device, **speed)


def find_checkpoint(run_dir: Path) -> Path | None:
    """The best checkpoint of a run dir, else last.ckpt."""
    ckpts = run_dir / "checkpoints"
    best = sorted(ckpts.glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)
    if best:
        return best[-1]
    return ckpts / "last.ckpt" if (ckpts / "last.ckpt").is_file() else None


def load_predictor(model_path: str | Path, device: str = "auto", compile: bool | dict = False,
                   static_shapes: bool | None = None) -> Predictor | Seq2SeqPredictor | SpanQAPredictor:
    """`model_path`: an export folder, a run dir (its export, else its best checkpoint) or a .ckpt.
    `compile`: as `model.compile` in training (on a GPU: CUDA graphs, with static shapes);
    `static_shapes`: force them on or off (None: with CUDA graphs). See BatchShapes."""
    speed = {"compile": compile, "static_shapes": static_shapes}
    path = Path(model_path).expanduser()
    if not path.exists():
        raise LitNlpError(f"model_path not found: {path}")
    if path.is_file():
        if path.suffix != ".ckpt":
            raise LitNlpError(f"model_path {path} is a file but not a .ckpt; pass a run dir, export dir or .ckpt")
        return _from_checkpoint(path, device, **speed)
    if (path / SETTINGS_FILE).is_file():
        return _from_export(path, device, **speed)
    if (path / "export" / SETTINGS_FILE).is_file():
        return _from_export(path / "export", device, **speed)
    ckpt = find_checkpoint(path)
    if ckpt is not None:
        return _from_checkpoint(ckpt, device, **speed)
    raise LitNlpError(f"{path} holds no export/ ({SETTINGS_FILE}) and no checkpoints/*.ckpt; "
                      "pass a run dir written by train.py, its export/ or a .ckpt")


def write_predictions(results: list[dict], output: str | Path) -> Path:
    """csv (one prob_<label> column per class) or jsonl (a `probabilities` object); seq2seq
    rows carry their input columns and `prediction`, extractive QA rows theirs and answer,
    score, start, end (+ the `n_best` list in jsonl)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".jsonl":
        with open(output, "w", encoding="utf-8") as fh:
            for row in results:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif output.suffix == ".csv":
        # multi-label: the label set as one cell, "insult|obscene"; QA's n-best list stays in jsonl
        flat = [{**{k: "|".join(v) if k == "labels" else v for k, v in r.items() if k not in ("probabilities", "n_best")},
                 **{f"prob_{n}": p for n, p in r.get("probabilities", {}).items()}} for r in results]
        with open(output, "w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(flat[0]))
            writer.writeheader()
            writer.writerows(flat)
    else:
        raise LitNlpError(f"output={output}: use a .csv or .jsonl file name")
    return output


# ---------------------------------------------------------------------------- command line
OPTIONS = {
    "model_path": "run dir, .ckpt or export dir (required)",
    "text": "a text to classify (or, for seq2seq, the source); repeat text=... or give a JSON list",
    "text_pair": "the second text of a pair task (with one text=)",
    "input": "a csv/tsv/jsonl/json/parquet file of texts (seq2seq: with the template's columns)",
    "text_column": "the input's text column (default: the training config's)",
    "text_pair_column": "the input's second text column, for pair tasks",
    "question": "extractive QA: a question about context=...; repeat question=... for several",
    "context": "extractive QA: the text to find the answer in (one for all questions, or one per question)",
    "question_column": "extractive QA: the input's question column (default: the training config's)",
    "context_column": "extractive QA: the input's context column (default: the training config's)",
    "column_names": "the input's columns, comma-separated, for a csv/tsv without a header row (text,label)",
    "output": "write predictions to this .csv or .jsonl (default: print them)",
    "batch_size": "texts per batch (default 32)",
    "device": "auto | cpu | cuda | cuda:1 (default auto)",
    "compile": "true: compile the model as model.compile=true trains it (on a GPU: CUDA graphs, static shapes)",
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


def _run_qa(predictor: SpanQAPredictor, args: dict) -> list[dict]:
    """predict.py for an extractive QA model: question=... context=... or input=<file>."""
    if "input" in args:
        names = args.get("column_names")
        frame = read_table(args["input"], column_names=names.strip("[]").split(",") if names else None)
        qcol = args.get("question_column") or predictor.settings["question_column"]
        ccol = args.get("context_column") or predictor.settings["context_column"]
        require_columns(frame, {"question_column": qcol, "context_column": ccol}, args["input"],
                        hint="set question_column=<column> context_column=<column>", headerless_key="column_names")
        rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
        results = predictor.predict_rows(rows, _batch_size(args), qcol, ccol)
    elif args["question"]:
        contexts = args["context"] * len(args["question"]) if len(args["context"]) == 1 else args["context"]
        results = predictor.predict(args["question"], contexts, _batch_size(args))
    else:
        raise LitNlpError("an extractive QA model answers question=... context=... or input=<file> with those "
                          "columns; text=... is not enough")
    if "output" in args:
        path = write_predictions(results, args["output"])
        print(f"wrote {len(results)} predictions to {path}", file=sys.stderr)
    else:
        for row in results:
            print(f"{row['answer']}\t{row['score']:.4f}\t{row['start']}\t{row['end']}")
    return results


def run(argv: list[str]) -> list[dict]:
    """predict.py's command line: key=value arguments (see OPTIONS)."""
    args = parse_args(argv)
    transformers.utils.logging.disable_progress_bar()  # per-file "Loading weights" bars
    compile = args.get("compile", "false").lower()
    if compile not in ("true", "false"):
        raise LitNlpError(f"compile must be true or false, got {args['compile']!r}")
    predictor = load_predictor(args["model_path"], args.get("device", "auto"), compile=compile == "true")
    if isinstance(predictor, SpanQAPredictor):
        return _run_qa(predictor, args)
    if args["question"]:
        raise LitNlpError(f"question=... and context=... are for extractive QA models; {args['model_path']} "
                          "is not one: use text=... or input=<file>")
    if "threshold" in args:
        if not getattr(predictor, "multi_label", False):
            raise LitNlpError("threshold= applies to multi-label models only")
        try:
            predictor.threshold = float(args["threshold"])
        except ValueError:
            raise LitNlpError(f"threshold must be a number between 0 and 1, got {args['threshold']!r}") from None
    pairs = None
    rows = None
    if "input" in args:
        names = args.get("column_names")
        frame = read_table(args["input"], column_names=names.strip("[]").split(",") if names else None)
        if isinstance(predictor, Seq2SeqPredictor):
            require_columns(frame, {f"source_template field '{f}'": f for f in predictor.fields}, args["input"],
                            hint=f"the model's template is {predictor.settings['source_template']!r}",
                            headerless_key="column_names")
            rows = frame.to_dict("records")
        else:
            text_column = args.get("text_column") or predictor.settings.get("text_column") or "text"
            pair_column = args.get("text_pair_column") or predictor.settings.get("text_pair_column")
            require_columns(frame, {"text_column": text_column, "text_pair_column": pair_column}, args["input"],
                            hint="set text_column=<column>", headerless_key="column_names")
            texts = frame[text_column].fillna("").astype(str).tolist()
            if pair_column:
                pairs = frame[pair_column].fillna("").astype(str).tolist()
    else:
        texts = args["text"]
        if "text_pair" in args:
            if len(texts) != 1:
                raise LitNlpError("text_pair=... goes with exactly one text=...")
            pairs = [args["text_pair"]]
    batch_size = _batch_size(args)
    if rows is not None:
        results = predictor.predict_rows(rows, batch_size=batch_size)
    else:
        results = predictor.predict(texts, pairs, batch_size=batch_size)
    if "output" in args:
        path = write_predictions(results, args["output"])
        print(f"wrote {len(results)} predictions to {path}", file=sys.stderr)
    elif isinstance(predictor, Seq2SeqPredictor):
        for row in results:
            print(row["prediction"])
    elif getattr(predictor, "multi_label", False):
        for row in results:
            shown = " ".join(f"{n}={row['probabilities'][n]:.4f}" for n in row["labels"]) or "(no label)"
            print(f"{shown}\t{row['text']}")
    else:
        for row in results:
            print(f"{row['label']}\t{row['score']:.4f}\t{row['text']}")
    return results
