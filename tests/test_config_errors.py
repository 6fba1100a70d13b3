"""A misspelt config group option or key on train.py's command line stops with one line that
names it and the close matches, in a run, a sweep (-m, Optuna too) and with resume=, before
anything is written; Hydra's page (config search path, HYDRA_FULL_ERROR) never shows.

The CLI tests start train.py as a user does (about 6 s each: importing torch and Lightning); the
message details are checked in-process on Hydra's own exceptions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from conftest import CONF_DIR, ROOT, compose_cfg
from lit_nlp.config_errors import config_error_line, one_line_config_errors
from lit_nlp.errors import LitNlpError, user_error

ENV = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"} | {
    "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
    "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))


def train_cli(tmp_path: Path, *args: str) -> str:
    """`python train.py <args>` that must stop on a config error: its one `error:` line."""
    cmd = [sys.executable, "train.py", *args, f"paths.cache_dir={tmp_path / 'cache'}",
           f"paths.log_dir={tmp_path / 'logs'}"]
    result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    for page in ("Traceback", "HYDRA_FULL_ERROR", "Config search path", "object_type="):
        assert page not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


# ----------------------------------------------------------------- the command line
def test_a_misspelt_group_option_names_the_group_s_options(tmp_path):
    line = train_cli(tmp_path, "model=bert_tinyy", f"hydra.run.dir={tmp_path / 'run'}")
    assert line == (f"error: model=bert_tinyy is not a model config (did you mean bert_tiny?); "
                    f"options: {', '.join(MODELS)}")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("overrides, expected", [
    (["seeed=1"], "error: seeed is not a key of the config (did you mean seed?)"),
    # a new key with `+`, and `trainer.max_steps` (made `++trainer.max_steps` by train.py), go
    # through; the misspelt key after them stops the run
    (["+new.key=1", "trainer.max_steps=3", "data.batchsize=3"],
     "error: data.batchsize is not a key of data (did you mean data.batch_size?)"),
], ids=["top-level", "nested"])
def test_a_misspelt_key_names_the_close_keys(tmp_path, overrides, expected):
    assert train_cli(tmp_path, *overrides, f"hydra.run.dir={tmp_path / 'run'}") == expected
    assert not (tmp_path / "run").exists()


def test_a_misspelt_option_in_a_sweep_stops_it_before_any_job(tmp_path):
    # the sweeper saves multirun.yaml before it composes the jobs; an empty sweep is not left
    line = train_cli(tmp_path, "-m", "model=bert_tiny,bert_tinyy", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert line.startswith("error: model=bert_tinyy is not a model config (did you mean bert_tiny?); options: ")
    assert not (tmp_path / "sweep").exists()


def test_a_misspelt_swept_key_in_an_optuna_search_leaves_no_study(tmp_path):
    line = train_cli(tmp_path, "-m", "hparams_search=optuna", "model.optimizer.lrr=interval(1e-5,1e-3)",
                     f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert line == "error: model.optimizer.lrr is not a key of model.optimizer (did you mean model.optimizer.lr?)"
    assert not (tmp_path / "sweep").exists()  # no optuna.db holding a trial that never ran


def test_a_misspelt_key_with_resume_leaves_the_run_as_it_was(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    OmegaConf.save(compose_cfg(["model=bert_tiny"], run), run / "config.yaml")  # as train() saves it
    saved = (run / "config.yaml").read_bytes()
    line = train_cli(tmp_path, f"resume={run}", "data.batchsize=3")
    assert line == "error: data.batchsize is not a key of data (did you mean data.batch_size?)"
    assert [p.name for p in run.iterdir()] == ["config.yaml"] and (run / "config.yaml").read_bytes() == saved


# ----------------------------------------------------------------- the messages
def composition_error(*overrides: str) -> Exception:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"), pytest.raises(Exception) as err:
        compose("train", overrides=list(overrides))
    return err.value


@pytest.mark.parametrize("override, expected", [
    ("data/cleaning=defaultt",
     "data/cleaning=defaultt is not a data/cleaning config (did you mean default?); options: default, none"),
    ("hydra/launcher=slurmm", "hydra/launcher=slurmm is not a hydra/launcher config (did you mean slurm?); "
                              "options: basic, slurm, submitit_local, submitit_slurm"),
    ("data/cleaningg=none", "data/cleaningg is not a config group; the groups are the folders of conf/"),
    ("dataa.batch_size=8", "dataa is not a key of the config (did you mean data?)"),
    ("data.cleaning.lowercasee=true", "data.cleaning.lowercasee is not a key of data.cleaning "
                                      "(did you mean data.cleaning.lowercase?)"),
    ("data.batch_size=[8", "data.batch_size=[8 is not an override Hydra can parse: "),
    ("+data.batch_size=8", "Could not append to config. An item is already at 'data.batch_size'; "
                           "Either remove + prefix: 'data.batch_size=8'; "),
])
def test_composition_errors_are_one_line(override, expected):
    line = config_error_line(composition_error(override))
    assert line.startswith(expected) and "\n" not in line


def test_a_key_with_nothing_close_lists_the_node_s_keys():
    line = config_error_line(composition_error("model.optimizer.zzz=1"))
    assert line == ("model.optimizer.zzz is not a key of model.optimizer (its keys: lr, weight_decay; "
                    "+model.optimizer.zzz=1 adds it)")


def test_only_composition_errors_become_one_line_and_hydra_full_error_stays_the_user_s(monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    err = composition_error("model=bert_tinyy")
    with pytest.raises(LitNlpError, match="^model=bert_tinyy is not a model config"), one_line_config_errors():
        assert os.environ["HYDRA_FULL_ERROR"] == "1"  # so that Hydra raises instead of printing
        raise err
    assert "HYDRA_FULL_ERROR" not in os.environ
    with pytest.raises(KeyError), one_line_config_errors():  # a bug keeps its traceback
        raise KeyError("x")
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # asked for Hydra's full trace: it gets it
    with pytest.raises(ConfigCompositionException), one_line_config_errors():
        raise err
    assert os.environ["HYDRA_FULL_ERROR"] == "1"


def test_a_misspelt_interpolation_is_a_user_error_naming_its_key(tmp_path):
    cfg = compose_cfg(["model.optimizer.lr=${model.optimizer.lrr}"], tmp_path / "run")
    with pytest.raises(Exception) as err:
        OmegaConf.select(cfg, "model.optimizer.lr")
    assert str(user_error(err.value)) == "config: model.optimizer.lr: Interpolation key 'model.optimizer.lrr' not found"
    assert user_error(ValueError("a bug")) is None
