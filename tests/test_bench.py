"""The benchmark harness end to end on tiny models on the CPU: both sides of every comparison
run and results.json / results.md hold sane figures. Timings are never asserted (a benchmark
is not a timed test); the FLOPs formula and the options are checked exactly."""

from __future__ import annotations

import json

import pytest
from transformers import AutoModelForSequenceClassification, BertConfig

from conftest import synthetic_rows, write_table
from lit_nlp.bench.flops import model_shape, peak_tflops, training_flops
from lit_nlp.bench.options import parse
from lit_nlp.errors import LitNlpError

TRAINING_FIELDS = ("samples_per_s", "tokens_per_s", "step_time_ms", "time_to_first_step_s", "model_tflops",
                   "padding_fraction")


@pytest.mark.slow
def test_tiny_suite_end_to_end(tmp_path):
    """Every lever on bert-tiny (compiled ones through dynamo + AOTAutograd: no code
    generation on 2 cores), the plain eager path on t5-tiny and on real text."""
    from lit_nlp.bench.run import run_bench

    opts = parse(["suite=tiny", f"out={tmp_path}", "archs=bert-tiny,t5-tiny", "seq_lens=16", "warmup=1", "steps=2",
                  "predict_rows=16", "latency_runs=2", "profile=true", "profile_steps=1", "lever_table=bert-tiny",
                  "compile_backend=aot_eager"])
    run_bench(opts)
    results = json.loads((tmp_path / "results.json").read_text())
    rows = results["training"]
    sides = {(r["workload"], r["side"]) for r in rows}
    levers = ("eager_foreach", "eager", "compiled", "graphs")
    assert sides == {*(("bert-tiny len 16", f"lit_nlp {lever}") for lever in levers),
                     ("bert-tiny len 16", "hf_trainer"),
                     ("t5-tiny len 16+32", "lit_nlp eager"), ("t5-tiny len 16+32", "hf_trainer"),
                     ("tiny on sentiment.csv", "lit_nlp eager"), ("tiny on sentiment.csv", "hf_trainer_max_length"),
                     ("tiny on sentiment.csv", "hf_trainer_dynamic_grouped")}
    for row in rows:
        assert all(row[k] > 0 for k in TRAINING_FIELDS if k != "padding_fraction"), row
        assert row["steps"] == 2 and row["samples"] == 2 * 8
        assert row["mfu"] is None  # a CPU without peak_tflops=
        others = {r["side"] for r in rows if r["workload"] == row["workload"] and r["side"].startswith("hf")}
        ours = {r["side"] for r in rows if r["workload"] == row["workload"] and r["side"].startswith("lit_nlp")}
        if row["side"].startswith("lit_nlp"):
            assert set(row["ratios"]) == others and all(v > 0 for v in row["ratios"].values())
        else:
            assert set(row["lit_nlp_speedup"]) == ours and row["lit_nlp_first_step_ratio"] > 0
    by_side = {(r["workload"], r["side"]): r for r in rows}
    compiled = [by_side[("bert-tiny len 16", f"lit_nlp {lever}")] for lever in ("compiled", "graphs")]
    assert all(r["compile"] == {"backend": "aot_eager"} and r["eager_shapes"] == 0 for r in compiled)
    assert not any(r.get("cuda_graphs") for r in rows)  # no CUDA here
    assert by_side[("bert-tiny len 16", "lit_nlp eager")]["compile"] is None
    by_side = {r["side"]: r for r in rows if r["data"] == "real"}
    # run_glue's default pads every row to max_length; the others pad little
    assert by_side["hf_trainer_max_length"]["padding_fraction"] > 0.5
    assert by_side["lit_nlp eager"]["padding_fraction"] < by_side["hf_trainer_max_length"]["padding_fraction"]
    assert all(r["padding_fraction"] == 0 for r in rows if r["data"] == "synthetic")
    data = results["data"]
    assert data["cache_build_s"] > 0 and data["cache_hit_load_s"] > 0 and data["rows_train"] > 1000
    assert data["tokenization"]["texts_per_s"] > 0 and data["predict_cpu"]["samples_per_s"] > 0
    assert data["predict_cpu"]["latency_ms_median"] > 0
    profile = results["profile"]
    assert profile["steps"] == 1 and profile["top_ops"] and profile["wall_ms_per_step"] > 0
    md = (tmp_path / "results.md").read_text()
    for text in ("| workload | side |", "hf_trainer_dynamic_grouped", "x Trainer", "lit_nlp graphs", "cache hit",
                 "single-sentence latency", "Where a step's time goes", "aten::", "Seconds per part"):
        assert text in md


