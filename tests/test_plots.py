"""Run and sweep plots: the PNGs a run writes, `python -m lit_nlp.plots <dir>` drawing them
again, the sweep plot from summary.csv, the end-of-run summary and a quiet log without a terminal.
One tiny run (train.py in a subprocess, as a user starts it) serves the whole module."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, Started, synthetic_rows, write_table
from lit_nlp import plots
from lit_nlp.plots import __main__ as plots_cli

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}


def assert_image(path: Path) -> None:
    import matplotlib.image

    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100, pixels.shape
    assert pixels.std() > 0  # not a blank canvas


BAD_PATHS = ["empty dir", "missing", "file"]


@pytest.fixture(scope="module")
def plots_on_bad_paths(tmp_path_factory) -> dict[str, tuple[Path, Started]]:
    """`python -m lit_nlp.plots <path>` on an empty dir, a missing path and a file, started in
    the background: kind -> (path, process)."""
    folder = tmp_path_factory.mktemp("bad_paths")
    paths = {"empty dir": folder / "empty", "missing": folder / "nope", "file": folder / "f.txt"}
    paths["empty dir"].mkdir()
    paths["file"].write_text("x")
    started = {kind: (path, Started([sys.executable, "-m", "lit_nlp.plots", str(path)], folder / f"process {kind}",
                                    cwd=ROOT, env=ENV))
               for kind, path in paths.items()}
    yield started
    for _, process in started.values():
        process.stop()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, plots_on_bad_paths) -> tuple[Path, subprocess.CompletedProcess]:
    """2 epochs of a tiny BERT through train.py, progress bar on, stdout a pipe (as in CI).
    (plots_on_bad_paths first: those interpreters start on the other core meanwhile.)"""
    tmp = tmp_path_factory.mktemp("report")
    data = write_table(synthetic_rows(200, seed=4), tmp / "train.csv")
    run = tmp / "run"
    cmd = [sys.executable, "train.py", "model=bert_tiny", "data=csv", f"data.train_file={data}",
           "trainer.max_epochs=2", "data.batch_size=16", "data.max_length=32", "tokenizer.vocab_size=300",
           "trainer.log_every_n_steps=2", "trainer.accelerator=cpu", "trainer.enable_model_summary=false",
           "callbacks.export=null", f"hydra.run.dir={run}", f"paths.cache_dir={tmp / 'cache'}"]
    result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return run, result


def test_run_writes_learning_curves_and_confusion_matrix(tiny_run):
    run, _ = tiny_run
    for name in ("learning_curves.png", "confusion_matrix.png"):
        assert_image(run / name)
    counts = json.loads((run / "confusion_matrix.json").read_text())
    assert counts["labels"] == ["negative", "positive"]
    assert sum(map(sum, counts["matrix"])) == json.loads((run / "metrics.json").read_text())["data/rows/test"]
    assert plots.run_monitor(run) == "val/acc"  # config.yaml says null; metrics.json has val/acc_best


def test_progress_bar_and_summary_without_a_terminal(tiny_run):
    run, result = tiny_run
    out = result.stdout
    # rich prints each stage's final bar once, not a line per redraw: 30 steps would be 30+ lines
    assert sum("Epoch" in line for line in out.splitlines()) <= 2, out
    assert "Epoch 1/1" in out and "train/loss:" in out and "val/acc:" in out and "val/loss:" in out
    assert "run finished" in out and "learning_curves.png  confusion_matrix.png" in out
    log = (run / "train.log").read_text()
    assert "run finished\n  run dir" in log and "best         val/acc = " in log
    assert "Directory watcher" not in log  # tensorboard's reader stays quiet


def test_quiet_console_and_details_in_train_log(tiny_run):
    """What train.py prints: the data summary, the bars and the panel, not library chatter
    (60 lines before lit_nlp.console for model=bert_tiny trainer.max_epochs=1 on the demo data)."""
    run, result = tiny_run
    shown = result.stdout + result.stderr
    for quiet in ("Tip:", "LeafSpec", "GPU available", "Loading weights", "Writing model shards",
                  "Test metric", "Restoring states", "`Trainer.fit` stopped", "Seed set to"):
        assert quiet not in shown, quiet
    assert "data: " in shown and "run finished" in shown
    assert len(shown.splitlines()) <= 20, shown
    log = (run / "train.log").read_text()
    for detail in ("][DEBUG] - GPU available", "][DEBUG] - 💡 Tip", "[py.warnings][DEBUG]",
                   "][DEBUG] - `Trainer.fit` stopped: `max_epochs=2` reached", "][DEBUG] - test metrics: "):
        assert detail in log, detail


def test_cli_draws_a_run_again(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run[0], run, ignore=shutil.ignore_patterns("checkpoints"))
    for name in ("learning_curves.png", "confusion_matrix.png"):
        (run / name).unlink()
    result = subprocess.run([sys.executable, "-m", "lit_nlp.plots", str(run)], cwd=ROOT, env=ENV,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name in ("learning_curves.png", "confusion_matrix.png"):
        assert str(run / name) in result.stdout
        assert_image(run / name)


def fake_sweep(tiny_run, sweep: Path) -> Path:
    """A sweep root as lit_nlp.sweeps leaves it, copied without Hydra's .hydra/ dirs: job dirs
    0 and 1 finished, 2 failed, summary.csv."""
    for job in ("0", "1"):
        shutil.copytree(tiny_run[0], sweep / job, ignore=shutil.ignore_patterns("checkpoints", "*.png", ".hydra"))
    (sweep / "2").mkdir()
    shutil.copy(tiny_run[0] / "config.yaml", sweep / "2" / "config.yaml")
    (sweep / "summary.csv").write_text(
        "job,status,objective,model.optimizer.lr,model,test/acc,val/acc_best,error,best\n"
        "0,ok,0.71,1e-05,bert_tiny,0.70,0.71,,false\n"
        "1,ok,0.93,0.001,distilbert_tiny,0.90,0.93,,true\n"
        "2,failed,,0.1,bert_tiny,,,NaN loss at step 3,false\n")
    return sweep


def test_sweep_plot_from_summary_csv(tiny_run, tmp_path, monkeypatch):
    sweep = fake_sweep(tiny_run, tmp_path / "sweep")
    before = (sweep / "summary.csv").read_text()
    plots_cli.main([str(sweep)])
    assert (sweep / "summary.csv").read_text() == before  # no .hydra/ to rebuild it from: kept
    assert_image(sweep / "sweep_objective.png")
    for job in ("0", "1"):  # each finished job's own PNGs too
        assert_image(sweep / job / "learning_curves.png")
        assert_image(sweep / job / "confusion_matrix.png")
    assert not (sweep / "2" / "learning_curves.png").exists()


def test_sweep_summary_is_rebuilt_from_hydra_job_dirs(tiny_run, tmp_path, monkeypatch):
    sweep = fake_sweep(tiny_run, tmp_path / "sweep")
    (sweep / "0" / ".hydra").mkdir()
    calls = []

    def write_summary(sweep_dir):
        calls.append(Path(sweep_dir))
        return Path(sweep_dir) / "summary.csv"

    monkeypatch.setattr("lit_nlp.sweeps.summary.write_summary", write_summary)
    written = plots_cli.draw(sweep)
    assert calls == [sweep]
    assert sweep / "summary.csv" in written and sweep / "sweep_objective.png" in written


def test_swept_keys_and_axes():
    columns = ["job", "status", "objective", "model.optimizer.lr", "data.batch_size", "model", "test/acc",
               "val/acc_best", "epochs", "error", "best"]
    assert plots.swept_keys(columns) == ["model.optimizer.lr", "data.batch_size", "model"]
    assert plots._log_scale([1e-5, 3e-4, 1e-3])  # two decades: log axis
    assert not plots._log_scale([16, 32, 64])


def test_learning_curves_of_a_seq2seq_run_with_csv_logger(tmp_path):
    """No TensorBoard (logger=csv) and a task-picked monitor (val/rougeLsum): the curves still come."""
    run = tmp_path / "t5"
    (run / "csv").mkdir(parents=True)
    (run / "config.yaml").write_text("monitor: null\nmonitor_mode: max\n")
    (run / "metrics.json").write_text('{"val/rougeLsum_best": 0.3, "test/rougeLsum": 0.28}')
    (run / "csv" / "metrics.csv").write_text(
        "epoch,step,train/loss_step,val/loss,val/rougeLsum\n"
        "0,4,2.5,,\n0,9,2.1,,\n0,9,,2.0,0.2\n1,14,1.8,,\n1,19,1.6,,\n1,19,,1.7,0.3\n")
    assert plots.run_monitor(run) == "val/rougeLsum"
    assert plots.write_run_plots(run) == [run / "learning_curves.png"]  # no confusion matrix for T5
    assert_image(run / "learning_curves.png")


@pytest.mark.parametrize("kind", BAD_PATHS)
def test_bad_path_is_one_line_error(plots_on_bad_paths, kind):
    path, process = plots_on_bad_paths[kind]
    result = process.result(timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    if kind == "empty dir":
        assert result.stderr == f"error: {path} is not a run dir (no metrics.json) or a sweep dir (no job dirs)\n"
