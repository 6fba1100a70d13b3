"""run_bench(opts): every workload on both sides, then the data and prediction figures, into
results.json and results.md under opts["out"]."""

from __future__ import annotations

import copy
import functools
import logging
import os
import platform
import time
from pathlib import Path

import lightning
import torch
import transformers

from lit_nlp.bench import pipeline, report
from lit_nlp.bench.meter import StepMeter
from lit_nlp.bench.profiling import StepProfiler
from lit_nlp.bench.training import run_hf_trainer, run_ours
from lit_nlp.bench.workloads import TARGET_LENGTH, build_module, is_seq2seq, real_module, synthetic_rows
from lit_nlp.data.classification import pad_batch
from lit_nlp.data.sampler import make_loader
from lit_nlp.data.seq2seq import pad_seq2seq

log = logging.getLogger(__name__)


def _meter(opts: dict) -> StepMeter:
    return StepMeter(opts["warmup"], opts["warmup"] + opts["steps"], torch.device(opts["device"]))


def _with_ratios(ours: dict, others: list[dict]) -> list[dict]:
    """Each Trainer row gets `lit_nlp_speedup`: our samples/s over its samples/s, measured in
    the same process on the same rows (>1: ours is faster)."""
    ours["ratios"] = {}
    for row in others:
        row["lit_nlp_speedup"] = ours["samples_per_s"] / row["samples_per_s"]
        row["lit_nlp_first_step_ratio"] = ours["time_to_first_step_s"] / row["time_to_first_step_s"]
        ours["ratios"][row["side"]] = row["lit_nlp_speedup"]
    return [ours, *others]


def synthetic_workload(arch: str, seq_len: int, opts: dict) -> list[dict]:
    """Fixed-length rows: our module + our loader (length-grouped sampler, our collate) vs the
    HF Trainer with default_data_collator; with no padding, run_glue's two data paths coincide."""
    from transformers import default_data_collator

    n = opts["batch_size"] * (opts["warmup"] + opts["steps"])
    rows = synthetic_rows(arch, seq_len, n)
    collate = pad_seq2seq if is_seq2seq(arch) else pad_batch
    collate = functools.partial(collate, pad_token_id=0, pad_to_multiple_of=opts["pad_to_multiple_of"])
    loader = make_loader(rows, collate, opts["batch_size"], train=True,
                         num_workers=opts["num_workers"], pin_memory=opts["pin_memory"])
    meter = _meter(opts)
    ours = run_ours(build_module(arch, opts["compile"]), opts, meter, loader=loader)
    results = [ours]
    if opts["hf"]:
        meter = _meter(opts)
        model = build_module(arch).model
        results = _with_ratios(ours, [run_hf_trainer(model, rows.remove_columns(["length"]), default_data_collator,
                                                     opts, meter, "hf_trainer")])
    name = f"{arch} len {seq_len}" + (f"+{TARGET_LENGTH}" if is_seq2seq(arch) else "")
    return [{"workload": name, "data": "synthetic", **r} for r in results]


