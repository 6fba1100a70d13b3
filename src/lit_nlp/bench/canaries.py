"""Crash canaries: a few steps of `train()` and a prediction per task, in each mixed precision,
on the plain path and on the compiled fast path, on the benchmark's device. Tiny random-init
models on synthetic rows written here, so the check needs no data, no hub and little time;
what it looks for is a crash (the fused-AdamW clipping failure took every GPU run down at its
first optimizer step, and no CPU test had run train() in mixed precision). Each canary's
failure is recorded in one line and the others still run."""

from __future__ import annotations

import json
import logging
import random
import time
import warnings
from pathlib import Path

log = logging.getLogger(__name__)

PRECISIONS = ("bf16-mixed", "16-mixed")
# a sentiment cue among filler words; the extraction task asks for the colour in a context
CUES = {"positive": ["superb", "charming", "gripping"], "negative": ["dreadful", "tedious", "hollow"]}
FILLER = "the a film plot story cast was is and with its this very in of".split()
COLOURS = ["red", "green", "blue", "white", "black", "yellow"]


def _write_data(folder: Path, rows: int = 96) -> dict[str, Path]:
    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    classification = folder / "sentiment.jsonl"
    extraction = folder / "extraction.jsonl"
    spans = folder / "spans.jsonl"
    with open(classification, "w") as fh:
        for i in range(rows):
            label = ["negative", "positive"][i % 2]
            words = rng.choices(FILLER, k=rng.randint(4, 20)) + [rng.choice(CUES[label])]
            rng.shuffle(words)
            fh.write(json.dumps({"text": " ".join(words) + f" {i}", "label": label}) + "\n")
    with open(extraction, "w") as fh:
        for i in range(rows):
            colour = rng.choice(COLOURS)
            words = rng.choices(FILLER, k=rng.randint(4, 20)) + [colour]
            rng.shuffle(words)
            fh.write(json.dumps({"question": "which colour?", "context": " ".join(words) + f" {i}",
                                 "answer": colour}) + "\n")
    with open(spans, "w") as fh:
        for i in range(rows):
            colour = rng.choice(COLOURS)
            words = rng.choices(FILLER, k=rng.randint(4, 40)) + [colour]
            rng.shuffle(words)
            context = " ".join(words)
            start = (" " + context + " ").index(f" {colour} ")
            fh.write(json.dumps({"id": f"q{i}", "question": "which colour?", "context": context,
                                 "answers": {"text": [colour], "answer_start": [start]}}) + "\n")
    return {"classification": classification, "seq2seq": extraction, "extractive_qa": spans}


def _overrides(task: str, data: Path) -> list[str]:
    if task == "classification":
        return ["model=bert_tiny", "data=jsonl", f"data.train_file={data}", "data.max_length=32",
                "tokenizer.vocab_size=300"]
    if task == "extractive_qa":  # windows of 32 tokens, stride 8: long contexts take two
        return ["model=bert_tiny_qa", "data=extractive_qa", "data.format=jsonl", f"data.train_file={data}",
                "data.max_length=32", "data.doc_stride=8", "tokenizer.vocab_size=300"]
    # T5 overflows fp16 in real training (refused by default); the canary checks the scaler path
    return ["model=t5_tiny", "data=seq2seq_jsonl", f"data.train_file={data}",
            'data.source_template="question: {question} context: {context}"', "data.target_column=answer",
            "data.truncate_column=context", "data.task=qa", "data.max_source_length=48", "data.max_target_length=6",
            "tokenizer.vocab_size=300", "model.allow_fp16=true", "model.generation.max_new_tokens=4"]


def _compile_override(compile: bool, backend: str) -> str:
    if not compile:
        return "model.compile=false"
    return "model.compile=true" if backend == "inductor" else f"model.compile={{backend: {backend}}}"


def _predict(predictor, task: str) -> str:
    if task == "classification":
        return predictor.predict(["a superb film", "a tedious plot"])[0]["label"]
    if task == "extractive_qa":
        return predictor.predict(["which colour?"], ["the red film"])[0]["answer"]
    return predictor.predict(["question: which colour? context: the red film"])[0]["prediction"]


def run_one(opts: dict, task: str, data: Path, precision: str, compile: bool, run_dir: Path) -> dict:
    """train() for one epoch of the tiny model (a few steps, validation, test, export), then
    predict.py's loader on the run dir, on the benchmark's device."""
    from hydra import compose, initialize_config_dir

    import lit_nlp  # noqa: F401  (the ${lit_nlp.*:} resolvers)
    from lit_nlp.bench.end_to_end import conf_dir
    from lit_nlp.predict import load_predictor
    from lit_nlp.train import train

    accelerator = "gpu" if opts["device"] == "cuda" else "cpu"
    overrides = _overrides(task, data) + [
        f"trainer.accelerator={accelerator}", f"trainer.precision={precision}",
        _compile_override(compile, opts["compile_backend"]), "trainer.max_epochs=1", "data.batch_size=16",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        f"paths.output_dir={run_dir}", f"paths.cache_dir={run_dir.parent / 'cache'}"]
    from torch._dynamo.utils import counters

    from lit_nlp.models.compiled import EagerFallbacks

    row = {"task": task, "precision": precision, "compile": compile, "ok": False}
    graphs_before = counters["stats"]["unique_graphs"]
    start = time.perf_counter()
    fallbacks = EagerFallbacks()
    try:
        with initialize_config_dir(str(opts.get("conf_dir") or conf_dir()), version_base="1.3"):
            cfg = compose("train", overrides=overrides)
        with warnings.catch_warnings(), fallbacks:
            warnings.simplefilter("ignore")
            train(cfg)
            metrics = json.loads((run_dir / "metrics.json").read_text())
            prediction = _predict(load_predictor(run_dir, opts["device"]), task)
        row.update(ok=True, global_step=metrics["global_step"], static_shapes=bool(cfg.data.static_shapes),
                   test_loss=metrics.get("test/loss"), prediction=prediction)
    except Exception as err:  # noqa: BLE001 (a canary records any crash and the others go on)
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        row["error"] = f"{type(err).__name__}: {message}"[:300]
        log.warning("canary %s %s compile=%s failed: %s", task, precision, compile, row["error"])
    row["seconds"] = time.perf_counter() - start
    row["graphs_compiled"] = counters["stats"]["unique_graphs"] - graphs_before
    row["eager_fallbacks"] = fallbacks.count
    return row


def run_canaries(opts: dict) -> list[dict]:
    """Every task x mixed precision x path (`canary_paths`: eager, compiled) once."""
    folder = Path(opts["out"]).resolve() / "canaries"
    data = _write_data(folder / "data")
    rows = []
    for task, path in data.items():
        for precision in PRECISIONS:
            for compile in (path == "compiled" for path in opts["canary_paths"]):
                name = f"{task}_{precision}_{'compiled' if compile else 'eager'}"
                rows.append(run_one(opts, task, path, precision, compile, folder / name))
    return rows
