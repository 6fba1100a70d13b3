"""Any Lightning Trainer argument from the command line (`trainer.max_steps=...` without Hydra's
`+`), one error for misspelt ones, and a run that max_steps ends mid-epoch."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli, synthetic_rows, write_table
from lit_nlp.errors import LitNlpError
from lit_nlp.trainer_args import trainer_arguments, trainer_overrides

TINY = ["model=bert_tiny", "data=csv", "data.max_length=32", "tokenizer.vocab_size=300", "data.batch_size=16",
        "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def test_trainer_arguments_get_hydras_add_prefix():
    assert {"max_steps", "val_check_interval", "limit_val_batches", "check_val_every_n_epoch"} <= set(trainer_arguments())
    assert trainer_overrides(["trainer.max_steps=30", "trainer=gpu", "model.optimizer.lr=1e-4",
                              "trainer.strategy.stage=3", "+trainer.max_time=00:00:01:00", "trainer._target_=x"]) == [
        "++trainer.max_steps=30", "trainer=gpu", "model.optimizer.lr=1e-4", "trainer.strategy.stage=3",
        "+trainer.max_time=00:00:01:00", "trainer._target_=x"]


def test_misspelt_trainer_arguments_are_one_error_with_close_matches():
    with pytest.raises(LitNlpError) as err:
        trainer_overrides(["trainer.max_step=30", "trainer.limit_val_batch=2", "trainer.logger=x", "trainer.zzz=1"])
    message = str(err.value)
    assert "\n" not in message
    assert "trainer.max_step is not an argument of Lightning's Trainer (did you mean trainer.max_steps" in message
    assert "trainer.limit_val_batch is not an argument of Lightning's Trainer (did you mean trainer.limit_val_batches" in message
    assert "trainer.logger is built from conf/logger/ (choose logger=<option> instead)" in message
    assert "trainer.zzz is not an argument of Lightning's Trainer (see the arguments of lightning.pytorch.Trainer)" in message


def test_max_steps_mid_epoch_from_the_cli_validates_and_reports(tmp_path, capsys):
    """150 rows, 16 a batch: 8 training batches an epoch; max_steps=5 ends inside epoch 0, where
    Lightning would not validate (val/acc_best was null, `epochs` said 1)."""
    data = write_table(synthetic_rows(150, seed=3), tmp_path / "train.csv")
    run = tmp_path / "run"
    run_cli([*TINY, f"data.train_file={data}", "trainer.max_steps=5", "trainer.limit_val_batches=1",
             "trainer.log_every_n_steps=1", f"hydra.run.dir={run}", f"paths.cache_dir={tmp_path / 'cache'}"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_step"] == 5
    rows_per_epoch = metrics["data/rows/train"]
    assert metrics["epochs"] == pytest.approx(5 / -(-rows_per_epoch // 16), abs=1e-3) and metrics["epochs"] < 1
    assert metrics["val/acc_best"] is not None
    assert [p.name for p in (run / "checkpoints").glob("best-*.ckpt")] == ["best-epoch00-step5.ckpt"]
    saved = (run / "config.yaml").read_text()
    assert "max_steps: 5" in saved and "limit_val_batches: 1" in saved

    # a misspelt argument stops the CLI with one line, before anything runs
    with pytest.raises(SystemExit) as exit_info:
        run_cli([*TINY, f"data.train_file={data}", "trainer.max_setps=5", f"hydra.run.dir={tmp_path / 'run2'}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: trainer.max_setps is not an argument of Lightning's Trainer (did you mean "
                          "trainer.max_steps") and err.count("\n") == 1, err
    assert not (tmp_path / "run2").exists()


def test_a_value_the_trainer_refuses_is_one_line_from_the_cli(tmp_path, capsys):
    """Lightning checks precision, strategy and accelerator in the Trainer's constructor; Hydra
    wraps its error in several lines (the target, full_key, HYDRA_FULL_ERROR)."""
    data = write_table(synthetic_rows(60, seed=3), tmp_path / "train.csv")
    for n, (override, reason) in enumerate((("trainer.precision=bf17", "Precision 'bf17' is invalid"),
                                            ("trainer.strategy=foo", "You selected an invalid strategy name"))):
        with pytest.raises(SystemExit) as exit_info:
            run_cli([*TINY, f"data.train_file={data}", override, f"hydra.run.dir={tmp_path / f'run{n}'}",
                     f"paths.cache_dir={tmp_path / 'cache'}"])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: trainer: {reason}") and err.count("\n") == 1, err


def test_a_gpu_trainer_without_a_gpu_stops_before_the_run(tmp_path, monkeypatch):
    """trainer=gpu where torch sees no CUDA (this CPU machine, or a CPU-only torch build), and
    more GPUs than the machine has: one line with the fix, before the run dir is claimed."""
    import torch

    from conftest import compose_cfg
    from lit_nlp.config_checks import check_config

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(LitNlpError, match=r"^config: trainer.accelerator=gpu needs a CUDA GPU and torch .* sees none; "
                                          r"use trainer=cpu"):
        check_config(compose_cfg(["trainer=gpu", "trainer.accelerator=gpu"], tmp_path / "run"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_config(compose_cfg(["trainer=gpu", "trainer.accelerator=gpu"], tmp_path / "run"))
    check_config(compose_cfg(["trainer=ddp", "trainer.accelerator=gpu", "trainer.devices=2"], tmp_path / "run"))
    with pytest.raises(LitNlpError, match="trainer.devices=4 but this machine has 2 GPU"):
        check_config(compose_cfg(["trainer=ddp", "trainer.accelerator=gpu", "trainer.devices=4"], tmp_path / "run"))
    assert not (tmp_path / "run").exists()
