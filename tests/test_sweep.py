"""Sweeps through the real CLI (`train.py -m`) on a tiny BERT: one run dir per job, the summary
(grid, Optuna, cross-validation), failed jobs, resume_sweep, and TensorBoard per job."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from conftest import ROOT, Started, metrics_of, run_cli, synthetic_rows, write_table

# 120 rows, 1 epoch of 6 batches: a job takes about a second once the process is up
TINY = ["model=bert_tiny", "data=csv", "trainer.max_epochs=1", "data.max_length=32", "tokenizer.vocab_size=300",
        "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def sweep_args(data: Path, sweep_dir: Path, cache: Path, *overrides: str) -> list[str]:
    return ["-m", *TINY, f"data.train_file={data}", f"paths.cache_dir={cache}", f"hydra.sweep.dir={sweep_dir}",
            *overrides]


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir())


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_table(synthetic_rows(120, seed=5), tmp_path_factory.mktemp("data") / "small.csv")


@pytest.fixture(scope="module")
def failing_sweep_cli(tmp_path_factory, data) -> tuple[Started, Path]:
    """A real `python train.py -m` of two jobs, one of them failing (data.text_column=nope),
    started in the background: (the process, its sweep dir)."""
    root = tmp_path_factory.mktemp("failing_sweep")
    started = Started([sys.executable, "train.py", *sweep_args(data, root / "sweep", root / "cache"),
                       "data.text_column=nope,text"], root / "process", cwd=ROOT)
    yield started, root / "sweep"
    started.stop()


@pytest.fixture(scope="module")
def grid(tmp_path_factory, data, failing_sweep_cli) -> Path:
    """A finished 2x2 grid sweep, shared by the tests that only read it (and resume it). It
    starts failing_sweep_cli first, whose interpreter then imports and trains on the other core
    while this sweep trains here."""
    root = tmp_path_factory.mktemp("grid")
    run_cli(sweep_args(data, root / "sweep", root / "cache", "model.optimizer.lr=1e-5,3e-3",
                       "data.max_length=32,48"))
    return root / "sweep"


def test_grid_sweep_writes_a_run_dir_and_a_row_per_job(grid):
    jobs = job_dirs(grid)
    assert len(jobs) == 4
    # named by job number and overrides; file paths and device flags are left out
    assert jobs[0].name.startswith("0_") and "model.optimizer.lr=1e-05" in jobs[0].name
    assert all("train_file" not in j.name and "accelerator" not in j.name for j in jobs)
    for job in jobs:
        assert (job / "metrics.json").is_file() and (job / "tensorboard").is_dir()

    summary = pd.read_csv(grid / "summary.csv")
    assert len(summary) == 4 and set(summary["job"]) == {j.name for j in jobs}
    assert list(summary.columns[:5]) == ["job", "status", "objective", "model.optimizer.lr", "data.max_length"]
    assert {"val/acc_best", "test/acc", "test/f1_macro", "error", "best"} <= set(summary.columns)
    assert "test/f1/positive" not in summary.columns  # per-class metrics stay in metrics.json
    assert (summary["status"] == "ok").all()
    assert sorted(summary["model.optimizer.lr"]) == [1e-5, 1e-5, 3e-3, 3e-3]
    assert sorted(summary["data.max_length"]) == [32, 32, 48, 48]
    # sorted by the objective (monitor_mode max), best first and marked once
    assert list(summary["objective"]) == sorted(summary["objective"], reverse=True)
    assert list(summary["best"]) == [True, False, False, False]
    for row in summary.to_dict("records"):
        stored = metrics_of(grid / row["job"])
        assert row["objective"] == pytest.approx(stored["val/acc_best"])
        assert row["test/acc"] == pytest.approx(stored["test/acc"])
    assert (grid / "sweep_objective.png").stat().st_size > 0  # drawn when the sweep ended
    md = (grid / "summary.md").read_text()
    assert "4 jobs: 4 ok" in md and md.count("| ok |") == 4 and md.count("**best**") == 1


def test_tensorboard_of_a_sweep_holds_each_jobs_metrics_and_hparams(grid):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    for job in job_dirs(grid):
        events = EventAccumulator(str(job / "tensorboard"), size_guidance={"tensors": 0, "scalars": 0})
        events.Reload()
        metrics = metrics_of(job)
        for tag in ("val/acc_best", "test/acc"):
            assert events.Scalars(tag)[-1].value == pytest.approx(metrics[tag], abs=1e-6)
        parsed = [plugin_data_pb2.HParamsPluginData.FromString(c)
                  for c in events.PluginTagToContent("hparams").values()]
        session = next(p.session_start_info for p in parsed if p.HasField("session_start_info"))
        overrides = dict(o.split("=", 1) for o in OmegaConf.load(job / ".hydra" / "overrides.yaml"))
        assert session.hparams["model.optimizer.lr"].number_value == pytest.approx(float(overrides["model.optimizer.lr"]))
        assert session.hparams["data.max_length"].number_value == int(overrides["data.max_length"])


def test_resume_sweep_on_a_finished_sweep_trains_nothing(grid, data, monkeypatch, capsys):
    cache = grid.parent / "cache"
    args = sweep_args(data, grid, cache, "model.optimizer.lr=1e-5,3e-3", "data.max_length=32,48")
    before = {j.name: (j / "metrics.json").stat().st_mtime_ns for j in job_dirs(grid)}
    summary_before = pd.read_csv(grid / "summary.csv")

    def no_training(cfg):
        raise AssertionError(f"trained {cfg.paths.output_dir} again")

    monkeypatch.setattr("lit_nlp.train.train", no_training)  # what train.py imports when it runs
    run_cli([*args, "resume_sweep=true"])
    assert {j.name: (j / "metrics.json").stat().st_mtime_ns for j in job_dirs(grid)} == before
    assert not list(grid.glob("*/failed.json")) and not list(grid.glob("*.failed-*"))
    pd.testing.assert_frame_equal(pd.read_csv(grid / "summary.csv"), summary_before)

    # the same sweep dir without the flag is refused before anything is overwritten
    with pytest.raises(SystemExit) as exit_info:
        run_cli(args)
    assert exit_info.value.code == 2
    assert "already holds a run; re-run the sweep with resume_sweep=true" in capsys.readouterr().err
    assert {j.name: (j / "metrics.json").stat().st_mtime_ns for j in job_dirs(grid)} == before


class Steps(L.Callback):
    """Counts each job's training batches in this process, and keeps a copy of a job's
    checkpoints as they stood when its second epoch began (the state a kill in epoch 2 leaves)."""

    def __init__(self, stash: Path):
        self.stash, self.batches = stash, {}

    def on_train_epoch_start(self, trainer, pl_module):
        job = Path(trainer.checkpoint_callback.dirpath).parent
        if trainer.current_epoch == 1 and not (self.stash / job.name).exists():
            shutil.copytree(job / "checkpoints", self.stash / job.name)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        job = Path(trainer.checkpoint_callback.dirpath).parent.name
        self.batches[job] = self.batches.get(job, 0) + 1


def test_resume_sweep_continues_an_unfinished_job_and_retries_a_failed_one(tmp_path, data, monkeypatch):
    """Two jobs of 2 epochs; one is put back as a kill in its second epoch leaves it (last.ckpt
    at the end of epoch 1, no metrics.json), the other marked failed. resume_sweep trains the
    first job's second epoch only, to the uninterrupted job's result; the failed one again in full."""
    from lit_nlp import train as train_module

    steps = Steps(tmp_path / "stash")
    real = train_module.build_trainer
    monkeypatch.setattr(train_module, "build_trainer", lambda trainer_cfg, plugins, callbacks, **kwargs:
                        real(trainer_cfg, plugins, callbacks=[*callbacks, steps], **kwargs))
    sweep = tmp_path / "sweep"
    args = [a if a != "trainer.max_epochs=1" else "trainer.max_epochs=2"
            for a in sweep_args(data, sweep, tmp_path / "cache", "seed=1,2")]
    run_cli(args)
    unfinished, failed = job_dirs(sweep)
    uninterrupted = metrics_of(unfinished)
    per_epoch = uninterrupted["global_step"] // 2
    assert uninterrupted["epochs"] == 2 and steps.batches == {unfinished.name: 2 * per_epoch, failed.name: 2 * per_epoch}
    (best,) = (unfinished / "checkpoints").glob("best-*.ckpt")
    final = torch.load(unfinished / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    # as if killed in epoch 2: its checkpoints as they were after epoch 1, no metrics, no export
    shutil.rmtree(unfinished / "checkpoints")
    shutil.copytree(tmp_path / "stash" / unfinished.name, unfinished / "checkpoints")
    (unfinished / "metrics.json").unlink()
    shutil.rmtree(unfinished / "export")
    last = torch.load(unfinished / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (0, per_epoch)
    (failed / "failed.json").write_text(json.dumps({"error": "boom", "type": "RuntimeError"}))
    assert pd.read_csv(sweep / "summary.csv").shape[0] == 2

    steps.batches.clear()
    run_cli([*args, "resume_sweep=true"])
    # continued in place from checkpoints/last.ckpt: epoch 2 trained, not both, to the same result
    assert OmegaConf.load(unfinished / "config.yaml").resume == str(unfinished)
    assert steps.batches == {unfinished.name: per_epoch, failed.name: 2 * per_epoch}
    # the final weights, not only the metrics: the best checkpoint (what the test metrics score)
    # may be epoch 1's, which no resume can change
    weights = torch.load(unfinished / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert weights.keys() == final.keys()
    for name, value in final.items():
        assert torch.equal(weights[name], value), f"{name}: {(weights[name] - value).abs().max():.1e} apart"
    resumed = metrics_of(unfinished)
    for key in ("global_step", "epochs", "val/acc_best", "test/acc", "train/samples"):
        assert resumed[key] == uninterrupted[key], key
    assert resumed["test/loss"] == pytest.approx(uninterrupted["test/loss"], abs=1e-6)
    assert [p.name for p in (unfinished / "checkpoints").glob("best-*.ckpt")] == [best.name]
    assert (unfinished / "export" / "model.safetensors").is_file()
    # the failed attempt is kept aside, and the job trained again
    aside = failed.with_name(failed.name + ".failed-1")
    assert json.loads((aside / "failed.json").read_text())["error"] == "boom"
    assert (aside / "metrics.json").is_file() and (failed / "metrics.json").is_file()
    assert not (failed / "failed.json").exists()
    summary = pd.read_csv(sweep / "summary.csv")
    assert sorted(summary["job"]) == [unfinished.name, failed.name]  # the moved-aside dir is no job
    assert (summary["status"] == "ok").all()


def test_a_failed_job_is_recorded_and_the_sweep_goes_on(failing_sweep_cli):
    """Through a real `python train.py -m`: exit 0, the failure reported and in the summary."""
    process, sweep = failing_sweep_cli
    result = process.result()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 of 2 jobs failed" in result.stdout + result.stderr
    bad, good = job_dirs(sweep)
    assert "data.text_column=nope" in bad.name
    failure = json.loads((bad / "failed.json").read_text())
    assert failure["type"] == "LitNlpError" and "column(s) not found: text_column=nope" in failure["error"]
    assert (good / "metrics.json").is_file()
    summary = pd.read_csv(sweep / "summary.csv")
    assert list(summary["job"]) == [good.name, bad.name]  # the failed job sorts last
    assert list(summary["status"]) == ["ok", "failed"] and list(summary["best"]) == [True, False]
    assert math.isnan(summary["objective"][1]) and "text_column=nope" in summary["error"][1]
    assert list(summary["data.text_column"]) == ["text", "nope"]


def test_a_single_run_still_fails_loudly(tmp_path, data, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli([*TINY, f"data.train_file={data}", "data.text_column=nope", f"hydra.run.dir={tmp_path / 'run'}",
                 f"paths.cache_dir={tmp_path / 'cache'}"])
    assert exit_info.value.code == 2
    assert "error: " in capsys.readouterr().err
    assert not (tmp_path / "run" / "failed.json").exists()


def test_optuna_three_trials(tmp_path, data, monkeypatch):
    sweep = tmp_path / "sweep"
    args = sweep_args(data, sweep, tmp_path / "cache", "hparams_search=optuna", "hydra.sweeper.n_trials=3")
    run_cli(args)
    jobs = job_dirs(sweep)
    assert len(jobs) == 3 and all((j / "metrics.json").is_file() for j in jobs)
    assert all("hparams_search" not in j.name for j in jobs)
    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == 3 and list(summary.columns[3:5]) == ["model.optimizer.lr", "data.batch_size"]
    assert summary["model.optimizer.lr"].between(1e-5, 1e-3).all()
    assert set(summary["data.batch_size"]) <= {16, 32}
    assert summary["best"].sum() == 1
    assert (sweep / "sweep_objective.png").stat().st_size > 0
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    assert results.best_value == pytest.approx(summary["objective"].max())

    # the study is in the sweep dir (what optuna-dashboard opens), Optuna 4 or newer
    import optuna

    assert int(optuna.__version__.split(".")[0]) >= 4
    study = optuna.load_study(study_name="lit_nlp", storage=f"sqlite:///{sweep}/optuna.db")
    trials = study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    for trial in trials:  # job number = trial number; each epoch's val/acc reported by OptunaPruning
        (job,) = [j for j in jobs if j.name.startswith(f"{trial.number}_")]
        assert trial.value == pytest.approx(metrics_of(job)["val/acc_best"])
        assert trial.intermediate_values == {0: pytest.approx(trial.value)}
        assert trial.params["data.batch_size"] == OmegaConf.load(job / "config.yaml").data.batch_size

    # resumed from its storage: 3 of n_trials=3 are done, nothing is trained again
    def no_training(cfg):
        raise AssertionError(f"trained {cfg.paths.output_dir} again")

    monkeypatch.setattr("lit_nlp.train.train", no_training)
    run_cli([*args, "resume_sweep=true"])
    assert job_dirs(sweep) == jobs and not list(sweep.glob("*.failed-*"))
    assert (pd.read_csv(sweep / "summary.csv")["status"] == "ok").all()
    assert len(optuna.load_study(study_name="lit_nlp", storage=f"sqlite:///{sweep}/optuna.db").trials) == 3


class Killed(BaseException):
    """Stands for the search's process dying (kill -9, a lost node): nothing catches it."""


