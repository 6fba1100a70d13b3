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

from conftest import (ROOT, Started, compose_cfg, compose_resume, hidden_word_rows, metrics_of, synthetic_rows,
                      write_table)
from lit_nlp.callbacks import Throughput
from lit_nlp.errors import LitNlpError
from lit_nlp.train import train

# log every step, so the training losses after the restart can be compared one by one
COMMON = ["trainer.deterministic=true", "trainer.log_every_n_steps=1"]


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


TASKS = {"classification": classification, "seq2seq": seq2seq, "extractive_qa": extractive_qa}


class Crash(Exception):
    pass


def crash_at(monkeypatch, epoch: int, batch: int) -> None:
    """Make the next run raise as it starts training batch `batch` of epoch `epoch` (a crash
    loses what the last checkpoint does not hold, as a kill does). Through the Throughput
    callback, which every run has and which does nothing at a batch's start."""

    def crashing(self, trainer, pl_module, batch_data, batch_idx):
        if (trainer.current_epoch, batch_idx) == (epoch, batch):
            raise Crash

    monkeypatch.setattr(Throughput, "on_train_batch_start", crashing)


def scalars(run: Path, tag: str) -> dict[int, float]:
    """step -> value of one TensorBoard scalar, over every events file of the run (a resumed run
    adds its own); a step logged twice (before a crash and again after the restart) keeps the
    later value, which is what the resumed run trained with."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[int, float] = {}
    files = sorted((run / "tensorboard").glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime)
    for path in files:
        events = EventAccumulator(str(path), size_guidance={"scalars": 0})
        events.Reload()
        if tag in events.Tags()["scalars"]:
            out.update({e.step: e.value for e in events.Scalars(tag)})
    return out


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def assert_same_run(straight: Path, resumed: Path, monitor: str, restart_step: int) -> None:
    """Everything a user reads from the two runs agrees, exactly (deterministic CPU runs)."""
    a, b = metrics_of(straight), metrics_of(resumed)
    for key in sorted(set(a) | set(b)):
        if key.startswith("train/seconds") or key == "train/samples_per_sec":
            continue  # wall time
        assert b.get(key) == a.get(key), key
    # every epoch's validation, and every training loss from the restart on
    assert scalars(resumed, monitor) == scalars(straight, monitor)
    losses_a, losses_b = scalars(straight, "train/loss_step"), scalars(resumed, "train/loss_step")
    after = {s: v for s, v in losses_a.items() if s >= restart_step}
    assert after and {s: losses_b.get(s) for s in after} == after
    wa, wb = weights(straight / "checkpoints" / "last.ckpt"), weights(resumed / "checkpoints" / "last.ckpt")
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


@pytest.fixture(scope="module")
def straight_runs(tmp_path_factory):
    """Each task's 3-epoch run that never stopped, trained when a test first asks for it and
    shared by the tests of this file: task -> (overrides, run dir, cache dir)."""
    runs = {}

    def straight(task: str) -> tuple[list[str], Path, Path]:
        if task not in runs:
            tmp = tmp_path_factory.mktemp(task)
            common = TASKS[task](tmp) + COMMON + ["trainer.max_epochs=3"]
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
    common = classification(tmp_path) + COMMON + ["trainer.max_epochs=2", "trainer.precision=16-mixed"]
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
def test_sigkill_then_resume_from_the_cli_with_a_loader_worker(tmp_path):
    """The README's procedure: kill -9 during epoch 2, then `train.py resume=<dir>` ends as the
    run that never stopped. With data.num_workers=1, as a GPU machine loads: the worker fills
    its queue as soon as the resumed run builds the loader, before Lightning sets the epoch, and
    used to replay epoch 1's batches."""
    data = write_table(synthetic_rows(1200, seed=3), tmp_path / "train.csv")
    overrides = ["model=bert_tiny", "data=csv", f"data.train_file={data}", "data.batch_size=4", "data.max_length=32",
                 "tokenizer.vocab_size=300", "model.optimizer.lr=3e-3", "trainer.max_epochs=2", "data.num_workers=1",
                 *COMMON]
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