@pytest.mark.slow
def test_gpu_check_suite_runs_on_cpu(tmp_path):
    """suite=gpu_check shrunk to tiny models on the CPU: the canaries (train() + predict per task
    in bf16-mixed and 16-mixed; the eager path here, the compiled one is test_fast_path's), the
    end-to-end comparison and the step table, in that order, each written when it ends."""
    from lit_nlp.bench.run import run_bench

    train = write_table(synthetic_rows(200, seed=1), tmp_path / "train.tsv")
    dev = write_table(synthetic_rows(40, seed=2), tmp_path / "dev.tsv")
    opts = parse(["suite=gpu_check", f"out={tmp_path / 'bench'}", "device=cpu", "canary_paths=eager",
                  "archs=bert-tiny", "seq_lens=16", "lever_table=null", "levers=eager", "warmup=1", "steps=1",
                  "batch_size=8", "e2e_model=bert_tiny", f"train_file={train}", f"dev_file={dev}",
                  "text_column=text", "epochs=1", "e2e_batch_size=16", "max_length=32", "lr=1e-3", "compile=false"])
    assert opts["parts"] == ["canaries", "e2e", "training"] and opts["hf_sides"] == ["max_length"]
    results = run_bench(opts)
    canaries = results["canaries"]
    assert {(r["task"], r["precision"]) for r in canaries} == {
        (task, precision) for task in ("classification", "seq2seq", "extractive_qa")
        for precision in ("bf16-mixed", "16-mixed")}
    assert all(r["ok"] and r["global_step"] > 0 and r["eager_fallbacks"] == 0 for r in canaries), canaries
    assert [r["side"] for r in results["end_to_end"]["rows"]] == ["lit_nlp", "hf_trainer_max_length"]
    assert {r["side"] for r in results["training"]} == {"lit_nlp eager", "hf_trainer"}
    assert set(results["part_seconds"]) == {"canaries", "e2e", "training"} and not results["skipped"]
    md = (tmp_path / "bench" / "results.md").read_text()
    assert "## Crash canaries" in md and "6 of 6 ran" in md and "## End to end" in md and "## Training" in md


def test_time_budget_skips_parts_and_says_so(tmp_path):
    from lit_nlp.bench.run import run_bench

    opts = parse(["suite=tiny", f"out={tmp_path}", "parts=canaries,training", "time_budget_s=0"])
    results = run_bench(opts)
    assert results["skipped"] == ["canaries: time budget of 0 s spent", "training: time budget of 0 s spent"]
    assert "## Skipped" in (tmp_path / "results.md").read_text()