def test_a_killed_optuna_search_resumes_from_its_storage(tmp_path, data, monkeypatch, capsys):
    import optuna
    from hydra.core.hydra_config import HydraConfig

    import lit_nlp.train

    real_train = lit_nlp.train.train

    def killed_in_trial_1(cfg):
        if HydraConfig.get().job.num == 1:
            raise Killed()
        return real_train(cfg)

    sweep = tmp_path / "sweep"
    args = sweep_args(data, sweep, tmp_path / "cache", "hparams_search=optuna", "hydra.sweeper.n_trials=3")
    monkeypatch.setattr("lit_nlp.train.train", killed_in_trial_1)
    with pytest.raises(Killed):
        run_cli(args)
    storage = f"sqlite:///{sweep}/optuna.db"
    states = [t.state for t in optuna.load_study(study_name="lit_nlp", storage=storage).trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING]
    killed_params = optuna.load_study(study_name="lit_nlp", storage=storage).trials[1].params

    # the same command again is refused: the study would be overwritten
    monkeypatch.setattr("lit_nlp.train.train", real_train)
    with pytest.raises(SystemExit):
        run_cli(args)
    assert "holds an Optuna study with 2 trials; resume it with resume_sweep=true" in capsys.readouterr().err

    run_cli([*args, "resume_sweep=true"])
    trials = optuna.load_study(study_name="lit_nlp", storage=storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert trials[1].params == killed_params  # trial 1 ran again, with its own parameters
    # the resumed sampler is seeded anew: trial 2 does not repeat trial 0's draw
    assert len({t.params["model.optimizer.lr"] for t in trials}) == 3
    jobs = job_dirs(sweep)
    assert [j.name.split("_")[0] for j in jobs] == ["0", "1", "2"]
    summary = pd.read_csv(sweep / "summary.csv")
    assert (summary["status"] == "ok").all() and len(summary) == 3


def test_optuna_pruning_stops_trials_and_records_them(tmp_path, data):
    import optuna

    sweep = tmp_path / "sweep"
    # ThresholdPruner(lower=1.1): no accuracy reaches 1.1, so the trial is pruned at epoch 0
    run_cli(sweep_args(data, sweep, tmp_path / "cache", "hparams_search=optuna", "hydra.sweeper.n_trials=1",
                       "trainer.max_epochs=3", "hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,lower:1.1}"))
    trials = optuna.load_study(study_name="lit_nlp", storage=f"sqlite:///{sweep}/optuna.db").trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.PRUNED]
    assert all(list(t.intermediate_values) == [0] for t in trials)
    summary = pd.read_csv(sweep / "summary.csv")
    assert list(summary["status"]) == ["pruned"]
    assert summary["error"].str.startswith("pruned at epoch 0 with val/acc=").all()
    for job in job_dirs(sweep):
        assert (job / "pruned.json").is_file() and not (job / "metrics.json").exists()
        assert not list((job / "checkpoints").glob("*epoch01*"))  # stopped after the first epoch
    assert not (sweep / "optimization_results.yaml").exists()  # no trial finished