def real_workload(opts: dict) -> tuple[list[dict], dict, dict | None]:
    """Real text through our data module (cold build, then a cache hit), our Lightning run,
    and the HF Trainer on the same tokenized rows, padded to max_length (run_glue's default)
    and with dynamic padding + group_by_length."""
    from transformers import DataCollatorWithPadding, default_data_collator

    cache_dir = str(Path(opts["out"]) / "cache")
    cold_module, cold_s = pipeline.timed_setup(opts, cache_dir)
    datamodule, hit_s = pipeline.timed_setup(opts, cache_dir)
    data = {"rows_train": len(datamodule.datasets["train"]), "cache_build_s": cold_s, "cache_hit_load_s": hit_s,
            "tokenization": pipeline.tokenization_speed(datamodule, opts)}
    del cold_module

    meter = _meter(opts)
    module = real_module(opts, datamodule)
    profiler = StepProfiler(opts["warmup"] + opts["steps"], opts["profile_steps"]) if opts["profile"] else None
    ours = run_ours(module, opts, meter, datamodule=datamodule, profiler=profiler)
    # prediction uses the model as trained for these few steps; speed does not depend on weights
    data["predict_cpu"] = pipeline.prediction_speed(copy.deepcopy(module.model).float().cpu(), datamodule, opts)
    results = [ours]
    if opts["hf"]:
        train = datamodule.datasets["train"]
        max_length, pad_id = opts["max_length"], datamodule.tokenizer.pad_token_id

        def pad_to_max(row):
            extra = max_length - len(row["input_ids"])
            padded = {"input_ids": row["input_ids"] + [pad_id] * extra,
                      "attention_mask": row["attention_mask"] + [0] * extra}
            if "token_type_ids" in row:
                padded["token_type_ids"] = row["token_type_ids"] + [0] * extra
            return padded

        fixed = train.map(pad_to_max).remove_columns(["length"])
        others = [run_hf_trainer(real_module(opts, datamodule).model, fixed, default_data_collator, opts,
                                 _meter(opts), "hf_trainer_max_length")]
        # the `length` column stays: the HF length-grouped sampler reads it instead of measuring
        dynamic = DataCollatorWithPadding(datamodule.tokenizer, pad_to_multiple_of=opts["pad_to_multiple_of"])
        others.append(run_hf_trainer(real_module(opts, datamodule).model, train, dynamic, opts, _meter(opts),
                                     "hf_trainer_dynamic_grouped", group_by_length=True))
        results = _with_ratios(ours, others)
    name = f"{opts['real_model']} on {Path(opts['data_file']).name}"
    rows = [{"workload": name, "data": "real", **r} for r in results]
    return rows, data, profiler.summary() if profiler else None


def environment(opts: dict) -> dict:
    device = torch.cuda.get_device_name() if opts["device"] == "cuda" else (platform.processor() or "cpu")
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "device": device, "cpu_threads": torch.get_num_threads(),
            "torch": torch.__version__, "transformers": transformers.__version__, "lightning": lightning.__version__,
            "python": platform.python_version(),
            # other processes on the machine skew CPU timings: the 1-minute load average says how much
            "load_average_1min": os.getloadavg()[0]}


def warm_up(opts: dict) -> None:
    """One untimed two-step run of each side on bert-tiny, so that the first workload does not
    pay the process's one-off costs (lazy imports, thread pools, the CUDA context)."""
    quick = {**opts, "warmup": 1, "steps": 1, "batch_size": 2, "compile": False,
             "out": str(Path(opts["out"]) / "warm_up")}
    synthetic_workload("bert-tiny", 8, quick)


def run_bench(opts: dict) -> dict:
    """Run the suite in `opts` (see lit_nlp.bench.options) and write the results; returns them."""
    import datasets

    from lit_nlp.bench.end_to_end import run_e2e
    from lit_nlp.bench.options import is_end_to_end

    out = Path(opts["out"])
    out.mkdir(parents=True, exist_ok=True)
    datasets.disable_progress_bars()
    if opts["device"] == "cuda":
        torch.set_float32_matmul_precision(opts["matmul_precision"])  # both sides alike
    results = {"options": dict(opts), "environment": environment(opts), "training": []}
    warm_up(opts)
    for arch in filter(None, opts["archs"].split(",")):
        for seq_len in (int(s) for s in str(opts["seq_lens"]).split(",")):
            log.info("bench: %s at length %d", arch, seq_len)
            results["training"] += synthetic_workload(arch, seq_len, opts)
    if opts["data_file"]:
        rows, data, profile = real_workload(opts)
        results["training"] += rows
        results["data"] = data
        if profile:
            results["profile"] = profile
    if is_end_to_end(opts):
        results["end_to_end"] = run_e2e(opts)
    report.write(results, out)
    return results
