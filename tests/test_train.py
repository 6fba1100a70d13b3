"""train(cfg) end to end on tiny random-init models: learning, logging, checkpoints, export,
the run dir's rules (resume itself: test_resume.py)."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest
import torch

from conftest import ROOT, Started, compose_cfg, compose_resume, metrics_of, synthetic_rows, tiny_overrides, write_table
from lit_nlp.errors import LitNlpError
from lit_nlp.run_dir import resume_argv
from lit_nlp.train import train


@pytest.mark.parametrize("model", ["bert_tiny", "distilbert_tiny"])
def test_fast_dev_run(tmp_path, synthetic_csv, model):
    cfg = compose_cfg(tiny_overrides(synthetic_csv, model=model) + ["debug=fast_dev_run"], tmp_path / "run")
    train(cfg)
    metrics = metrics_of(tmp_path / "run")
    assert metrics["global_step"] == 1 and metrics["train/samples"] == 16  # one training batch
    # one test batch (eval_batch_size 64 > the 40 test rows) was scored: acc counts whole rows of
    # it, and an untrained 2-way classifier's loss is near ln 2
    scored = min(64, metrics["data/rows/test"])
    assert metrics["test/acc"] * scored == pytest.approx(round(metrics["test/acc"] * scored), abs=1e-4)
    assert metrics["test/loss"] == pytest.approx(0.693, abs=0.05)


def test_tiny_bert_learns_synthetic_task(trained_classifier):
    run, best = trained_classifier  # 600 rows, 4 epochs at lr 3e-3 (conftest)
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


def test_tensorboard_holds_scalars_image_and_real_hparams(trained_classifier):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run = trained_classifier[0]  # 4 epochs of 30 steps, logged every 10 (trainer.log_every_n_steps)
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


PIPELINE = (
    "import sys, json; from transformers import pipeline; "
    "clf = pipeline('text-classification', model=sys.argv[1]); "
    "out = clf(['the film was superb', 'the plot was dreadful']); "
    "print(json.dumps([o['label'] for o in out])); "
    "assert 'lit_nlp' not in sys.modules"
)


@pytest.fixture(scope="module")
def fresh_interpreters(trained_classifier, tmp_path_factory):
    """The two commands of this file that start a new interpreter: the trained export in
    transformers.pipeline (PIPELINE), and train.py stopped by a constructor's error; started
    together when the first test asks, so that they import on both cores: name -> Started."""
    folder = tmp_path_factory.mktemp("train_processes")
    data = write_table(synthetic_rows(400), folder / "synthetic.csv")
    started = {
        "pipeline": Started([sys.executable, "-c", PIPELINE, str(trained_classifier[0] / "export")],
                            folder / "pipeline"),
        "constructor_error": Started(
            [sys.executable, "train.py", "model=bert_tiny", "data=csv", f"data.train_file={data}",
             "model.finetune=partial", f"hydra.run.dir={folder / 'run'}", f"paths.cache_dir={folder / 'cache'}"],
            folder / "constructor_error", cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}),
    }
    yield started
    for process in started.values():
        process.stop()


def test_export_loads_in_plain_transformers_pipeline(fresh_interpreters):
    result = fresh_interpreters["pipeline"].result(timeout=120)
    assert result.returncode == 0, result.stderr
    labels = json.loads(result.stdout.strip().splitlines()[-1])
    # the label names come from the export's config, and the trained model (test acc 1.0) is right
    assert labels == ["positive", "negative"]


def test_fresh_run_refuses_a_dir_holding_a_run(tmp_path, synthetic_csv, trained_classifier):
    run = tmp_path / "run"
    shutil.copytree(trained_classifier[0], run)  # a finished run, copied: the refusal must not touch it
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    with pytest.raises(LitNlpError, match="already holds a run; continue it with resume="):
        train(compose_cfg(tiny_overrides(synthetic_csv) + ["debug=fast_dev_run"], run))
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before


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


def test_cli_error_from_a_constructor_is_one_line(fresh_interpreters):
    proc = fresh_interpreters["constructor_error"].result()  # train.py ... model.finetune=partial
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "HYDRA_FULL_ERROR" not in proc.stderr and "full_key" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: model.finetune='partial' is not one of full, freeze_embeddings, freeze_lower, head_only, lora"]


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
