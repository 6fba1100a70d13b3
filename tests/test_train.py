"""train(cfg) end to end on tiny random-init models: learning, logging, checkpoints, export,
resume (in-process and after SIGKILL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import ROOT, compose_cfg, synthetic_rows, tiny_overrides, write_table
from lit_nlp.errors import LitNlpError
from lit_nlp.run_dir import resume_argv
from lit_nlp.train import train


def metrics_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.parametrize("model", ["bert_tiny", "distilbert_tiny"])
def test_fast_dev_run(tmp_path, synthetic_csv, model):
    cfg = compose_cfg(tiny_overrides(synthetic_csv, model=model) + ["debug=fast_dev_run"], tmp_path / "run")
    train(cfg)
    metrics = metrics_of(tmp_path / "run")
    assert 0.0 <= metrics["test/acc"] <= 1.0
    assert metrics["global_step"] == 1


def test_tiny_bert_learns_synthetic_task(tmp_path):
    data = write_table(synthetic_rows(600, seed=1), tmp_path / "train.csv")
    run = tmp_path / "run"
    cfg = compose_cfg(tiny_overrides(data, epochs=4) + ["model.optimizer.lr=3e-3"], run)
    best = train(cfg)
    assert best >= 0.95
    metrics = metrics_of(run)
    assert metrics["val/acc_best"] == pytest.approx(best)
    assert metrics["test/acc"] >= 0.95
    for key in ("test/f1_macro", "test/precision_macro", "test/recall_macro", "test/f1/positive",
                "data/rows/train", "data/rows/validation", "data/rows/test", "train/samples_per_sec"):
        assert key in metrics, key
    assert metrics["data/rows/train"] + metrics["data/rows/validation"] + metrics["data/rows/test"] == 600
    # the run dir holds everything a user looks for
    assert (run / "config.yaml").is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert list((run / "checkpoints").glob("best-*.ckpt"))
    assert (run / "confusion_matrix.png").stat().st_size > 0
    assert (run / "export" / "lit_nlp.json").is_file()


def test_tensorboard_holds_scalars_image_and_real_hparams(tmp_path, synthetic_csv):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run = tmp_path / "run"
    train(compose_cfg(tiny_overrides(synthetic_csv, epochs=2) + ["trainer.log_every_n_steps=2"], run))
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"tensors": 0, "scalars": 0, "images": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    for tag in ("train/loss_step", "val/acc", "val/f1_macro", "lr", "train/samples_per_sec", "test/acc"):
        assert tag in scalars, (tag, sorted(scalars))
    assert "val/confusion_matrix" in events.Tags()["images"]
    # the hparams tab: a session with the real final metric values
    content = events.PluginTagToContent("hparams")
    assert content
    parsed = [plugin_data_pb2.HParamsPluginData.FromString(c) for c in content.values()]
    experiment = next(p.experiment for p in parsed if p.HasField("experiment"))
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    assert {"test/acc", "val/acc_best"} <= metric_tags
    final = events.Scalars("val/acc_best")[-1].value
    assert final == pytest.approx(metrics_of(run)["val/acc_best"], abs=1e-6)


def test_export_loads_in_plain_transformers_pipeline(tmp_path, synthetic_csv):
    run = tmp_path / "run"
    train(compose_cfg(tiny_overrides(synthetic_csv, epochs=1), run))
    code = (
        "import sys, json; from transformers import pipeline; "
        "clf = pipeline('text-classification', model=sys.argv[1]); "
        "out = clf(['the film was superb', 'the plot was dreadful']); "
        "print(json.dumps([o['label'] for o in out])); "
        "assert 'lit_nlp' not in sys.modules"
    )
    result = subprocess.run([sys.executable, "-c", code, str(run / "export")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    labels = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(labels) <= {"positive", "negative"}


def test_fresh_run_refuses_a_dir_holding_a_run(tmp_path, synthetic_csv):
    run = tmp_path / "run"
    train(compose_cfg(tiny_overrides(synthetic_csv) + ["debug=fast_dev_run"], run))
    with pytest.raises(LitNlpError, match="already holds a run; continue it with resume="):
        train(compose_cfg(tiny_overrides(synthetic_csv) + ["debug=fast_dev_run"], run))


def test_a_run_stopped_before_its_first_checkpoint_is_not_a_dead_end(tmp_path, synthetic_csv):
    """A run that failed while its Trainer was built (here: a precision Lightning refuses) left
    config.yaml and no checkpoint: neither a fresh run nor resume= can use that dir, and both say
    what does (the fresh run's error used to send the user to resume=, whose error sent them back)."""
    run = tmp_path / "run"
    with pytest.raises(LitNlpError, match="^trainer: Precision 'bf17' is invalid"):
        train(compose_cfg(tiny_overrides(synthetic_csv) + ["trainer.precision=bf17"], run))
    assert (run / "config.yaml").is_file() and not (run / "checkpoints" / "last.ckpt").exists()
    fix = f"delete it \\(rm -r {run}\\)"
    with pytest.raises(LitNlpError, match=f"stopped before its first checkpoint, so there is nothing to resume; {fix}"):
        train(compose_cfg(tiny_overrides(synthetic_csv), run))
    with pytest.raises(LitNlpError, match=f"nothing to resume in {run}: .*{fix} and start again without resume"):
        train(compose_resume(run, []))


def compose_resume(run: Path, overrides: list[str]):
    """What `python train.py resume=<run>` composes: the run's saved config plus overrides."""
    with initialize_config_dir(str(run), version_base="1.3"):
        return compose("config", overrides=[f"resume={run}", *overrides])


class Crash(Exception):
    pass


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_resume_equals_uninterrupted_run(tmp_path, monkeypatch, precision):
    """2 epochs straight == the same run crashed as epoch 2 starts, then resumed; in bf16-mixed
    too (the GPU default: fused AdamW with gradient clipping under autocast)."""
    from lit_nlp.callbacks import EpochSeed

    data = write_table(synthetic_rows(300, seed=2), tmp_path / "train.csv")
    common = tiny_overrides(data, epochs=2) + ["trainer.deterministic=true", f"trainer.precision={precision}"]
    straight = tmp_path / "straight"
    train(compose_cfg(common, straight, cache_dir=tmp_path / "cache"))

    interrupted = tmp_path / "interrupted"
    original = EpochSeed.on_train_epoch_start

    def crash_in_epoch_2(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            raise Crash
        original(self, trainer, pl_module)

    monkeypatch.setattr(EpochSeed, "on_train_epoch_start", crash_in_epoch_2)
    with pytest.raises(Crash):
        train(compose_cfg(common, interrupted, cache_dir=tmp_path / "cache"))
    monkeypatch.setattr(EpochSeed, "on_train_epoch_start", original)
    assert not (interrupted / "metrics.json").exists()

    with pytest.raises(LitNlpError, match="resume cannot change model.optimizer.lr"):
        train(compose_resume(interrupted, ["model.optimizer.lr=1e-2"]))
    train(compose_resume(interrupted, []))

    a, b = metrics_of(straight), metrics_of(interrupted)
    assert b["epochs"] == a["epochs"] == 2
    for key in ("test/acc", "test/loss", "test/f1_macro", "val/acc_best", "global_step"):
        assert b[key] == pytest.approx(a[key], abs=1e-6), key
    # the resumed run continued the same TensorBoard log dir
    assert len(list((interrupted / "tensorboard").glob("events.out.tfevents.*"))) >= 2


def test_resume_argv_composes_the_saved_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("seed: 1\n")
    argv = resume_argv(["train.py", f"resume={run}", "trainer.max_epochs=5"])
    assert f"--config-path={run.resolve()}" in argv
    assert f"hydra.run.dir={run.resolve()}" in argv and "trainer.max_epochs=5" in argv
    with pytest.raises(LitNlpError, match="no config.yaml"):
        resume_argv(["train.py", f"resume={tmp_path / 'missing'}"])
    assert resume_argv(["train.py", "model=bert_tiny"]) == ["train.py", "model=bert_tiny"]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_from_cli(tmp_path):
    """Kill -9 during epoch 2; `train.py resume=<dir>` finishes with the same metrics as a
    run that never stopped (it loses only the work since the last checkpoint)."""
    data = write_table(synthetic_rows(1200, seed=3), tmp_path / "train.csv")
    overrides = tiny_overrides(data, epochs=2) + ["data.batch_size=4", "trainer.deterministic=true",
                                                  "trainer.enable_progress_bar=false"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    run = tmp_path / "killed"
    cmd = [sys.executable, "train.py", *overrides, f"hydra.run.dir={run}", f"paths.cache_dir={tmp_path / 'cache'}",
           "trainer.accelerator=cpu"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert last.exists(), "the first epoch never checkpointed"
    time.sleep(0.5)  # well into epoch 2 (about 240 steps of a few ms each)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "metrics.json").exists(), "the run finished before it could be killed"
    # the surviving checkpoint is whole and loads with the safe loader
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 0

    resumed = subprocess.run([sys.executable, "train.py", f"resume={run}"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    straight = tmp_path / "straight"
    subprocess.run([*cmd[:-3], f"hydra.run.dir={straight}", f"paths.cache_dir={tmp_path / 'cache'}",
                    "trainer.accelerator=cpu"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    a, b = metrics_of(straight), metrics_of(run)
    for key in ("test/acc", "test/loss", "val/acc_best", "global_step"):
        assert b[key] == pytest.approx(a[key], abs=1e-6), key
    saved = OmegaConf.load(run / "config.yaml")
    assert saved.resume == str(run.resolve())


def test_batch_size_finder_trains_with_the_size_it_found(tmp_path, synthetic_csv):
    """callbacks=batch_size_finder: 8 tried, then 16 and 32 (max_trials=3; nothing runs out of memory on
    a CPU) = 32, so the 320 training rows take 10 steps instead of 40; test stays at its own
    data.eval_batch_size."""
    run = tmp_path / "run"
    cfg = compose_cfg(tiny_overrides(synthetic_csv) + ["callbacks=batch_size_finder", "data.batch_size=8",
                                                       "callbacks.batch_size_finder.max_trials=3"], run)
    train(cfg)
    metrics = metrics_of(run)
    assert metrics["data/rows/train"] == 320 and metrics["global_step"] == 320 // 32
    assert not list(run.glob(".scale_batch_size_*.ckpt"))  # the finder's scratch checkpoint is gone


# ----------------------------------------------------------------- bad config: one line
def test_config_types_checked_before_anything_is_built(tmp_path):
    from lit_nlp.config_checks import check_config

    cfg = compose_cfg(["model.optimizer.lr=abc", "data.batch_size=0", "trainer.max_epochs=2.5", "data.val_ratio=-0.5",
                       "data.max_length=16.0", "seed=x"], tmp_path / "run")
    with pytest.raises(LitNlpError) as err:
        train(cfg)
    msg = str(err.value)
    assert "\n" not in msg
    for key in ("model.optimizer.lr", "data.batch_size", "trainer.max_epochs", "data.val_ratio", "data.max_length",
                "seed"):
        assert key in msg, key
    assert not (tmp_path / "run").exists()  # nothing claimed: the same command, fixed, runs there
    check_config(compose_cfg([], tmp_path / "run"))  # the shipped defaults pass
    check_config(compose_cfg(["experiment=t5_squad", "data.train_file=x.json"], tmp_path / "run"))


def test_project_errors_raised_inside_hydra_instantiate_print_one_line(capsys):
    from hydra.utils import instantiate

    from lit_nlp.errors import exit_on_user_error

    @exit_on_user_error
    def build():
        instantiate({"_target_": "lit_nlp.data.classification.ClassificationDataModule", "train_file": "x.csv",
                     "label_checks": "maybe"})

    with pytest.raises(SystemExit) as exit_info:
        build()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == "error: data.label_checks must be error or warn, got 'maybe'\n"


def test_cli_error_from_a_constructor_is_one_line(tmp_path, synthetic_csv):
    proc = subprocess.run(
        [sys.executable, "train.py", "model=bert_tiny", "data=csv", f"data.train_file={synthetic_csv}",
         "model.finetune=partial", f"hydra.run.dir={tmp_path / 'run'}", f"paths.cache_dir={tmp_path / 'cache'}"],
        cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "HYDRA_FULL_ERROR" not in proc.stderr and "full_key" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: model.finetune='partial' is not one of full, freeze_embeddings, freeze_lower, head_only"]


def test_balanced_class_weights_from_the_cli_config_are_saved_with_the_model(tmp_path):
    rows = synthetic_rows(600, seed=5)
    rows = [r for r in rows if r["label"] == "negative"][:40] + [r for r in rows if r["label"] == "positive"]
    data = write_table(rows, tmp_path / "imbalanced.csv")
    run = tmp_path / "run"
    train(compose_cfg(tiny_overrides(data) + ["model.class_weights=balanced"], run))
    metrics = metrics_of(run)
    weights = json.loads((run / "export" / "lit_nlp.json").read_text())["class_weights"]
    # n / (2 x n_c) over the training split's counts: the rare class weighs more, in proportion
    cache = next((tmp_path / "cache" / "classification").glob("*/meta.json"))
    neg, pos = json.loads(cache.read_text())["label_counts"]["train"]
    assert weights == pytest.approx([(neg + pos) / (2 * neg), (neg + pos) / (2 * pos)])
    assert metrics["data/rows/train"] == neg + pos and neg < pos / 5
    ckpt = torch.load(next((run / "checkpoints").glob("best-*.ckpt")), weights_only=True)
    assert ckpt["hyper_parameters"]["class_weights"] == pytest.approx(weights)
    assert "test/f1/negative" in metrics and "test/f1_macro" in metrics
