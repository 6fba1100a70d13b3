"""The harness's command line: `key=value` pairs over a suite's defaults (no Hydra: the
harness composes no configs, and a dozen flat keys read better this way)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from lit_nlp.errors import LitNlpError, raise_if_any
from lit_nlp.serve.options import OPTIONS as SERVE_OPTIONS

log = logging.getLogger(__name__)

SST2 = "../shared/data/sst2"
COMMON = {
    "out": None,               # default outputs/bench/<date>_<time>
    "device": "auto",          # auto | cpu | cuda
    "precision": "auto",       # auto: lit_nlp's default (bf16-mixed on a bf16 GPU, else 32-true)
    "matmul_precision": "high",
    "peak_tflops": None,       # the device's peak for MFU; default from lit_nlp.bench.flops
    # our side's rows (lit_nlp.bench.workloads.LEVERS): eager_foreach, eager, compiled, graphs
    "levers": "eager",
    "lever_table": None,       # an arch of `archs` that runs every lever, whatever `levers` says
    "compile_backend": "inductor",  # aot_eager: dynamo + AOTAutograd without code generation (tests)
    "compile": False,          # end to end: model.compile on our side (the fast path on a GPU)
    "hf_compile": False,       # the Trainer's torch_compile (run_glue's default: off)
    "hf": True,                # also time the Hugging Face Trainer (the ratios)
    "e2e_batch_size": None,    # end to end: the batch size (None: batch_size)
    "parts": "training",       # what runs, in order: canaries, training, e2e
    "canary_paths": "eager,compiled",  # canaries: the plain path, the compiled (fast) path, or both
    "time_budget_s": None,     # parts not started within this many seconds are skipped, and say so
    "profile": False,          # torch.profiler over `profile_steps` steps of our real-data run
    "profile_steps": 5,
    "num_workers": 0,
    "pin_memory": None,        # None: on CUDA
    "pad_to_multiple_of": None,
    "max_length": 128,         # run_glue's default max_seq_length
    "text_column": "sentence",
    "label_column": "label",
    "data_format": "tsv",
    "latency_runs": 50,
}
SUITES = {
    # the test's suite: tiny random-init models, the demo reviews shipped with lit_nlp; seconds
    "tiny": {"archs": "bert-tiny,distilbert-tiny,t5-tiny", "seq_lens": "32", "batch_size": 8, "warmup": 2,
             "steps": 3, "real_model": "tiny", "data_file": "demo", "data_format": "csv", "text_column": "text",
             "predict_file": None, "predict_rows": 64, "latency_runs": 10, "max_length": 64},
    # docs/speed.md's CPU table: small architectures at length 128, MiniLM on SST-2; minutes on 2 cores
    "cpu": {"archs": "bert-mini,distilbert-mini,t5-mini", "seq_lens": "128", "batch_size": 8, "warmup": 3,
            "steps": 10, "real_model": "minilm", "data_file": f"{SST2}/train.tsv",
            "predict_file": f"{SST2}/dev.tsv", "predict_rows": 872},
    # docs/speed.md's GPU table: base architectures at 128 and 384, MiniLM on SST-2, plain and fast path
    "gpu": {"archs": "bert-base,distilbert-base,t5-small", "seq_lens": "128,384", "batch_size": 32,
            "warmup": 10, "steps": 50, "real_model": "minilm", "data_file": f"{SST2}/train.tsv",
            "predict_file": f"{SST2}/dev.tsv", "predict_rows": 872, "levers": "eager,graphs",
            "lever_table": "bert-base"},
    # end to end (lit_nlp.bench.end_to_end): our train(cfg) against the Trainer as run_glue runs it,
    # MiniLM on SST-2 with the recipe (3 epochs, batch 32, lr 5e-5, max_length 128); a GPU's job.
    # Quick variants: max_rows= (train rows), dev_rows=, epochs=, e2e_model=bert_tiny (random init)
    "sst2": {"archs": "", "data_file": None, "predict_file": None, "batch_size": 32, "parts": "e2e",
             "e2e_model": "minilm", "train_file": f"{SST2}/train.tsv", "dev_file": f"{SST2}/dev.tsv",
             "epochs": 3, "max_rows": None, "dev_rows": None, "lr": 5e-5, "conf_dir": None,
             "hf_sides": "max_length,dynamic_grouped"},
    # one command that checks a GPU (issue 9), each part's results written as soon as it ends:
    # crash canaries (train() + predict per task in bf16-mixed and 16-mixed, eager and compiled),
    # SST-2 end to end (our fast path against run_glue's Trainer), then the step table at
    # length 128, batch 64 (every lever for bert-base, plain and fast path for the others)
    "gpu_check": {"archs": "bert-base,distilbert-base,t5-small", "seq_lens": "128", "batch_size": 64,
                  "warmup": 10, "steps": 50, "real_model": "minilm", "data_file": None, "predict_file": None,
                  "predict_rows": 872, "levers": "eager,graphs", "lever_table": "bert-base",
                  "parts": "canaries,e2e,training", "time_budget_s": 540, "compile": True,
                  "e2e_model": "minilm", "train_file": f"{SST2}/train.tsv", "dev_file": f"{SST2}/dev.tsv",
                  "e2e_batch_size": 32, "epochs": 3, "max_rows": None, "dev_rows": None, "lr": 5e-5,
                  "conf_dir": None, "hf_sides": "max_length"},
    # serve.py under load (lit_nlp.bench.serving): each backend's server with dynamic batching and
    # the export in transformers.pipeline (one call per request) behind the same HTTP server, an
    # async client at each concurrency over SST-2 dev sentences. model_path= is required (a
    # classification run dir or export); requests= per server and concurrency (48: a quick look)
    "serve": {"archs": "", "data_file": None, "predict_file": None, "parts": "serve", "model_path": None,
              "backends": "torch,onnx,onnx-int8", "baseline": True, "concurrency": "1,8,32", "requests": 10_000,
              "warmup_requests": 32, "dev_file": f"{SST2}/dev.tsv",
              # serve.py's own defaults
              **{key: SERVE_OPTIONS[key][0] for key in ("max_batch_size", "batch_size", "batch_timeout", "workers")}},
    # data preparation as corpora grow (lit_nlp.bench.data_prep): SST-2-derived corpora of each of
    # `sizes` rows prepared by the streamed path (num_proc processes; null: every core) and, up to
    # baseline_max_rows, by the whole-file path it replaced; isolate=false runs them in this process
    "data": {"archs": "", "data_file": None, "predict_file": None, "parts": "data",
             "sizes": "100000,1000000,10000000", "baseline_max_rows": 1_000_000, "num_proc": None,
             "isolate": True, "keep_files": False, "sst2_train": f"{SST2}/train.tsv"},
}
PARTS = ("canaries", "training", "e2e", "serve", "data")
HF_SIDES = ("max_length", "dynamic_grouped")


def _convert(key: str, text: str, default):
    if text.lower() in ("null", "none", ""):
        return None
    if isinstance(default, bool) or key in ("compile", "hf", "hf_compile", "profile", "pin_memory", "isolate",
                                            "keep_files"):
        if text.lower() not in ("true", "false"):
            raise LitNlpError(f"{key}={text}: expected true or false")
        return text.lower() == "true"
    if isinstance(default, int) or key in ("pad_to_multiple_of", "max_rows", "dev_rows", "e2e_batch_size", "num_proc"):
        return int(text)
    if key in ("peak_tflops", "lr", "time_budget_s", "batch_timeout"):
        return float(text)
    return text


def parse(argv: list[str]) -> dict:
    """`suite=tiny|cpu|gpu|sst2|gpu_check|serve|data` (default tiny) plus overrides; unknown keys and bad
    values are reported together."""
    pairs, problems = {}, []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            problems.append(f"'{arg}' is not key=value")
        else:
            pairs[key] = value
    suite = pairs.pop("suite", "tiny")
    if suite not in SUITES:
        raise LitNlpError(f"suite={suite} is not one of {', '.join(SUITES)}")
    opts = {**COMMON, **SUITES[suite], "suite": suite}
    for key, value in pairs.items():
        if key not in opts:
            problems.append(f"unknown option {key} (options: {', '.join(sorted(opts))})")
            continue
        try:
            opts[key] = _convert(key, value, opts[key])
        except ValueError:
            problems.append(f"{key}={value}: expected a number")
    raise_if_any(problems)
    return finish(opts)


def finish(opts: dict) -> dict:
    """Resolve the machine-dependent defaults and check what would fail late."""
    import torch

    from lit_nlp.data.classification import demo_file
    from lit_nlp.resolvers import default_precision

    if opts["device"] == "auto":
        opts["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        if opts["suite"] in ("gpu", "gpu_check"):
            log.warning("suite=%s without a visible CUDA device runs on the CPU: slowly (inductor compiles "
                        "each graph for minutes here), without CUDA graphs, and its GPU targets say nothing",
                        opts["suite"])
    if opts["precision"] == "auto":
        opts["precision"] = default_precision("gpu" if opts["device"] == "cuda" else "cpu")
    if opts["pin_memory"] is None:
        opts["pin_memory"] = opts["device"] == "cuda"
    if opts["data_file"] == "demo":
        opts["data_file"] = demo_file()
    opts["out"] = opts["out"] or str(Path("outputs/bench") / time.strftime("%Y-%m-%d_%H-%M-%S"))
    problems = []
    from lit_nlp.bench.workloads import ARCHITECTURES, LEVERS

    opts["parts"] = [p for p in str(opts["parts"]).split(",") if p]
    problems += [f"parts: unknown part {p} (parts: {', '.join(PARTS)})" for p in opts["parts"] if p not in PARTS]
    opts["canary_paths"] = [p for p in str(opts["canary_paths"]).split(",") if p]
    problems += [f"canary_paths: unknown path {p} (eager, compiled)" for p in opts["canary_paths"]
                 if p not in ("eager", "compiled")]
    opts["levers"] = [lever for lever in str(opts["levers"]).split(",") if lever]
    problems += [f"levers: unknown lever {lever} (levers: {', '.join(LEVERS)})" for lever in opts["levers"]
                 if lever not in LEVERS]
    problems += [f"archs: unknown architecture {a} (archs: {', '.join(ARCHITECTURES)})"
                 for a in str(opts["archs"]).split(",") if a and a not in ARCHITECTURES]
    if opts["device"] == "cuda" and not torch.cuda.is_available():
        problems.append("device=cuda but no CUDA device is visible")
    if "warmup" in opts and (opts["warmup"] < 1 or opts["steps"] < 1):
        problems.append("warmup and steps must be at least 1 (the first step is never timed)")
    for key in ("data_file", "predict_file"):
        if opts[key] and not Path(opts[key]).is_file():
            problems.append(f"{key}={opts[key]} not found; pass {key}=<path> (SST-2's train.tsv/dev.tsv)")
    if is_end_to_end(opts):
        problems += _e2e_problems(opts)
    if "serve" in opts["parts"]:
        problems += _serve_problems(opts)
    if "data" in opts["parts"]:
        problems += _data_problems(opts)
    raise_if_any(problems)
    return opts


def is_end_to_end(opts: dict) -> bool:
    """Does this run compare whole runs end to end (suite=sst2, suite=gpu_check)?"""
    return "e2e" in opts["parts"]


def _e2e_problems(opts: dict) -> list[str]:
    from lit_nlp.bench.end_to_end import conf_dir

    opts["conf_dir"] = opts["conf_dir"] or str(conf_dir())
    problems = ["suite=sst2 runs only the end-to-end comparison; drop archs=/data_file= or use suite=tiny|cpu|gpu"
                ] if opts["suite"] == "sst2" and (opts["archs"] or opts["data_file"]) else []
    opts["hf_sides"] = [s for s in str(opts["hf_sides"]).split(",") if s]
    problems += [f"hf_sides: unknown side {s} (sides: {', '.join(HF_SIDES)})" for s in opts["hf_sides"]
                 if s not in HF_SIDES]
    for key in ("train_file", "dev_file"):
        if not Path(opts[key]).is_file():
            problems.append(f"{key}={opts[key]} not found; pass {key}=<path> (SST-2's train.tsv/dev.tsv)")
    if not (Path(opts["conf_dir"]) / "train.yaml").is_file():
        problems.append(f"conf_dir={opts['conf_dir']} holds no train.yaml; pass conf_dir=<the project's conf/>")
    elif not (Path(opts["conf_dir"]) / "model" / f"{opts['e2e_model']}.yaml").is_file() \
            or opts["e2e_model"].startswith(("t5", "flan")):
        problems.append(f"e2e_model={opts['e2e_model']}: expected a classification model of conf/model/ "
                        "(minilm, bert_tiny, distilbert, ...)")
    if opts["data_format"] not in ("tsv", "csv"):
        problems.append(f"data_format={opts['data_format']}: the end-to-end run reads tsv or csv")
    for key in ("epochs", "max_rows", "dev_rows"):
        if opts[key] is not None and opts[key] < 1:
            problems.append(f"{key}={opts[key]}: must be at least 1")
    return problems


def _serve_problems(opts: dict) -> list[str]:
    from lit_nlp.onnx import BACKENDS
    from lit_nlp.run_layout import SETTINGS_FILE, export_dir

    problems = []
    path = Path(opts["model_path"] or "")
    if not opts["model_path"]:
        problems.append("suite=serve needs model_path=<a classification run dir or its export> (train one with "
                        "python train.py)")
    elif not ((path / SETTINGS_FILE).is_file() or (export_dir(path) / SETTINGS_FILE).is_file()):
        problems.append(f"model_path={path}: no export ({SETTINGS_FILE}) there; the baseline loads the export")
    else:
        settings = json.loads(((path if (path / SETTINGS_FILE).is_file() else export_dir(path)) / SETTINGS_FILE)
                              .read_text())
        if settings.get("task") != "classification" or settings.get("multi_label"):
            problems.append(f"model_path={path}: suite=serve scores single-label classification on labelled "
                            f"sentences; this model's task is {settings.get('task')}")
    opts["backends"] = [b for b in str(opts["backends"]).split(",") if b]
    problems += [f"backends: unknown backend {b} ({', '.join(BACKENDS)})" for b in opts["backends"]
                 if b not in BACKENDS]
    try:
        opts["concurrency"] = [int(c) for c in str(opts["concurrency"]).split(",") if c]
    except ValueError:
        problems.append(f"concurrency={opts['concurrency']}: expected whole numbers, comma-separated")
        opts["concurrency"] = []
    problems += [f"{key}={opts[key]}: must be at least 1"
                 for key in ("requests", "max_batch_size", "batch_size", "workers") if opts[key] < 1]
    problems += [f"concurrency: {c} must be at least 1" for c in opts["concurrency"] if c < 1]
    if not Path(opts["dev_file"]).is_file():
        problems.append(f"dev_file={opts['dev_file']} not found; pass dev_file=<SST-2's dev.tsv or a file with "
                        "text_column= and label_column=>")
    return problems


def _data_problems(opts: dict) -> list[str]:
    problems = []
    try:
        opts["sizes"] = [int(size) for size in str(opts["sizes"]).split(",") if size]
    except ValueError:
        problems.append(f"sizes={opts['sizes']}: expected row counts, comma-separated (e.g. 100000,1000000)")
        opts["sizes"] = []
    problems += [f"sizes: {size} must be at least 100 (the splits take a tenth each)" for size in opts["sizes"]
                 if size < 100]
    if opts["num_proc"] is not None and opts["num_proc"] < 1:
        problems.append(f"num_proc={opts['num_proc']}: must be at least 1 (or null: every core)")
    if not Path(opts["sst2_train"]).is_file():
        problems.append(f"sst2_train={opts['sst2_train']} not found; pass sst2_train=<SST-2's train.tsv>")
    return problems
