"""A resumed run is the run that never stopped: every epoch's validation metrics, the training
losses after the restart, the final weights (bit for bit on the CPU) and the counters in
metrics.json, for every task, with dropout on and a model that still improves in the resumed
epoch; after a crash at an epoch's start, after a mid-epoch checkpoint, with a loader worker,
after a real SIGKILL, and with a 16-mixed GradScaler. last.ckpt is the last epoch whatever the
monitored metric did."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import (COMPARABLE_RUN, ROOT, Crash, Started, assert_same_run, compose_cfg, compose_resume, crash_at,
                      hidden_word_rows, metrics_of, pretrained_tiny_bert, scalars, synthetic_rows, tagged_sentences,
                      write_conll, write_table)
from lit_nlp.errors import LitNlpError
from lit_nlp.train import train


def classification(tmp: Path) -> list[str]:
    # 240 training rows = 15 steps of 16 per epoch
    data = write_table(synthetic_rows(300, seed=2), tmp / "train.csv")
    return ["model=bert_tiny", "data=csv", f"data.train_file={data}", "data.batch_size=16", "data.max_length=32",
            "tokenizer.vocab_size=300", "model.optimizer.lr=3e-3"]


def seq2seq(tmp: Path) -> list[str]:
    rows = [{"question": r["question"], "context": r["context"], "answer": r["answer"]}
            for r in hidden_word_rows(300, seed=5, filler_words=(6, 10))]
    data = write_table(rows, tmp / "train.jsonl")
    return ["model=t5_tiny", "data=seq2seq_jsonl", f"data.train_file={data}",
            'data.source_template="question: {question} context: {context}"', "data.target_column=answer",
            "data.truncate_column=context", "data.task=qa", "data.max_source_length=48", "data.max_target_length=6",
            "data.batch_size=16", "tokenizer.vocab_size=400", "model.optimizer.lr=3e-3"]


def extractive_qa(tmp: Path) -> list[str]:
    rows = [{"id": f"q{i}", "question": r["question"], "context": r["context"],
             "answers": {"text": [r["answer"]], "answer_start": [r["start"]]}}
            for i, r in enumerate(hidden_word_rows(300, seed=7, filler_words=(6, 10)))]
    data = write_table(rows, tmp / "train.jsonl")
    return ["model=bert_tiny_qa", "data=extractive_qa", "data.format=jsonl", f"data.train_file={data}",
            "data.max_length=32", "data.doc_stride=8", "data.batch_size=16", "tokenizer.vocab_size=300",
            "model.optimizer.lr=3e-3"]


def token_classification(tmp: Path) -> list[str]:
    # 240 training sentences (30 more carved for validation, 30 for test), every fifth longer than a window
    data = write_conll(tagged_sentences(300, seed=9), tmp / "train.conll")
    return ["model=bert_tiny_ner", "data=conll", f"data.train_file={data}", "data.max_length=24", "data.stride=6",
            "data.batch_size=16", "tokenizer.vocab_size=200", "model.optimizer.lr=1e-3"]


TASKS = {"classification": classification, "seq2seq": seq2seq, "extractive_qa": extractive_qa,
         "token_classification": token_classification}


@pytest.fixture(scope="module")
def straight_runs(tmp_path_factory):
    """Each task's 3-epoch run that never stopped, trained when a test first asks for it and
    shared by the tests of this file: task -> (overrides, run dir, cache dir)."""
    runs = {}

    def straight(task: str) -> tuple[list[str], Path, Path]:
        if task not in runs:
            tmp = tmp_path_factory.mktemp(task)
            common = TASKS[task](tmp) + COMPARABLE_RUN + ["trainer.max_epochs=3"]
            train(compose_cfg(common, tmp / "straight", cache_dir=tmp / "cache"))
            runs[task] = (common, tmp / "straight", tmp / "cache")
        return runs[task]

    return straight


@pytest.mark.parametrize("task", list(TASKS))
def test_resume_after_a_crash_equals_the_uninterrupted_run(task, straight_runs, tmp_path, monkeypatch):
    """Crashed as epoch 2 starts, resumed from the end-of-epoch-1 last.ckpt; the model improves
    after the restart (so the test checkpoint is not the one both runs share)."""
    common, straight, cache = straight_runs(task)
    monitor = metrics_of(straight)  # the task's monitored metric, as train() wrote it
    monitor = next(k[: -len("_best")] for k in monitor if k.endswith("_best"))
    run = tmp_path / "crashed"
    crash_at(monkeypatch, epoch=1, batch=0)
    with pytest.raises(Crash):
        train(compose_cfg(common, run, cache_dir=cache))
    monkeypatch.undo()
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0
    with pytest.raises(LitNlpError, match="resume cannot change model.optimizer.lr"):
        train(compose_resume(run, ["model.optimizer.lr=1e-2"]))
    train(compose_resume(run, []))

    values = scalars(straight, monitor)
    assert max(values.values()) > values[min(values)], f"{monitor} never improved after epoch 1: {values}"
    steps_per_epoch = metrics_of(straight)["global_step"] // 3
    assert_same_run(straight, run, monitor, restart_step=steps_per_epoch)


def test_resume_from_a_mid_epoch_checkpoint(straight_runs, tmp_path, monkeypatch):
    """every_n_train_steps=4 writes last.ckpt at step 19 (epoch 2, batch 4 of 15); a crash at
    batch 7 resumes there: the loader leaves out the 4 batches already trained, and each step
    draws its dropout masks as in the straight run."""
    common, straight, cache = straight_runs("classification")
    run = tmp_path / "mid_epoch"
    crash_at(monkeypatch, epoch=1, batch=7)
    with pytest.raises(Crash):
        train(compose_cfg([*common, "callbacks.model_checkpoint.every_n_train_steps=4"], run, cache_dir=cache))
    monkeypatch.undo()
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert (ckpt["epoch"], ckpt["global_step"]) == (1, 20)
    train(compose_resume(run, []))
    assert_same_run(straight, run, "val/acc", restart_step=20)


def test_sixteen_mixed_resumes_its_grad_scaler(tmp_path, monkeypatch):
    """16-mixed on the CPU (real fp16 with a GradScaler, lit_nlp.mixed_precision): the scaler's
    scale and growth tracker travel in the checkpoint, so the resumed run scales its losses as
    the straight one does."""
    common = classification(tmp_path) + COMPARABLE_RUN + ["trainer.max_epochs=2", "trainer.precision=16-mixed"]
    straight, run = tmp_path / "straight", tmp_path / "crashed"
    train(compose_cfg(common, straight))
    crash_at(monkeypatch, epoch=1, batch=0)
    with pytest.raises(Crash):
        train(compose_cfg(common, run))
    monkeypatch.undo()
    scaler = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["MixedPrecision"]
    assert scaler["scale"] > 0 and "_growth_tracker" in scaler
    train(compose_resume(run, []))
    assert_same_run(straight, run, "val/acc", restart_step=15)


def test_last_ckpt_is_the_last_epoch_when_the_metric_stops_improving(tmp_path):
    """lr 0 after the first steps: val/acc is flat, so no epoch after the first is the best, and
    Lightning's own save_last would leave last.ckpt at epoch 0."""
    common = classification(tmp_path) + ["trainer.max_epochs=3", "model.optimizer.lr=1e-9"]
    run = tmp_path / "run"
    train(compose_cfg(common, run))
    best = list((run / "checkpoints").glob("best-*.ckpt"))
    assert len(best) == 1 and best[0].name.startswith("best-epoch00")
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (2, metrics_of(run)["global_step"])


