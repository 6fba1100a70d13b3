"""One job of a sweep (`python train.py -m ...`): every job in its own run dir under the sweep
dir, a job that fails is recorded and the sweep goes on, `resume_sweep=true` skips finished
jobs and continues unfinished ones. The summary is lit_nlp.sweeps.summary.

Layout of a sweep dir (`hydra.sweep.dir`, default `outputs/multirun/<date>_<time>`)::

    multirun.yaml                 Hydra's record of the sweep command (grid sweeps)
    <num>_<overrides>/            one run dir per job (docs/run_dir.md), e.g.
                                  1_model.optimizer.lr=3e-05; `failed.json` in it when it failed
    <num>_<overrides>.failed-1/   an unfinished or failed run that `resume_sweep=true` moved aside
    summary.csv, summary.md       one row per job (lit_nlp.sweeps.summary)
    summary_cv.csv                only when `data.fold` is swept: mean and std over the folds
    optuna.db                     hparams_search=optuna: the study (lit_nlp.sweeps.optuna_sweeper)
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig, OmegaConf

from lit_nlp.errors import LitNlpError, user_error
from lit_nlp.run_dir import RESUME_OVERRIDABLE, flatten
from lit_nlp.run_layout import METRICS_FILE, SAVED_CONFIG, last_checkpoint

log = logging.getLogger(__name__)

FAILED_FILE = "failed.json"
PRUNED_FILE = "pruned.json"  # an Optuna trial that the pruner stopped (lit_nlp.callbacks.OptunaPruning)
# a finished job counts as the same job when only where and how it ran differ (not how long)
RERUN_IGNORED = tuple(k for k in RESUME_OVERRIDABLE if not k.startswith("trainer.max_"))


# ----------------------------------------------------------------- one job of a sweep
def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def sweep_job(task: Callable[[DictConfig], float | None]) -> Callable[[DictConfig], float | None]:
    """Wrap the `@hydra.main` task for sweeps. A single run calls `task` unchanged (errors stay
    loud). In a sweep: with `resume_sweep=true` a finished job returns its stored objective
    without training, an unfinished one continues from its last.ckpt or is moved aside; a job
    that raises writes `failed.json` (its error in one line) and returns None, so the sweeper
    goes on to the next job instead of stopping the sweep at the end of the batch."""

    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> float | None:
        if not in_multirun():
            return task(cfg)
        job_dir = Path(cfg.paths.output_dir)
        stored = _prepare_job_dir(cfg, job_dir)
        if stored is not None:
            return _for_sweeper(stored)
        environ = dict(os.environ)
        try:
            objective = task(cfg)
        except Exception as err:  # noqa: BLE001  (any failure of one job must not end the sweep)
            if type(err).__name__ == "TrialPruned":  # optuna's, raised by the pruning callback
                log.info("job %s pruned: %s", job_dir.name, err)
                _write_json(job_dir / PRUNED_FILE, {"reason": str(err)})
                return None
            err = user_error(err) or err  # the project's own error, not Hydra's wrapper around it
            line = error_line(err)
            # a user error is its message; anything else keeps its traceback in the job's log
            log.error("job %s failed: %s", job_dir.name, line, exc_info=not isinstance(err, LitNlpError))
            _write_json(job_dir / FAILED_FILE, {"error": line, "type": type(err).__name__})
            return None
        finally:
            _end_process_group(environ)
        return _for_sweeper(objective)

    return wrapper


def _end_process_group(environ: dict) -> None:
    """After a job that ran DDP in this process: Lightning leaves its process group up and its
    LOCAL_RANK/MASTER_PORT/WORLD_SIZE in the environment, which would make the next job take
    this process for one that an outside launcher started, reuse a group whose other processes
    have exited, and fail at its first collective. End the group and restore the environment."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    os.environ.clear()
    os.environ.update(environ)


def _for_sweeper(objective: float | None) -> float | None:
    """No value is None: Optuna records a trial told None as failed and goes on, while NaN makes
    its tell() raise and ends the whole search."""
    return None if objective is None or math.isnan(objective) else float(objective)


def error_line(err: BaseException) -> str:
    """A user error is already one line; anything else is named by its type and first line."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return text if isinstance(err, LitNlpError) else f"{type(err).__name__}: {text}".rstrip(": ")


def _changed(saved: DictConfig, cfg: DictConfig, ignored: tuple[str, ...]) -> list[str]:
    a = flatten(OmegaConf.to_container(saved, resolve=False))
    b = flatten(OmegaConf.to_container(cfg, resolve=False))
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and not k.startswith(ignored))


def _prepare_job_dir(cfg: DictConfig, job_dir: Path) -> float | None:
    """None: train this job (fresh, or continuing via cfg.resume). A number: the stored
    objective of a finished job that `resume_sweep` skips."""
    saved_path, last = job_dir / SAVED_CONFIG, last_checkpoint(job_dir)
    failed = (job_dir / FAILED_FILE).exists() or (job_dir / PRUNED_FILE).exists()
    if not (saved_path.exists() or last.exists() or failed or (job_dir / METRICS_FILE).exists()):
        return None
    if not cfg.get("resume_sweep"):
        raise LitNlpError(f"{job_dir} already holds a run; re-run the sweep with resume_sweep=true to skip "
                          "finished jobs, or pick another hydra.sweep.dir")
    saved = OmegaConf.load(saved_path) if saved_path.is_file() else None
    if saved is not None and not failed and (job_dir / METRICS_FILE).is_file():
        changed = _changed(saved, cfg, RERUN_IGNORED)
        if not changed:
            metrics = json.loads((job_dir / METRICS_FILE).read_text())
            objective = objective_of(metrics, saved.get("monitor"))
            log.info("resume_sweep: %s finished already (objective %s); not trained again", job_dir.name, objective)
            return math.nan if objective is None else objective  # a number: skip training
        _move_aside(job_dir, "stale", f"its config differs in {', '.join(changed)}")
        return None
    if saved is not None and not failed and last.is_file() and not _changed(saved, cfg, RESUME_OVERRIDABLE):
        log.info("resume_sweep: %s stopped before the end; continuing from %s", job_dir.name, last)
        cfg.resume = str(job_dir)  # train() restores checkpoints/last.ckpt and keeps the same dir
        return None
    why = ("it failed" if failed else "its config differs from the saved run's" if saved is not None and last.is_file()
           else "it stopped before its first checkpoint")
    _move_aside(job_dir, "failed", why)
    return None


def _move_aside(job_dir: Path, label: str, why: str) -> Path:
    """Keep an earlier attempt instead of overwriting it: its files go to `<dir>.<label>-N`.
    Hydra has already written this job's .hydra/ and opened its log, so those stay (the log
    is copied: it holds the earlier attempt's lines)."""
    n = 1
    while (aside := job_dir.with_name(f"{job_dir.name}.{label}-{n}")).exists():
        n += 1
    aside.mkdir()
    for entry in job_dir.iterdir():
        if entry.name == ".hydra":
            continue
        if entry.suffix == ".log":
            shutil.copy2(entry, aside / entry.name)
        else:
            entry.rename(aside / entry.name)
    log.warning("resume_sweep: moved the earlier run of %s to %s (%s); training it again", job_dir.name,
                aside.name, why)
    return aside


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(path)


def objective_of(metrics: dict, monitor: str | None) -> float | None:
    """`<monitor>_best` from metrics.json; with monitor null (the task's main metric) the one
    `*_best` key train() wrote."""
    if monitor:
        return metrics.get(f"{monitor}_best")
    best = [k for k in metrics if k.endswith("_best")]
    return metrics[best[0]] if len(best) == 1 else None
