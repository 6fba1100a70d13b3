"""run_bench(opts): the suite's parts in order (crash canaries, the step table of every workload
on both sides with the data and prediction figures, the end-to-end comparison, serving), into
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
from lit_nlp.bench.workloads import (
    LEVERS,
    TARGET_LENGTH,
    build_module,
    is_seq2seq,
    lever_compile,
    lever_optimizer,
    real_module,
    synthetic_rows,
)
from lit_nlp.codecs.classification import pad_batch
from lit_nlp.data.sampler import make_loader
from lit_nlp.codecs.seq2seq import pad_seq2seq

log = logging.getLogger(__name__)


def _meter(opts: dict) -> StepMeter:
    return StepMeter(opts["warmup"], opts["warmup"] + opts["steps"], torch.device(opts["device"]))


def _with_ratios(ours: list[dict], others: list[dict]) -> list[dict]:
    """Ratios measured in the same process on the same rows (> 1: ours is faster): each of our
    rows gets `ratios` {Trainer row: our samples/s / its samples/s}, each Trainer row
    `lit_nlp_speedup` {our row: the same ratio} and `lit_nlp_first_step_ratio` (the first lever's)."""
    for row in ours:
        row["ratios"] = {other["side"]: row["samples_per_s"] / other["samples_per_s"] for other in others}
    for other in others:
        other["lit_nlp_speedup"] = {row["side"]: row["ratios"][other["side"]] for row in ours}
        other["lit_nlp_first_step_ratio"] = ours[0]["time_to_first_step_s"] / other["time_to_first_step_s"]
    return [*ours, *others]


def levers_for(arch: str, opts: dict) -> list[str]:
    """Every lever for the `lever_table` arch, `levers` for the others."""
    return list(LEVERS) if arch == opts["lever_table"] else opts["levers"]


def synthetic_workload(arch: str, seq_len: int, opts: dict) -> list[dict]:
    """Fixed-length rows: our module + our loader (length-grouped sampler, our collate; full
    batches for static shapes) once per lever, vs the HF Trainer with default_data_collator;
    with no padding, run_glue's two data paths coincide."""
    from transformers import default_data_collator

    n = opts["batch_size"] * (opts["warmup"] + opts["steps"])
    rows = synthetic_rows(arch, seq_len, n)
    collate = pad_seq2seq if is_seq2seq(arch) else pad_batch
    collate = functools.partial(collate, pad_token_id=0, pad_to_multiple_of=opts["pad_to_multiple_of"])
    ours = []
    for lever in levers_for(arch, opts):
        loader = make_loader(rows, collate, opts["batch_size"], train=True, num_workers=opts["num_workers"],
                             pin_memory=opts["pin_memory"], full_batches=LEVERS[lever]["static_shapes"])
        module = build_module(arch, lever_compile(lever, opts["compile_backend"]),
                              optimizer=lever_optimizer(lever))
        ours.append(run_ours(module, opts, _meter(opts), loader=loader, side=f"lit_nlp {lever}"))
        _free(opts)
    results = ours
    if opts["hf"]:
        model = build_module(arch).model
        results = _with_ratios(ours, [run_hf_trainer(model, rows.remove_columns(["length"]), default_data_collator,
                                                     opts, _meter(opts), "hf_trainer")])
        _free(opts)
    name = f"{arch} len {seq_len}" + (f"+{TARGET_LENGTH}" if is_seq2seq(arch) else "")
    return [{"workload": name, "data": "synthetic", **r} for r in results]


def real_workload(opts: dict) -> tuple[list[dict], dict, dict | None]:
    """Real text through our data module (cold build, then a cache hit), our Lightning run per
    lever, and the HF Trainer on the same tokenized rows, padded to max_length (run_glue's
    default) and with dynamic padding + group_by_length."""
    from transformers import DataCollatorWithPadding, default_data_collator

    cache_dir = str(Path(opts["out"]) / "cache")
    cold_module, cold_s = pipeline.timed_setup(opts, cache_dir)
    datamodule, hit_s = pipeline.timed_setup(opts, cache_dir)
    data = {"rows_train": len(datamodule.datasets["train"]), "cache_build_s": cold_s, "cache_hit_load_s": hit_s,
            "tokenization": pipeline.tokenization_speed(datamodule, opts)}
    del cold_module

    ours, profile, module = [], None, None
    for lever in opts["levers"]:
        lever_data = datamodule
        if LEVERS[lever]["static_shapes"]:  # the same cache, collated to static shapes
            lever_data, _ = pipeline.timed_setup(opts, cache_dir, static_shapes=True)
        module = real_module(opts, lever_data, compile=lever_compile(lever, opts["compile_backend"]),
                             optimizer=lever_optimizer(lever))
        # the profile covers the first lever (with the default levers, the plain eager path)
        profiler = StepProfiler(opts["warmup"] + opts["steps"], opts["profile_steps"]) \
            if opts["profile"] and not ours else None
        ours.append(run_ours(module, opts, _meter(opts), datamodule=lever_data, profiler=profiler,
                             side=f"lit_nlp {lever}"))
        profile = profile or (profiler.summary() if profiler else None)
    # prediction uses the model as trained for these few steps; speed does not depend on weights
    data["predict_cpu"] = pipeline.prediction_speed(copy.deepcopy(module.model).float().cpu(), datamodule, opts)
    _free(opts)
    results = ours
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
    return rows, data, profile


def _free(opts: dict) -> None:
    """Between runs: drop the last model's memory and compiled code (each lever compiles afresh)."""
    import gc

    import torch._dynamo

    gc.collect()
    torch._dynamo.reset()
    if opts["device"] == "cuda":
        torch.cuda.empty_cache()


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
    quick = {**opts, "warmup": 1, "steps": 1, "batch_size": 2, "levers": ["eager"], "lever_table": None,
             "out": str(Path(opts["out"]) / "warm_up")}
    synthetic_workload("bert-tiny", 8, quick)


def training_part(opts: dict, results: dict, out: Path, start: float) -> None:
    """The step table: every arch x length on synthetic rows, then real text, results written
    after each workload; workloads not started within the time budget are listed as skipped."""
    warm_up(opts)
    for arch in filter(None, opts["archs"].split(",")):
        for seq_len in (int(s) for s in str(opts["seq_lens"]).split(",")):
            if _over_budget(opts, start):
                results["skipped"].append(f"training {arch} len {seq_len}: time budget")
                continue
            log.warning("bench: %s at length %d (%s)", arch, seq_len, ", ".join(levers_for(arch, opts)))
            results["training"] += synthetic_workload(arch, seq_len, opts)
            report.write(results, out)
    if opts["data_file"]:
        if _over_budget(opts, start):
            results["skipped"].append(f"training on {opts['data_file']}: time budget")
            return
        rows, data, profile = real_workload(opts)
        results["training"] += rows
        results["data"] = data
        if profile:
            results["profile"] = profile


def _over_budget(opts: dict, start: float) -> bool:
    return opts["time_budget_s"] is not None and time.perf_counter() - start > opts["time_budget_s"]


def run_bench(opts: dict) -> dict:
    """Run the suite in `opts` (see lit_nlp.bench.options) and write the results; returns them.
    The parts run in `opts["parts"]` order and results.json/results.md are rewritten after
    each, so a run stopped from outside still leaves what it measured."""
    import datasets

    from lit_nlp.bench.canaries import run_canaries
    from lit_nlp.bench.end_to_end import run_e2e

    start = time.perf_counter()
    out = Path(opts["out"])
    out.mkdir(parents=True, exist_ok=True)
    datasets.disable_progress_bars()
    if opts["device"] == "cuda":
        torch.set_float32_matmul_precision(opts["matmul_precision"])  # both sides alike
    results = {"options": dict(opts), "environment": environment(opts), "training": [], "skipped": [],
               "part_seconds": {}}
    for part in opts["parts"]:
        if _over_budget(opts, start):
            results["skipped"].append(f"{part}: time budget of {opts['time_budget_s']:.0f} s spent")
            continue
        log.warning("bench: part %s (%.0f s so far)", part, time.perf_counter() - start)
        part_start = time.perf_counter()
        if part == "canaries":
            results["canaries"] = run_canaries(opts)
        elif part == "e2e":
            results["end_to_end"] = run_e2e(opts)
        elif part == "serve":
            from lit_nlp.bench.serving import run_serve

            results["serve"] = run_serve(opts)
        elif part == "data":
            from lit_nlp.bench.data_prep import run_data

            results["prep"] = run_data(opts)
        else:
            training_part(opts, results, out, start)
        results["part_seconds"][part] = time.perf_counter() - part_start
        _free(opts)
        report.write(results, out)
    results["total_seconds"] = time.perf_counter() - start
    report.write(results, out)
    return results
