"""Several processes, one run: which process is rank 0 before any process group exists, one
run dir that every rank agrees on, and the FSDP wrap policy for transformer blocks.

How the processes of a run find one run dir (Hydra's default name holds `${now:...}`, which
each process resolves for itself, a second apart at worst, or in another time zone):
- Lightning's own launcher (`trainer.devices=N` on one machine) re-runs train.py for local
  ranks 1..N-1 with rank 0's `hydra.run.dir` on the command line: nothing to do.
- torchrun: every process runs train.py on its own. Rank 0 announces its run dir in the key
  store that torchrun's agent on node 0 already serves at MASTER_ADDR:MASTER_PORT (the one the
  process group starts from later); the other ranks wait for it before Hydra starts.
- srun with several tasks: no store exists before the process group, so the command must name
  the run dir (`hydra.run.dir=outputs/runs/$SLURM_JOB_ID`); without it the run stops at once.
The submitit launcher (hydra/launcher=slurm) picks each job's dir before submitting: nothing
to do either.
A job of a local sweep (`train.py -m ... trainer=ddp`): Lightning's launcher would re-run the
whole sweep command (`-m` and every value) in each new process, so rank 0 leaves the job's own
command line in the environment the processes inherit, and they run that one job.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import timedelta
from pathlib import Path

from lit_nlp.errors import LitNlpError

log = logging.getLogger(__name__)

# rank 0 reaches train() within seconds of its start, but imports on a cold shared filesystem
# can take minutes on a busy cluster
RUN_DIR_WAIT = timedelta(minutes=10)


def launch_rank() -> int:
    """This process's rank as its launcher states it, before Lightning sets up the process
    group: torchrun sets RANK; Lightning's own launcher starts local ranks 1.. with LOCAL_RANK
    and, on further nodes, NODE_RANK; srun sets SLURM_PROCID. Lightning's variables come before
    SLURM's: in an interactive `srun --pty bash` every process Lightning starts inherits
    SLURM_PROCID=0. (0 means rank 0 in every case; another value need not be the global rank.)"""
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    local, node = int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("NODE_RANK", 0))
    return local or node or int(os.environ.get("SLURM_PROCID", 0))


def _torchrun_store():
    """torchrun's key store (served by the agent on node 0), or None outside torchrun."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    from torch.distributed import TCPStore

    return TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False, timeout=RUN_DIR_WAIT)


def _run_dir_key() -> str:
    # a restarted torchrun attempt (--max-restarts) agrees afresh
    return f"lit_nlp/run_dir/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"


# the command line of the sweep job that rank 0 is running, for the processes Lightning starts
SWEEP_JOB_ENV = "LIT_NLP_SWEEP_JOB_ARGV"


def announce_sweep_job(resume: str | None, run_dir: Path) -> None:
    """Rank 0 of a job of a local multirun: the job's overrides, its run dir and (when
    resume_sweep continues it) `resume=`, as the command line for Lightning's other processes."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        os.environ.pop(SWEEP_JOB_ENV, None)
        return
    job = [*HydraConfig.get().overrides.task, f'hydra.run.dir="{Path(run_dir).resolve()}"']
    if resume:
        job.append(f"resume={Path(resume).resolve()}")
    os.environ[SWEEP_JOB_ENV] = json.dumps(job)


def sweep_job_argv(argv: list[str]) -> list[str]:
    """In a process that Lightning started for a sweep job (rank > 0 and rank 0 announced the
    job), that job's command line instead of the sweep's; otherwise `argv` unchanged."""
    job = os.environ.get(SWEEP_JOB_ENV)
    if not job or launch_rank() == 0 or "TORCHELASTIC_RUN_ID" in os.environ:
        return argv
    return [argv[0], *json.loads(job)]


def announce_run_dir(run_dir: Path) -> None:
    """Rank 0 under torchrun: tell the other ranks, waiting in `shared_run_dir_argv`, where the
    run is. Does nothing elsewhere."""
    store = _torchrun_store()
    if store is not None:
        store.set(_run_dir_key(), str(Path(run_dir).resolve()))


def shared_run_dir_argv(argv: list[str]) -> list[str]:
    """Command-line overrides that put a rank other than 0 into rank 0's run dir, writing
    neither Hydra's `.hydra/` record nor rank 0's log there (its own log is train_rank<N>.log)."""
    rank = launch_rank()
    tasks = int(os.environ.get("SLURM_STEP_NUM_TASKS", 1))
    named = any(a.startswith("hydra.run.dir=") for a in argv[1:])
    if "TORCHELASTIC_RUN_ID" not in os.environ and tasks > 1 and not named:
        raise LitNlpError(f"srun started {tasks} tasks without hydra.run.dir, so each would pick its own "
                          "run dir; add hydra.run.dir=outputs/runs/$SLURM_JOB_ID to the command")
    if rank == 0:
        return argv
    extra = ["hydra.output_subdir=null", f"hydra.job.name=train_rank{rank}"]
    store = _torchrun_store()
    if store is not None:
        run_dir = store.get(_run_dir_key()).decode()
        log.info("rank %d joins run dir %s", rank, run_dir)
        extra.insert(0, f'hydra.run.dir="{run_dir}"')  # quoted: Hydra's grammar takes any path then
    elif "TORCHELASTIC_RUN_ID" in os.environ and not named:
        raise LitNlpError("this torchrun rendezvous offers no shared store before training starts; "
                          "name the run dir on the command line: hydra.run.dir=outputs/runs/<name>")
    return [*argv, *extra]


class TransformerBlockPolicy:
    """FSDP auto-wrap policy: one FSDP unit per transformer block, so a GPU gathers one block's
    weights at a time. A block is what Hugging Face models mark as one: a
    `GradientCheckpointingLayer` (BertLayer, DistilBERT's TransformerBlock, T5Block, ... in
    transformers >= 4.52), or a module named in a model's `_no_split_modules` (older versions;
    FSDP visits a model before its blocks, so the names are learnt on the way down). One config
    thus serves every model."""

    def __init__(self):
        self.block_names: set[str] = set()
        try:
            from transformers.modeling_layers import GradientCheckpointingLayer
            self.block_types: tuple[type, ...] = (GradientCheckpointingLayer,)
        except ImportError:
            self.block_types = ()

    def __call__(self, module, recurse: bool, nonwrapped_numel: int) -> bool:
        self.block_names.update(getattr(module, "_no_split_modules", None) or ())
        if recurse:
            return True
        return isinstance(module, self.block_types) or type(module).__name__ in self.block_names