def test_median_pruner_option_composes():
    from hydra import compose, initialize_config_dir

    from conftest import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["hparams_search=optuna", "hydra/sweeper/pruner=median"],
                      return_hydra_config=True)
    assert cfg.hydra.sweeper.pruner._target_ == "optuna.pruners.MedianPruner"
    assert cfg.callbacks.optuna_pruning._target_ == "lit_nlp.callbacks.OptunaPruning"


def test_optuna_goes_on_after_a_failed_trial(tmp_path, data, monkeypatch):
    from hydra.core.hydra_config import HydraConfig

    import lit_nlp.train

    real_train = lit_nlp.train.train

    def first_trial_fails(cfg):
        if HydraConfig.get().job.num == 0:
            raise RuntimeError("trial 0 broke\nsecond line")
        return real_train(cfg)

    monkeypatch.setattr("lit_nlp.train.train", first_trial_fails)
    sweep = tmp_path / "sweep"
    run_cli(sweep_args(data, sweep, tmp_path / "cache", "hparams_search=optuna", "hydra.sweeper.n_trials=2"))
    summary = pd.read_csv(sweep / "summary.csv")
    assert list(summary["status"]) == ["ok", "failed"]
    assert summary["error"][1] == "RuntimeError: trial 0 broke"
    assert OmegaConf.load(sweep / "optimization_results.yaml").best_value == pytest.approx(summary["objective"][0])


