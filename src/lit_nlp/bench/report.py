"""results.json (everything, raw) and results.md (the tables the README quotes)."""

from __future__ import annotations

import json
from pathlib import Path


def _num(value, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def training_table(rows: list[dict]) -> list[str]:
    lines = ["| workload | side | samples/s | tokens/s | step ms | first step s | padding | peak GB | TFLOP/s | MFU | x Trainer |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "n/a"
        # our rows: samples/s over the workload's first Trainer row (run_glue's defaults on real text)
        ratios = r.get("ratios") or {}
        speedup = f"{next(iter(ratios.values())):.2f}x" if ratios else ""
        side = r["side"] + (" (CUDA graphs)" if r.get("cuda_graphs") else "")
        lines.append(f"| {r['workload']} | {side} | {_num(r['samples_per_s'])} | {_num(r['tokens_per_s'], 0)} | "
                     f"{_num(r['step_time_ms'])} | {_num(r['time_to_first_step_s'], 2)} | "
                     f"{100 * r['padding_fraction']:.0f}% | {_num(r.get('peak_memory_gb'), 2)} | "
                     f"{_num(r['model_tflops'], 3)} | {mfu} | {speedup} |")
    return lines


def canary_table(rows: list[dict]) -> list[str]:
    lines = ["| task | precision | path | result | steps | graphs compiled | shapes run eagerly | seconds |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        path = "compiled" + (" + static shapes" if r.get("static_shapes") else "") if r["compile"] else "eager"
        result = "ok" if r["ok"] else f"FAILED: {r['error']}"
        lines.append(f"| {r['task']} | {r['precision']} | {path} | {result} | {r.get('global_step', '')} | "
                     f"{r.get('graphs_compiled', '')} | {r.get('eager_fallbacks', '')} | {r['seconds']:.1f} |")
    return lines


def data_table(data: dict) -> list[str]:
    tok, pred = data["tokenization"], data["predict_cpu"]
    return ["| figure | value |", "| --- | ---: |",
            f"| training rows | {data['rows_train']:,} |",
            f"| data preparation, cold cache (read, clean, split, tokenize, write) | {data['cache_build_s']:.2f} s |",
            f"| data load, cache hit (second run) | {data['cache_hit_load_s']:.2f} s |",
            f"| tokenization | {tok['texts_per_s']:,.0f} texts/s, {tok['tokens_per_s']:,.0f} tokens/s |",
            f"| prediction, CPU, batch 32 ({pred['texts']} texts, {pred['threads']} threads) | {pred['samples_per_s']:,.1f} samples/s |",
            f"| single-sentence latency, CPU (median / p90) | {pred['latency_ms_median']:.1f} / {pred['latency_ms_p90']:.1f} ms |"]


def profile_table(profile: dict) -> list[str]:
    lines = [f"{profile['steps']} steps of our real-data run: {profile['wall_ms_per_step']:.1f} ms per step, "
             f"{profile['aten_cpu_ms_per_step']:.1f} ms inside PyTorch ops (self CPU time), "
             f"{profile['host_overhead_ms_per_step']:.1f} ms ({100 * profile['host_overhead_fraction']:.0f}%) around "
             "them on the host (Python: Lightning, callbacks, model code, loader, collate)"
             + (f"; GPU kernels {profile['gpu_kernel_ms_per_step']:.1f} ms" if profile["gpu_kernel_ms_per_step"] else "")
             + ".", "", "| op | calls/step | self CPU ms/step | share of step | self GPU ms/step |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for op in profile["top_ops"]:
        lines.append(f"| {op['op']} | {op['calls_per_step']:.0f} | {op['self_cpu_ms_per_step']:.2f} | "
                     f"{100 * op['share_of_wall']:.1f}% | {op['self_gpu_ms_per_step']:.2f} |")
    return lines


def end_to_end_table(e2e: dict, opts: dict) -> list[str]:
    lines = [f"{opts['e2e_model']} on {e2e['train_file']} (dev: {e2e['dev_file']}), {opts['epochs']} epochs, "
             f"batch {opts['batch_size']}, lr {opts['lr']}, max_length {opts['max_length']}; same rows on every "
             f"side: {e2e['same_rows']}.", "",
             "| side | rows trained | dev rows | data prep s | fit s | end to end s | samples/s | final dev acc | "
             "Trainer s / ours (fit) | Trainer s / ours (end to end) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in e2e["rows"]:
        ratios = (f"{r['ratio_fit']:.2f}x | {r['ratio_end_to_end']:.2f}x" if "ratio_fit" in r else " | ")
        lines.append(f"| {r['side']} | {r['rows_trained']:,} | {r['rows_evaluated']:,} | {_num(r['prep_s'], 2)} | "
                     f"{_num(r['fit_s'], 1)} | {_num(r['end_to_end_s'], 1)} | {_num(r['samples_per_s'])} | "
                     f"{r['dev_accuracy']:.4f} | {ratios} |")
    fallbacks = [r["eager_fallbacks"] for r in e2e["rows"] if r.get("eager_fallbacks")]
    if fallbacks:  # the compiled path ran partly eagerly: its time is not the fast path's
        lines += ["", f"Our run: {fallbacks[0]} compiled shape(s) fell back to eager (warnings in its train.log)."]
    target = e2e["target"]
    verdict = ("not judged: it names full SST-2, MiniLM, 3 epochs" if not target["applies"]
               else "met" if target["met"] else "not met")
    lines += ["", "fit s: our trainer.fit (per-epoch validation and checkpoints included) / the Trainer's train(); "
              "end to end s: data preparation, model load, fit, and for us test + export, for the Trainer "
              "evaluate(); samples/s = rows trained x epochs / fit s; final dev acc: the final weights on the "
              "dev rows.", "",
              f"The target (>= {target['speedup']:.0f}x the run_glue-defaults Trainer in both ratios, "
              f"final dev acc >= {target['dev_accuracy']}): {verdict}."]
    return lines


def serve_table(serve: dict, opts: dict) -> list[str]:
    lines = [f"{serve['model_path']} served on 127.0.0.1, device {opts['device']}; {opts['requests']:,} requests per "
             f"row over {serve['sentences']:,} sentences of {serve['dev_file']} ({serve['labels']}); our servers: "
             f"batches of up to {opts['max_batch_size']} requests within {1000 * opts['batch_timeout']:g} ms "
             f"in model calls of up to {opts['batch_size']} texts, "
             f"{opts['workers']} worker(s).", "",
             "| server | concurrency | requests/s | p50 ms | p95 ms | p99 ms | errors | accuracy | x baseline |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in serve["rows"]:
        side = "pipeline baseline (no batching)" if not r["batching"] else f"lit_nlp {r['server']}"
        ratio = f"{r['x_baseline']:.2f}x" if r.get("x_baseline") is not None else ""
        accuracy = f"{r['accuracy']:.4f}" if r["accuracy"] is not None else "n/a"
        lines.append(f"| {side} | {r['concurrency']} | {_num(r['requests_per_s'])} | {_num(r['p50_ms'])} | "
                     f"{_num(r['p95_ms'])} | {_num(r['p99_ms'])} | {r['errors']} | {accuracy} | {ratio} |")
    lines += [f"- {note}" for note in serve["skipped"]]
    target = serve["target"]
    if target["applies"]:
        verdict = "met" if target["met"] else "not met: " + ", ".join(k for k, ok in target["checks"].items() if not ok)
    else:
        verdict = (f"not judged: it needs requests >= {target['requests']:,} and torch, onnx-int8 and the baseline "
                   "at concurrency 8 and 32")
    lines += ["", f"The target (onnx-int8: >= {target['speedup']:.0f}x the baseline's requests/s at concurrency 32, "
              f"accuracy within {target['accuracy_points']} point of torch, no errors, p99 <= "
              f"{target['p99_over_p50']:.0f}x p50 at concurrency 8): {verdict}."]
    return lines


def markdown(results: dict) -> str:
    env, opts = results["environment"], results["options"]
    steps = (f"batch {opts['batch_size']}, {opts['warmup']} warm-up + {opts['steps']} timed steps, "
             if "warmup" in opts else "")
    lines = [f"# lit_nlp benchmark, suite {opts['suite']}", "",
             f"{env['date']}, {env['device']} ({env['cpu_threads']} CPU threads), torch {env['torch']}, "
             f"transformers {env['transformers']}, lightning {env['lightning']}, load average "
             f"{env['load_average_1min']:.1f}; precision {opts['precision']}, {steps}"
             f"compile backend {opts['compile_backend']}."]
    if results.get("canaries"):
        failed = sum(not r["ok"] for r in results["canaries"])
        lines += ["", "## Crash canaries", "", f"{len(results['canaries']) - failed} of "
                  f"{len(results['canaries'])} ran train() + predict without an error.", ""]
        lines += canary_table(results["canaries"])
    if results["training"]:
        lines += ["", "## Training", ""] + training_table(results["training"])
        lines += ["", "Our sides, one per lever: eager_foreach (eager, multi-tensor AdamW), eager (fused AdamW), "
                  "compiled (torch.compile, default mode), graphs (model.compile=true: reduce-overhead, CUDA graphs "
                  "on a GPU, static shapes). tokens/s counts real (unpadded) tokens; padding is the share of padded "
                  "positions; MFU = model FLOPs (lit_nlp.bench.flops) per second / the device's dense peak; "
                  "x Trainer = our samples/s / the workload's first Trainer row's (all ratios in results.json)."]
    if "end_to_end" in results:
        lines += ["", "## End to end", ""] + end_to_end_table(results["end_to_end"], opts)
    if "data" in results:
        lines += ["", "## Data and prediction", ""] + data_table(results["data"])
    if "profile" in results:
        lines += ["", "## Where a step's time goes (profile=true)", ""] + profile_table(results["profile"])
    if "serve" in results:
        lines += ["", "## Serving", ""] + serve_table(results["serve"], opts)
    if "prep" in results:
        from lit_nlp.bench.data_prep import table

        lines += ["", "## Data preparation", ""] + table(results["prep"], opts)
    if results.get("skipped"):
        lines += ["", "## Skipped", ""] + [f"- {item}" for item in results["skipped"]]
    if results.get("part_seconds"):
        lines += ["", "Seconds per part: " + ", ".join(f"{k} {v:.0f}" for k, v in results["part_seconds"].items())
                  + (f"; total {results['total_seconds']:.0f}." if "total_seconds" in results else ".")]
    return "\n".join(lines) + "\n"


def write(results: dict, out: Path) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "results.md").write_text(markdown(results))
