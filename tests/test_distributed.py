"""Several processes, one run: DDP over 2 CPU processes trains on the batches of 1 process with
the same global batch and (without dropout) matches its metrics, torchrun with 2 "nodes" on
localhost writes one run dir, ranks other than 0 leave the run dir alone, and the FSDP wrap
policy finds the transformer blocks. The end-to-end runs start `train.py` as a user would, so
Lightning's launcher and torchrun re-run the script."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest

from conftest import ROOT, Started, compose_cfg, metrics_of, multilabel_rows, synthetic_rows, tiny_overrides, write_table
from lit_nlp.distributed import TransformerBlockPolicy, launch_rank, shared_run_dir_argv
from lit_nlp.errors import LitNlpError

LAUNCH_VARS = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK", "SLURM_STEP_NUM_TASKS", "TORCHELASTIC_RUN_ID",
               "TORCHELASTIC_USE_AGENT_STORE")


@pytest.fixture
def no_launcher(monkeypatch):
    for key in LAUNCH_VARS:
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


@pytest.fixture(scope="module")
def split_files(tmp_path_factory) -> dict[str, Path]:
    """960 training rows: 60 global batches of 16, so no batch is topped up and 2 ranks x 8 see
    exactly the rows 1 process x 16 sees. 41 validation rows: the ranks evaluate 21 and 20 rows,
    3 and 2 batches of 10 (uneven on purpose); 40 test rows."""
    folder = tmp_path_factory.mktemp("dist_data")
    rows = synthetic_rows(960 + 41 + 40, seed=5)
    return {"train": write_table(rows[:960], folder / "train.csv"),
            "validation": write_table(rows[960:1001], folder / "validation.csv"),
            "test": write_table(rows[1001:], folder / "test.csv")}


def cli_overrides(files: dict[str, Path], cache: Path) -> list[str]:
    return [f"data.{split}_file={path}" for split, path in files.items()] + [
        "model=bert_tiny", "data=csv", "data.max_length=32", "tokenizer.vocab_size=300", "data.eval_batch_size=10",
        "trainer.max_epochs=2", "model.optimizer.lr=3e-3", f"paths.cache_dir={cache}",
        # no dropout: each rank draws its own masks, so with dropout 2 ranks x 8 draw other masks
        # than 1 x 16 and the runs agree only as runs with other masks do (BERT's classifier
        # dropout defaults to hidden_dropout_prob: these two keys turn off all of bert_tiny's)
        "+model.backbone.config.hidden_dropout_prob=0", "+model.backbone.config.attention_probs_dropout_prob=0",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def run_env() -> dict[str, str]:
    # 2 cores shared by every process of the test: one thread each
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def run_dirs(cwd: Path) -> list[Path]:
    return sorted((cwd / "outputs" / "runs").iterdir())


def assert_one_run(cwd: Path) -> Path:
    """Exactly one run dir, holding one config, one TensorBoard log and the rank-1 log."""
    dirs = run_dirs(cwd)
    assert len(dirs) == 1, dirs
    run = dirs[0]
    assert (run / "config.yaml").is_file() and (run / "metrics.json").is_file()
    assert (run / "export" / "lit_nlp.json").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    # one TensorBoard log dir, written by one process (event files are named ...<pid>.<n>)
    writers = {f.name.split(".")[-2] for f in (run / "tensorboard").glob("events.out.tfevents.*")}
    assert len(writers) == 1 and not (run / "lightning_logs").exists()
    assert (run / "train.log").is_file() and (run / "train_rank1.log").is_file()
    return run


class RecordTrainBatches(L.Callback):
    """Writes the rows of every training batch this rank trains on to `<folder>/rank<N>.json`:
    per step, the token ids of each row without its padding (each rank pads to its own longest
    row), sorted, so that steps compare as sets of rows."""

    def __init__(self, folder: str):
        self.folder = Path(folder)
        self.steps: list[list[list[int]]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        rows = [ids[mask.bool()].tolist() for ids, mask in zip(batch["input_ids"], batch["attention_mask"])]
        self.steps.append(sorted(rows))

    def on_train_end(self, trainer, pl_module):
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.steps))


def record_batches(folder: Path) -> list[str]:
    # the rank-1 process imports this module too: train.py is re-run with this environment
    return ["+callbacks.record_batches._target_=test_distributed.RecordTrainBatches",
            f"+callbacks.record_batches.folder={folder}"]


def recorded_batches(folder: Path) -> list[list[list[list[int]]]]:
    """Per rank, per step, the sorted rows recorded by RecordTrainBatches."""
    return [json.loads(path.read_text()) for path in sorted(folder.glob("rank*.json"))]


def one_process_and_two(tmp_path: Path, overrides: list[str]) -> tuple[dict, dict]:
    """The metrics of `train()` in this process with batch 16, and of `python train.py` with
    trainer=ddp_cpu over 2 processes of batch 8; and the check that the 2 ranks trained on
    exactly the global batches of the one process, step by step, every epoch."""
    from lit_nlp.train import train

    ddp_cwd = tmp_path / "ddp"
    ddp_cwd.mkdir()
    # no hydra.run.dir: the time-stamped default, which Lightning hands to the rank-1 process
    env = {**run_env(), "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent),
                                                                     os.environ.get("PYTHONPATH")]))}
    # started first, so that the one process trains here while the ranks import (a core each);
    # the two runs share only the cache dir, which is built once under its lock
    ddp = Started([sys.executable, str(ROOT / "train.py"), *overrides, *record_batches(tmp_path / "batches_ddp"),
                   "trainer=ddp_cpu", "trainer.devices=2", "data.batch_size=8"], tmp_path / "ddp_process",
                  cwd=ddp_cwd, env=env)
    single = tmp_path / "single"
    try:
        train(compose_cfg([*overrides, *record_batches(tmp_path / "batches_single"), "trainer=cpu",
                           "data.batch_size=16"], single))
    except BaseException:
        ddp.stop()
        raise
    result = ddp.result()
    assert result.returncode == 0, result.stderr[-3000:]
    [one] = recorded_batches(tmp_path / "batches_single")
    rank0, rank1 = recorded_batches(tmp_path / "batches_ddp")
    assert len(rank0) == len(rank1) == len(one)
    assert all(len(a) == len(b) for a, b in zip(rank0, rank1)), "the ranks' batches at a step differ in size"
    # the same global batch at every step: a mismatch here is a sampler that lets the ranks
    # shuffle differently or re-cuts the batches, whatever the metrics say
    for step, (a, b, batch) in enumerate(zip(rank0, rank1, one)):
        assert sorted(a + b) == batch, f"step {step}: the 2 ranks' rows are not the 1 process's batch"
    return metrics_of(single), metrics_of(assert_one_run(ddp_cwd))


@pytest.mark.slow
def test_ddp_two_processes_match_one_process(tmp_path, split_files):
    """1 process x batch 16 and 2 processes x batch 8 train on the same global batches
    (data/sampler.py; checked batch by batch), so without dropout they end with the same
    metrics: the README's promise, both halves. Tolerances: the math is the same, only
    fp32 summation order differs (an all-reduce of two 8-row mean gradients instead of one
    16-row mean, each rank padding to its own longest row), about 1e-7 relative per step;
    after 120 AdamW steps the losses agree to ~1e-6 (we measured 6e-8 and 6e-9). Accuracy
    counts rows, synced by torchmetrics, and every row is evaluated exactly once (no padding
    of the eval split), so it must be equal. Here it reaches 1.0 either way, so the loss is
    what tells a broken promise: with dropout on, or each rank's sampler seeded apart, the test
    losses were 4e-4 and 5e-4 apart (of about 1e-3)."""
    a, b = one_process_and_two(tmp_path, cli_overrides(split_files, tmp_path / "cache"))
    assert a["global_step"] == b["global_step"] == 2 * 960 // 16
    assert a["val/acc_best"] > 0.8, "the tiny model should learn the cue words"
    for key in ("val/acc_best", "test/acc", "test/f1_macro"):
        assert b[key] == a[key], key
    # 40 test rows = 20 per rank: the mean of the ranks' mean losses is the mean over all rows
    assert b["test/loss"] == pytest.approx(a["test/loss"], abs=1e-5)
    # each rank trained on half of each global batch; the throughput counts the whole job
    assert b["train/samples"] == a["train/samples"] == 2 * 960


@pytest.mark.slow
def test_ddp_multilabel_threshold_and_scores_match_one_process(tmp_path):
    """Multi-label scores are computed once the whole split is in (every rank's probabilities
    gathered), and the tuned threshold is chosen from them: 2 processes must choose the threshold
    1 process chooses and give its F1 and exact match (41 validation rows: uneven shards)."""
    rows = multilabel_rows(320 + 41 + 40, seed=4)
    files = {"train": write_table(rows[:320], tmp_path / "train.csv"),
             "validation": write_table(rows[320:361], tmp_path / "validation.csv"),
             "test": write_table(rows[361:], tmp_path / "test.csv")}
    overrides = [*cli_overrides(files, tmp_path / "cache"), "trainer.max_epochs=1", "data.label_column=labels",
                 "data.label_separator=|", "model.tune_threshold=true"]
    a, b = one_process_and_two(tmp_path, overrides)
    assert a["global_step"] == b["global_step"] == 320 // 16
    assert 0 < a["test/threshold"] < 1 and a["test/f1_micro"] > 0.3, a
    for key in ("val/f1_micro_best", "test/threshold", "test/f1_micro", "test/f1_macro", "test/exact_match"):
        assert b[key] == pytest.approx(a[key], abs=1e-6), key


@pytest.mark.slow
def test_sweep_of_ddp_jobs_runs_each_job_once(tmp_path, split_files):
    """`-m` with trainer=ddp_cpu: Lightning re-runs train.py for rank 1 of every job, which must
    run that job (not the whole sweep again) in the job's dir; and the second job must not
    inherit the first one's process group (a collective with a process that has exited)."""
    overrides = [*cli_overrides(split_files, tmp_path / "cache"), "trainer.max_epochs=1", "trainer=ddp_cpu",
                 "trainer.devices=2", "data.batch_size=8"]
    sweep = tmp_path / "sweep"
    result = subprocess.run([sys.executable, str(ROOT / "train.py"), "-m", *overrides, "model.optimizer.lr=1e-3,3e-3",
                             f"hydra.sweep.dir={sweep}"], cwd=tmp_path, env=run_env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [j.name.split("_")[0] for j in jobs] == ["0", "1"], jobs
    for job in jobs:
        assert not (job / "failed.json").exists(), (job / "failed.json").read_text()
        assert (job / "metrics.json").is_file() and (job / "train_rank1.log").is_file()
        assert metrics_of(job)["global_step"] == 960 // 16
    assert not (tmp_path / "outputs").exists()  # no stray run dir from a rank-1 process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_nodes_write_one_run_dir(tmp_path, split_files):
    """Two torchrun agents on localhost (node ranks 0 and 1, one process each, gloo), started
    together as on two machines. Each process resolves Hydra's `${now:...}` run dir itself; the
    two "nodes" run in time zones 9 hours apart, so without rank 0 announcing its dir they
    would surely write two."""
    port = free_port()
    overrides = [*cli_overrides(split_files, tmp_path / "cache"), "trainer.max_epochs=1", "trainer=ddp_cpu",
                 "trainer.devices=1", "trainer.num_nodes=2", "data.batch_size=8"]
    procs = []
    for node_rank, tz in ((0, "UTC0"), (1, "JST-9")):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(node_rank),
               "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", str(port),
               str(ROOT / "train.py"), *overrides]
        procs.append(subprocess.Popen(cmd, cwd=tmp_path, env={**run_env(), "TZ": tz}, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-3000:]
    run = assert_one_run(tmp_path)
    metrics = metrics_of(run)
    # one run of 1 epoch (60 global batches of 2 x 8) over the 2 "nodes": the tiny model learns the cue
    # words, as in 1 process
    assert metrics["global_step"] == 960 // 16 and metrics["val/acc_best"] > 0.8 and metrics["test/acc"] > 0.8


# ----------------------------------------------------------------- ranks before the process group
@pytest.mark.parametrize("env,rank", [
    ({}, 0),
    ({"RANK": "3", "LOCAL_RANK": "1"}, 3),            # torchrun
    ({"SLURM_PROCID": "5"}, 5),                       # srun
    ({"LOCAL_RANK": "1"}, 1),                         # Lightning's launcher, second process
    ({"NODE_RANK": "1"}, 1),                          # Lightning's launcher, second node
    ({"SLURM_PROCID": "0", "LOCAL_RANK": "2"}, 2),    # Lightning's launcher inside `srun --pty bash`
])
def test_launch_rank_reads_the_launcher(no_launcher, env, rank):
    for key, value in env.items():
        no_launcher.setenv(key, value)
    assert launch_rank() == rank


def test_rank_zero_and_single_runs_keep_their_command_line(no_launcher):
    argv = ["train.py", "model=bert_tiny"]
    assert shared_run_dir_argv(argv) == argv


def test_other_ranks_write_neither_hydra_record_nor_rank_zero_log(no_launcher):
    no_launcher.setenv("LOCAL_RANK", "1")
    argv = shared_run_dir_argv(["train.py", 'hydra.run.dir="/runs/a"'])
    assert argv[-2:] == ["hydra.output_subdir=null", "hydra.job.name=train_rank1"]


def test_srun_without_a_named_run_dir_is_refused(no_launcher):
    no_launcher.setenv("SLURM_STEP_NUM_TASKS", "8")
    no_launcher.setenv("SLURM_PROCID", "0")
    with pytest.raises(LitNlpError, match=r"hydra.run.dir=outputs/runs/\$SLURM_JOB_ID"):
        shared_run_dir_argv(["train.py"])
    assert shared_run_dir_argv(["train.py", "hydra.run.dir=outputs/runs/42"])[-1] == "hydra.run.dir=outputs/runs/42"


def test_other_ranks_leave_the_run_dir_to_rank_zero(no_launcher, tmp_path, synthetic_csv):
    """A rank other than 0 neither refuses an existing run dir nor writes config.yaml."""
    from lit_nlp.run_dir import claim_run_dir

    run = tmp_path / "run"
    cfg = compose_cfg(tiny_overrides(synthetic_csv), run)
    assert claim_run_dir(cfg, run) is None
    assert (run / "config.yaml").is_file()  # rank 0 claimed it
    no_launcher.setenv("LOCAL_RANK", "1")
    (run / "config.yaml").write_text("written by rank 0\n")
    assert claim_run_dir(cfg, run) is None
    assert (run / "config.yaml").read_text() == "written by rank 0\n"


# ----------------------------------------------------------------- FSDP wrap policy
@pytest.mark.parametrize("model_type,block,count", [("bert", "BertLayer", 2), ("distilbert", "TransformerBlock", 2),
                                                     ("t5", "T5Block", 4)])
def test_fsdp_policy_wraps_the_models_own_blocks(model_type, block, count):
    """Walked as FSDP walks (a parent before its children), the policy wraps each transformer
    block (T5: 2 encoder + 2 decoder blocks) and, besides, at most BERT's embeddings."""
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification

    sizes = {"bert": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
             "distilbert": dict(dim=32, n_layers=2, n_heads=2, hidden_dim=64),
             "t5": dict(d_model=32, d_ff=64, d_kv=8, num_heads=2, num_layers=2, num_decoder_layers=2)}[model_type]
    auto = AutoModelForSeq2SeqLM if model_type == "t5" else AutoModelForSequenceClassification
    model = auto.from_config(AutoConfig.for_model(model_type, vocab_size=100, **sizes))
    policy = TransformerBlockPolicy()
    wrapped = []

    def walk(module):
        assert policy(module, recurse=True, nonwrapped_numel=0)
        for child in module.children():
            walk(child)
        if policy(module, recurse=False, nonwrapped_numel=0):
            wrapped.append(type(module).__name__)

    walk(model)
    assert wrapped.count(block) == count
    assert set(wrapped) <= {block, "BertEmbeddings"}