@pytest.mark.slow
def test_end_to_end_suite_on_a_tiny_model(tmp_path):
    """suite=sst2 shrunk: bert_tiny (random init, WordPiece from the data) on a synthetic TSV,
    300 of 400 train rows, 1 epoch; every side trains on the same rows and scores the same dev rows."""
    from lit_nlp.bench.run import run_bench

    train = write_table(synthetic_rows(400, seed=1), tmp_path / "train.tsv")
    dev = write_table(synthetic_rows(60, seed=2), tmp_path / "dev.tsv")
    opts = parse(["suite=sst2", f"out={tmp_path / 'bench'}", "e2e_model=bert_tiny", f"train_file={train}",
                  f"dev_file={dev}", "text_column=text", "max_rows=300", "epochs=1", "batch_size=16",
                  "max_length=32", "lr=1e-3"])
    run_bench(opts)
    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert results["training"] == []  # no step timings in this suite
    e2e = results["end_to_end"]
    rows = {r["side"]: r for r in e2e["rows"]}
    assert set(rows) == {"lit_nlp", "hf_trainer_max_length", "hf_trainer_dynamic_grouped"}
    assert e2e["same_rows"] and e2e["target"] == {"speedup": 3.0, "dev_accuracy": 0.90, "applies": False,
                                                  "met": None}
    for row in rows.values():
        assert row["rows_trained"] == 300 and row["rows_evaluated"] == 60 and row["epochs"] == 1, row
        assert all(row[k] > 0 for k in ("prep_s", "fit_s", "end_to_end_s", "samples_per_s")), row
        assert row["dev_accuracy"] * 60 == pytest.approx(round(row["dev_accuracy"] * 60), abs=1e-4)  # of 60 rows
    ours = rows["lit_nlp"]
    assert ours["dev_accuracy_per_epoch"] == [ours["dev_accuracy"]] and ours["eager_fallbacks"] == 0
    # one epoch: the export holds the weights its one validation scored; the dev rows scored again
    from lit_nlp.predict import load_predictor

    dev_rows = synthetic_rows(60, seed=2)
    labels = [r["label"] for r in load_predictor(ours["run_dir"]).predict([r["text"] for r in dev_rows])]
    correct = sum(a == r["label"] for a, r in zip(labels, dev_rows))
    assert ours["dev_accuracy"] == ours["dev_accuracy_best"] == pytest.approx(correct / 60, abs=1e-6)
    for side in ("hf_trainer_max_length", "hf_trainer_dynamic_grouped"):
        assert rows[side]["ratio_fit"] > 0 and rows[side]["ratio_end_to_end"] > 0
        assert rows["lit_nlp"]["ratios_fit"][side] == rows[side]["ratio_fit"]
    md = (tmp_path / "bench" / "results.md").read_text()
    for text in ("## End to end", "hf_trainer_dynamic_grouped", "final dev acc", "The target", "not judged"):
        assert text in md


def test_end_to_end_options(tmp_path):
    data = write_table(synthetic_rows(20), tmp_path / "data.tsv")  # not ../shared: any checkout runs this
    opts = parse(["suite=sst2", f"out={tmp_path}", f"train_file={data}", f"dev_file={data}", "max_rows=512",
                  "epochs=1", "lr=3e-5"])
    assert opts["max_rows"] == 512 and opts["epochs"] == 1 and opts["lr"] == 3e-5 and opts["e2e_model"] == "minilm"
    assert opts["conf_dir"].endswith("conf")
    with pytest.raises(LitNlpError) as err:
        parse(["suite=sst2", "train_file=missing.tsv", "e2e_model=t5_tiny", "epochs=0", "archs=bert-tiny"])
    msg = str(err.value)
    for text in ("train_file=missing.tsv not found", "e2e_model=t5_tiny", "epochs=0", "drop archs="):
        assert text in msg
    assert "\n" not in msg


def test_flops_formula_by_hand():
    model = AutoModelForSequenceClassification.from_config(
        BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, vocab_size=100))
    shape = model_shape(model)
    # per layer: 4 x (64x64 + 64) attention + 64x128+128 + 128x64+64 FFN + 2 LayerNorms (2 x 128)
    layer = 4 * (64 * 64 + 64) + (64 * 128 + 128) + (128 * 64 + 64) + 2 * 128
    # + embedding LayerNorm (128) + pooler (64x64 + 64) + classifier (64x2 + 2)
    assert shape["n"] == 2 * layer + 128 + 64 * 64 + 64 + 64 * 2 + 2
    # two sequences of 10 and 20 real tokens: 30 tokens, 10^2 + 20^2 = 500
    assert training_flops(shape, {"tokens": 30, "tokens_sq": 500}) == 6 * shape["n"] * 30 + 12 * 2 * 64 * 500


def test_peaks():
    assert peak_tflops("NVIDIA H100 80GB HBM3", "bf16-mixed") == 989.0
    assert peak_tflops("NVIDIA H100 PCIe", "bf16-mixed") == 756.0
    assert peak_tflops("NVIDIA A100-SXM4-80GB", "32-true") == 156.0  # TF32
    assert peak_tflops("cpu", "32-true") is None


