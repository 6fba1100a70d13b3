"""Loggers beyond TensorBoard: MLflow (read back through its client), W&B offline, several at
once, the hyperparameters they list, and a missing package named with its extra."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import compose_cfg, run_cli, synthetic_rows, tiny_overrides, write_table
from lit_nlp.errors import LitNlpError
from lit_nlp.run_dir import flatten
from lit_nlp.tracking import build_loggers, hparams

TINY = ["model=bert_tiny", "data=csv", "data.max_length=32", "tokenizer.vocab_size=300", "data.batch_size=16",
        "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        "trainer.max_epochs=1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_table(synthetic_rows(120, seed=6), tmp_path_factory.mktemp("data") / "small.csv")


def test_tensorboard_and_mlflow_at_once_and_the_run_read_back(tmp_path, data, monkeypatch):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path / "outputs"
    run = root / "runs" / "one"
    run_cli([*TINY, f"data.train_file={data}", "logger=[tensorboard,mlflow]", f"paths.log_dir={root}",
             f"hydra.run.dir={run}", f"paths.cache_dir={tmp_path / 'cache'}", "model.optimizer.lr=3e-3"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))  # TensorBoard got its log too

    # the default store: one SQLite file in the output root (paths.log_dir), artifacts beside it
    uri = f"sqlite:///{root.resolve()}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["lit_nlp"])
    assert len(runs) == 1
    found = runs.iloc[0]
    assert found["tags.mlflow.runName"] == "runs/one" and found["status"] == "FINISHED"
    assert (run / "mlflow_run_id.txt").read_text().strip() == found["run_id"]
    for key in ("test/acc", "test/f1_macro", "val/acc_best", "data/rows/train"):
        assert found[f"metrics.{key}"] == pytest.approx(metrics[key], abs=1e-6), key
    params = {c.removeprefix("params."): found[c] for c in runs.columns if c.startswith("params.")}
    assert params["model.optimizer.lr"] == "0.003" and params["seed"] == "42" and params["data.batch_size"] == "16"
    assert params["trainer.max_epochs"] == "1" and params["model.backbone.config.hidden_size"] == "64"
    assert not [k for k in params if "_target_" in k or k.startswith(("paths.", "callbacks.", "logger."))]
    client = mlflow.MlflowClient()
    artifacts = {a.path for a in client.list_artifacts(found["run_id"])}
    assert {"config.yaml", "metrics.json", "learning_curves.png", "confusion_matrix.png", "export"} <= artifacts
    assert "export/model.safetensors" in {a.path for a in client.list_artifacts(found["run_id"], "export")}
    assert Path(found["artifact_uri"].removeprefix("file://")).is_relative_to(root.resolve() / "mlartifacts")

    # resume continues the same MLflow run, and the panel's viewer line names the store
    run_cli([f"resume={run}", "trainer.max_epochs=2"])
    runs = mlflow.search_runs(experiment_names=["lit_nlp"])
    assert len(runs) == 1 and runs.iloc[0]["metrics.epochs"] == 2
    log = (run / "train.log").read_text()
    assert f"mlflow       mlflow ui --backend-store-uri {uri}" in log


def test_mlflow_store_follows_mlflow_tracking_uri(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = compose_cfg(["logger=mlflow", f"paths.log_dir={tmp_path / 'out'}"], tmp_path / "out" / "multirun" / "s" / "0_job")
    node = cfg.logger.mlflow
    assert node.tracking_uri == f"sqlite:///{tmp_path / 'out'}/mlflow.db"
    assert node.artifact_location == f"{tmp_path / 'out'}/mlartifacts"
    assert node.run_name == "multirun/s/0_job"  # a sweep job is named by its place under the root
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    cfg = compose_cfg(["logger=mlflow"], tmp_path / "run")
    assert cfg.logger.mlflow.tracking_uri == "http://127.0.0.1:5000"
    assert cfg.logger.mlflow.artifact_location is None  # the server decides


def test_wandb_offline_writes_a_run_to_sync_later(tmp_path, data, capfd):
    run = tmp_path / "run"
    run_cli([*TINY, f"data.train_file={data}", "logger=wandb", f"hydra.run.dir={run}",
             f"paths.cache_dir={tmp_path / 'cache'}"])
    (offline,) = (run / "wandb").glob("offline-run-*")
    (records,) = offline.glob("run-*.wandb")
    # W&B's offline log (the metrics and config it will upload), written by its service process:
    # train() finishes the run, and the service may still be writing on a busy machine
    deadline = time.monotonic() + 60
    while b"test/acc" not in records.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.5)
    content = records.read_bytes()
    for key in (b"test/acc", b"val/acc_best", b"model.optimizer.lr"):
        assert key in content, key
    assert f"wandb sync {offline}" in (run / "train.log").read_text()
    # W&B's exit tables stay out of the console (logger.wandb.settings.quiet); the panel says how to sync
    console = "".join(capfd.readouterr())
    assert "Run history" not in console and "Run summary" not in console
    assert "wandb sync" in console


def test_hparams_are_the_keys_that_change_results(tmp_path, synthetic_csv):
    cfg = compose_cfg(tiny_overrides(synthetic_csv), tmp_path / "run")
    chosen = hparams(cfg)
    everything = flatten(OmegaConf.to_container(cfg, resolve=True))
    assert len(everything) > 100 and len(chosen) <= 25, sorted(chosen)
    for key in ("seed", "model.optimizer.lr", "model.optimizer.weight_decay", "model.scheduler.name",
                "model.scheduler.warmup_ratio", "data.batch_size", "data.max_length", "trainer.max_epochs",
                "model.backbone.config.num_hidden_layers", "tokenizer.vocab_size"):
        assert key in chosen, key
    assert not [k for k in chosen if k.endswith(("_target_", "_partial_")) or k.startswith(("paths", "callbacks"))]
    assert all(isinstance(v, (int, float, str, bool)) for v in chosen.values())


def test_a_logger_whose_package_is_missing_names_the_extra(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    cfg = compose_cfg(["logger=[tensorboard,mlflow]"], tmp_path / "run")
    with pytest.raises(LitNlpError, match=r"^logger mlflow needs the mlflow package: pip install -e '\.\[mlflow\]'$"):
        build_loggers(cfg)