def test_optuna_direction_follows_monitor_mode():
    from hydra import compose, initialize_config_dir

    from conftest import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        for mode, direction in (("max", "maximize"), ("min", "minimize")):
            cfg = compose("train", overrides=["hparams_search=optuna", f"monitor_mode={mode}", "seed=7"],
                          return_hydra_config=True)
            assert cfg.hydra.sweeper.direction == direction
            assert cfg.hydra.sweeper.sampler.seed == 7


def test_cross_validation_sweeps_the_folds_and_aggregates(tmp_path, data):
    sweep, cache = tmp_path / "sweep", tmp_path / "cache"
    run_cli(sweep_args(data, sweep, cache, "experiment=cv", "data.num_folds=3"))
    summary = pd.read_csv(sweep / "summary.csv")
    assert sorted(summary["data.fold"]) == [0, 1, 2]
    cv = pd.read_csv(sweep / "summary_cv.csv")
    assert len(cv) == 1 and cv["folds"][0] == 3 and cv["failed"][0] == 0
    for column in ("objective", "val/acc_best", "test/acc"):
        assert cv[f"{column}_mean"][0] == pytest.approx(summary[column].mean())
        assert cv[f"{column}_std"][0] == pytest.approx(summary[column].std(ddof=1))
    assert "## Cross-validation" in (sweep / "summary.md").read_text()

    # the test split stays outside the folds: the same rows in every job, in no fold
    splits = {}
    for part in sorted(p for p in (cache / "classification").iterdir() if (p / "test.jsonl").is_file()):
        splits[part.name] = {s: set(pd.read_json(part / f"{s}.jsonl", lines=True)["text"])
                             for s in ("train", "validation", "test")}
    assert len(splits) == 3
    folds = list(splits.values())
    assert all(f["test"] == folds[0]["test"] for f in folds)
    labelled = folds[0]["train"] | folds[0]["validation"]
    assert not folds[0]["test"] & labelled
    assert all(f["train"] | f["validation"] == labelled for f in folds)
    vals = [f["validation"] for f in folds]
    assert set().union(*vals) == labelled and sum(map(len, vals)) == len(labelled)  # each row in one fold


def test_a_job_failing_inside_hydra_instantiate_records_the_projects_line(tmp_path, monkeypatch):
    """A constructor's LitNlpError reaches the job wrapper inside Hydra's InstantiationException;
    failed.json keeps the project's one line, not the wrapper's."""
    from hydra.utils import instantiate

    import lit_nlp.sweeps.jobs as sweep_module

    monkeypatch.setattr(sweep_module, "in_multirun", lambda: True)
    monkeypatch.setattr(sweep_module, "_prepare_job_dir", lambda cfg, job_dir: None)
    monkeypatch.setattr(sweep_module, "_end_process_group", lambda environ: None)
    job = tmp_path / "job"
    job.mkdir()

    def task(cfg):
        instantiate({"_target_": "lit_nlp.data.classification.ClassificationDataModule", "train_file": "x.csv",
                     "label_checks": "maybe"})

    assert sweep_module.sweep_job(task)(OmegaConf.create({"paths": {"output_dir": str(job)}})) is None
    failure = json.loads((job / "failed.json").read_text())
    assert failure == {"error": "data.label_checks must be error or warn, got 'maybe'", "type": "LitNlpError"}