def test_options(tmp_path):
    opts = parse(["suite=tiny", f"out={tmp_path}", "steps=4", "levers=eager,graphs", "peak_tflops=1.5"])
    assert opts["steps"] == 4 and opts["levers"] == ["eager", "graphs"] and opts["peak_tflops"] == 1.5
    assert opts["device"] == "cpu" and opts["precision"] == "32-true" and opts["data_file"].endswith("sentiment.csv")
    with pytest.raises(LitNlpError) as err:
        parse(["suite=tiny", "stepz=4", "compile=maybe", "data_file=missing.tsv"])
    msg = str(err.value)
    assert "unknown option stepz" in msg and "compile=maybe" in msg and "\n" not in msg
    with pytest.raises(LitNlpError, match="data_file=missing.tsv not found"):
        parse(["suite=tiny", "data_file=missing.tsv"])
    with pytest.raises(LitNlpError, match="suite=huge"):
        parse(["suite=huge"])
    with pytest.raises(LitNlpError) as err:
        parse(["suite=tiny", "levers=eager,turbo", "parts=training,everything", "archs=bert-huge"])
    msg = str(err.value)
    assert "unknown lever turbo" in msg and "unknown part everything" in msg and "bert-huge" in msg


def test_data_suite_options_and_a_tiny_run(tmp_path):
    """suite=data: its options, then both paths on a 400-row corpus in this process (isolate=false);
    the figures are sane and results.md holds the table and the verdicts. Timings are not judged."""
    from lit_nlp.bench import data_prep
    from lit_nlp.bench.run import run_bench

    # not ../shared's SST-2 (its default): any checkout runs this
    sst2 = write_table([{"sentence": r["text"], "label": int(r["label"] == "positive")}  # SST-2's layout
                        for r in synthetic_rows(300, seed=5)], tmp_path / "sst2.tsv")
    opts = parse(["suite=data", f"out={tmp_path}", "sizes=400,4000", "num_proc=2", "isolate=false",
                  f"sst2_train={sst2}"])
    assert opts["sizes"] == [400, 4000] and opts["num_proc"] == 2 and opts["isolate"] is False
    assert opts["parts"] == ["data"] and opts["baseline_max_rows"] == 1_000_000
    assert parse(["suite=data", f"out={tmp_path}", f"sst2_train={sst2}"])["sizes"] == [100_000, 1_000_000, 10_000_000]
    with pytest.raises(LitNlpError) as err:
        parse(["suite=data", "sizes=10,x", "num_proc=0", "sst2_train=missing.tsv"])
    msg = str(err.value)
    assert "sizes=10,x" in msg and "num_proc=0" in msg and "sst2_train=missing.tsv" in msg and "\n" not in msg
    corpus = data_prep.write_corpus(700, str(sst2), tmp_path / "corpus.tsv")
    lines = corpus.read_text().splitlines()
    assert len(lines) == 701 and lines[0] == "sentence\tlabel"
    assert lines[301].split("\t")[0].endswith(" 1") and lines[601].split("\t")[0].endswith(" 2")
    opts = parse(["suite=data", f"out={tmp_path / 'out'}", "sizes=400", "baseline_max_rows=400", "num_proc=1",
                  "isolate=false", f"sst2_train={sst2}"])
    results = run_bench(opts)
    rows = {r["side"]: r for r in results["prep"]["rows"]}
    assert set(rows) == {"streamed", "whole"}
    for r in rows.values():
        assert r["rows"] == 400 and r["rows_kept"] == 400 and r["seconds"] > 0 and r["peak_rss_gb"] > 0.1
    assert set(results["prep"]["targets"]) == {"peak_rss_gb", "rows_per_s", "speedup"}
    md = (tmp_path / "out" / "results.md").read_text()
    assert "## Data preparation" in md and "| 400 | streamed |" in md and "x whole-file" in md and "Targets" in md
    assert not list((tmp_path / "out").rglob("*.tsv"))  # corpora and caches removed
