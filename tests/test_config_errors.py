"""A misspelt config group option or key on train.py's command line stops with one line that
names it and the close matches, in a run, a sweep (-m, Optuna too) and with resume=, before
anything is written; Hydra's page (config search path, HYDRA_FULL_ERROR) never shows.

The CLI tests start train.py as a user does (the six are started together); train.py loads torch
and Lightning only once the config composed, so each takes about a second, but the one with a
`trainer.` key (Lightning's arguments are read from its Trainer). The message details are
checked in-process on Hydra's own exceptions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from conftest import CONF_DIR, ROOT, Started, compose_cfg
from lit_nlp.config_errors import config_error_line, one_line_config_errors
from lit_nlp.errors import LitNlpError, user_error

ENV = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"} | {
    "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
    "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))


def start_train_cli(folder: Path, *args: str) -> Started:
    """`python train.py <args>` started in the background, its cache, logs and output in `folder`."""
    cmd = [sys.executable, "train.py", *args, f"paths.cache_dir={folder / 'cache'}", f"paths.log_dir={folder / 'logs'}"]
    return Started(cmd, folder / "process", cwd=ROOT, env=ENV)


def error_line(started: Started) -> str:
    """The one `error:` line of a train.py that must stop on a config error."""
    result = started.result()
    stderr = result.stderr
    assert result.returncode == 2, stderr
    for page in ("Traceback", "HYDRA_FULL_ERROR", "Config search path", "object_type="):
        assert page not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


MISSPELT_KEYS = {
    "top-level": (["seeed=1"], "error: seeed is not a key of the config (did you mean seed?)"),
    # a new key with `+`, and `trainer.max_steps` (made `++trainer.max_steps` by train.py), go
    # through; the misspelt key after them stops the run
    "nested": (["+new.key=1", "trainer.max_steps=3", "data.batchsize=3"],
               "error: data.batchsize is not a key of data (did you mean data.batch_size?)"),
}


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """Every command line of this section, each in a folder of its own, started together when
    the first test asks for one: name -> (folder, its one `error:` line)."""
    def folder(name: str) -> Path:
        return tmp_path_factory.mktemp(name)

    resumed = folder("resume")
    run = resumed / "run"
    run.mkdir()
    OmegaConf.save(compose_cfg(["model=bert_tiny"], run), run / "config.yaml")  # as train() saves it
    (resumed / "saved.yaml").write_bytes((run / "config.yaml").read_bytes())  # to compare with, outside the run
    commands = {
        "group": (folder("group"), lambda f: ["model=bert_tinyy", f"hydra.run.dir={f / 'run'}"]),
        **{f"key-{name}": (folder(name), lambda f, o=overrides: [*o, f"hydra.run.dir={f / 'run'}"])
           for name, (overrides, _) in MISSPELT_KEYS.items()},
        # the sweeper saves multirun.yaml before it composes the jobs; an empty sweep is not left
        "sweep": (folder("sweep"), lambda f: ["-m", "model=bert_tiny,bert_tinyy", f"hydra.sweep.dir={f / 'sweep'}"]),
        "optuna": (folder("optuna"), lambda f: ["-m", "hparams_search=optuna", "model.optimizer.lrr=interval(1e-5,1e-3)",
                                                f"hydra.sweep.dir={f / 'sweep'}"]),
        "resume": (resumed, lambda f: [f"resume={f / 'run'}", "data.batchsize=3"]),
    }
    started = {name: (f, start_train_cli(f, *args(f))) for name, (f, args) in commands.items()}
    try:
        yield lambda name: (started[name][0], error_line(started[name][1]))
    finally:
        for _, proc in started.values():
            proc.stop()


# ----------------------------------------------------------------- the command line
def test_a_misspelt_group_option_names_the_group_s_options(cli):
    folder, line = cli("group")
    assert line == (f"error: model=bert_tinyy is not a model config (did you mean bert_tiny?); "
                    f"options: {', '.join(MODELS)}")
    assert not (folder / "run").exists()


@pytest.mark.parametrize("name", list(MISSPELT_KEYS))
def test_a_misspelt_key_names_the_close_keys(cli, name):
    folder, line = cli(f"key-{name}")
    assert line == MISSPELT_KEYS[name][1]
    assert not (folder / "run").exists()


def test_a_misspelt_option_in_a_sweep_stops_it_before_any_job(cli):
    folder, line = cli("sweep")
    assert line.startswith("error: model=bert_tinyy is not a model config (did you mean bert_tiny?); options: ")
    assert not (folder / "sweep").exists()


def test_a_misspelt_swept_key_in_an_optuna_search_leaves_no_study(cli):
    folder, line = cli("optuna")
    assert line == "error: model.optimizer.lrr is not a key of model.optimizer (did you mean model.optimizer.lr?)"
    assert not (folder / "sweep").exists()  # no optuna.db holding a trial that never ran


def test_a_misspelt_key_with_resume_leaves_the_run_as_it_was(cli):
    folder, line = cli("resume")
    assert line == "error: data.batchsize is not a key of data (did you mean data.batch_size?)"
    run = folder / "run"
    assert [p.name for p in run.iterdir()] == ["config.yaml"]
    assert (run / "config.yaml").read_bytes() == (folder / "saved.yaml").read_bytes()


def test_a_misspelt_option_stops_train_py_before_torch_loads(tmp_path):
    """The error comes in about a second, not after the ~6 s of importing torch and Lightning."""
    probe = ("import runpy, sys\n"
             "sys.argv = ['train.py', 'model=bert_tinyy']\n"
             "try:\n    runpy.run_path('train.py', run_name='__main__')\n"
             "except SystemExit as stop:\n    print(stop.code, 'torch' in sys.modules, 'lightning' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=ENV, capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.split() == ["2", "False", "False"], result.stdout + result.stderr
    assert result.stderr.startswith("error: model=bert_tinyy is not a model config")


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