@pytest.mark.slow
@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_sigkill_then_resume_from_the_cli_with_a_loader_worker(finetune, tmp_path):
    """The README's procedure: kill -9 during epoch 2, then `train.py resume=<dir>` ends as the
    run that never stopped. With data.num_workers=1, as a GPU machine loads: the worker fills
    its queue as soon as the resumed run builds the loader, before Lightning sets the epoch, and
    used to replay epoch 1's batches. With LoRA the checkpoint holds only the adapters and the
    head: the resumed process rebuilds the base from its folder."""
    rows = synthetic_rows(1200, seed=3)
    data = write_table(rows, tmp_path / "train.csv")
    if finetune == "full":
        model = ["model=bert_tiny", "tokenizer.vocab_size=300", "model.optimizer.lr=3e-3"]
    else:  # model=minilm's config on a tiny "pretrained" base (tests/test_lora.py)
        base = pretrained_tiny_bert(tmp_path / "base", [r["text"] for r in rows])
        model = ["model=minilm", f"model.backbone.pretrained={base}", "model.finetune=lora", "model.optimizer.lr=1e-2"]
    overrides = [*model, "data=csv", f"data.train_file={data}", "data.batch_size=4", "data.max_length=32",
                 "trainer.max_epochs=2", "data.num_workers=1", *COMPARABLE_RUN]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "train.py", *overrides, "trainer.accelerator=cpu",
                             "trainer.enable_progress_bar=false", f"paths.cache_dir={tmp_path / 'cache'}",
                             f"hydra.run.dir={run}"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert last.exists(), "the first epoch never checkpointed"
    time.sleep(0.5)  # into epoch 2 (240 steps of a few ms each)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "metrics.json").exists(), "the run finished before it could be killed"
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 0  # whole, and the safe loader reads it

    # the resumed run in the background while the straight one trains here: a core each
    resumed = Started([sys.executable, "train.py", f"resume={run}"], tmp_path / "resumed_process", cwd=ROOT, env=env)
    straight = tmp_path / "straight"
    try:
        train(compose_cfg(overrides, straight, cache_dir=tmp_path / "cache"))
    except BaseException:
        resumed.stop()
        raise
    result = resumed.result()
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_run(straight, run, "val/acc", restart_step=240)
