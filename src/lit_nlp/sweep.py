"""Sweeps (`python train.py -m ...`): every job in its own run dir under the sweep dir, a job
that fails is recorded and the sweep goes on, `resume_sweep=true` skips finished jobs, and a
summary at the sweep dir is rebuilt from the job dirs after every job.

Layout of a sweep dir (`hydra.sweep.dir`, default `outputs/multirun/<date>_<time>`)::

    multirun.yaml                 Hydra's record of the sweep command (grid sweeps)
    <num>_<overrides>/            one run dir per job (README: "A run dir"), e.g.
                                  1_model.optimizer.lr=3e-05; `failed.json` in it when it failed
    <num>_<overrides>.failed-1/   an unfinished or failed run that `resume_sweep=true` moved aside
    summary.csv, summary.md       one row per job
    summary_cv.csv                only when `data.fold` is swept: mean and std over the folds

Columns of summary.csv, in order:

    job            the job's dir name
    status         ok (metrics.json written), failed (failed.json written), unfinished (neither:
                   still running, or killed)
    objective      the best value of the monitored metric, what train() returned to the sweeper
    <key>          one column per swept override key, named by the key (`model.optimizer.lr`,
                   `data.fold`), holding the job's value as written on the command line
    <monitor>_best, test/<metric>
                   the main metrics from the job's metrics.json (per-class `test/f1/<label>`
                   and the data counts stay in metrics.json)
    error          the failed job's error, one line
    best           True on the row with the best objective

Rows are sorted by objective in the `monitor_mode` direction (best first); failed and
unfinished jobs come last, in job order. Swept keys are the keys swept on the command line,
those in `hydra.sweeper.params` (Optuna's search space, experiment=cv's folds), and any other
override that differs between jobs (file paths and device flags excluded, as in dir names).

summary_cv.csv has one row per group of jobs that differ only in `data.fold`: the group's
other swept values, `folds` (finished folds), `failed`, then `<column>_mean` and `<column>_std`
(sample standard deviation over the finished folds) for the objective and each metric.
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

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from lit_nlp.errors import LitNlpError, user_error
from lit_nlp.reporting import METRICS_FILE, flatten
from lit_nlp.train import RESUME_OVERRIDABLE, SAVED_CONFIG

log = logging.getLogger(__name__)

SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
SUMMARY_CV = "summary_cv.csv"
FAILED_FILE = "failed.json"
FOLD_KEY = "data.fold"
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
    saved_path, last = job_dir / SAVED_CONFIG, job_dir / "checkpoints" / "last.ckpt"
    failed = (job_dir / FAILED_FILE).exists()
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
            objective = _objective(metrics, saved.get("monitor"))
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


def _objective(metrics: dict, monitor: str | None) -> float | None:
    """`<monitor>_best` from metrics.json; with monitor null (the task's main metric) the one
    `*_best` key train() wrote."""
    if monitor:
        return metrics.get(f"{monitor}_best")
    best = [k for k in metrics if k.endswith("_best")]
    return metrics[best[0]] if len(best) == 1 else None


# ----------------------------------------------------------------- the summary
class SweepSummary(Callback):
    """Hydra callback (conf/hydra/default.yaml): rebuild the sweep summary after every job of
    any sweeper, and report failed jobs when the sweep ends."""

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        from hydra.types import RunMode

        if config.hydra.mode == RunMode.MULTIRUN:
            write_summary(config.hydra.sweep.dir)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        path = write_summary(sweep_dir)
        jobs = _read_jobs(sweep_dir)
        failed = [j for j in jobs if j["status"] != "ok"]
        if failed:
            log.warning("%d of %d jobs failed or did not finish: %s; see %s", len(failed), len(jobs),
                        ", ".join(j["job"] for j in failed), path.with_suffix(".md"))
        else:
            log.info("all %d jobs finished; summary: %s", len(jobs), path.with_suffix(".md"))


def _parse_overrides(lines: list[str]) -> list:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    parsed = []
    for line in lines:
        try:
            parsed.extend(parser.parse_overrides([line]))
        except Exception:  # noqa: BLE001  (a summary never fails on an odd override)
            continue
    return parsed


def _job_overrides(job_dir: Path) -> dict[str, str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    lines = list(OmegaConf.load(path)) if path.is_file() else []
    return {o.key_or_group: o.get_value_element_as_str() for o in _parse_overrides(lines)
            if not o.is_sweep_override() and not o.is_delete()}


def _hydra_node(job_dir: Path) -> dict:
    path = job_dir / ".hydra" / "hydra.yaml"
    if not path.is_file():
        return {}
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False).get("hydra", {})


def _read_jobs(sweep_dir: Path) -> list[dict]:
    """Every job dir (a subdir with Hydra's .hydra/; moved-aside attempts have none)."""
    jobs = []
    for job_dir in sorted(p for p in Path(sweep_dir).iterdir() if (p / ".hydra").is_dir()):
        cfg_path = job_dir / SAVED_CONFIG if (job_dir / SAVED_CONFIG).is_file() else job_dir / ".hydra" / "config.yaml"
        saved = OmegaConf.to_container(OmegaConf.load(cfg_path), resolve=False) if cfg_path.is_file() else {}
        metrics = json.loads((job_dir / METRICS_FILE).read_text()) if (job_dir / METRICS_FILE).is_file() else {}
        failed = json.loads((job_dir / FAILED_FILE).read_text()) if (job_dir / FAILED_FILE).is_file() else None
        monitor = saved.get("monitor")
        if not monitor:
            best = [k for k in metrics if k.endswith("_best")]
            monitor = best[0][: -len("_best")] if len(best) == 1 else None
        jobs.append({
            "job": job_dir.name,
            "status": "failed" if failed else "ok" if metrics else "unfinished",
            "objective": None if failed else _objective(metrics, monitor),
            "monitor": monitor,
            "mode": saved.get("monitor_mode", "max"),
            "overrides": _job_overrides(job_dir),
            "metrics": {k: v for k, v in metrics.items()
                        if (k.startswith("test/") and k.count("/") == 1) or k.endswith("_best")},
            "error": failed["error"] if failed else "",
            "hydra": _hydra_node(job_dir),
        })
    return jobs


def _swept_keys(sweep_dir: Path, jobs: list[dict]) -> list[str]:
    keys: list[str] = []

    def add(key: str) -> None:
        if key not in keys:
            keys.append(key)

    multirun = Path(sweep_dir) / "multirun.yaml"
    if multirun.is_file():
        task = OmegaConf.select(OmegaConf.load(multirun), "hydra.overrides.task", default=[]) or []
        for override in _parse_overrides(list(task)):
            if override.is_sweep_override():
                add(override.key_or_group)
    excluded: set[str] = set()
    for job in jobs:
        for key in (job["hydra"].get("sweeper", {}) or {}).get("params", {}) or {}:
            add(key)
        dirname = job["hydra"].get("job", {}).get("config", {}).get("override_dirname", {})
        excluded |= set(dirname.get("exclude_keys", []) or [])
    every = sorted({k for job in jobs for k in job["overrides"]})
    for key in every:
        if key not in excluded and len({job["overrides"].get(key) for job in jobs}) > 1:
            add(key)
    return keys


def _job_num(name: str) -> tuple:
    head = name.split("_", 1)[0]
    return (int(head), name) if head.isdigit() else (math.inf, name)


def _sort_key(mode: str) -> Callable[[dict], tuple]:
    sign = -1 if mode == "max" else 1

    def key(row: dict) -> tuple:
        value = row["objective"]
        finished = row["status"] == "ok" and value is not None and not math.isnan(value)
        return (0, sign * value, _job_num(row["job"])) if finished else (1, 0.0, _job_num(row["job"]))

    return key


def _atomic_write(path: Path, text: str) -> None:
    """Several jobs may finish at once (parallel launchers): each writes its own temp file and
    moves it into place, so a reader never sees half a summary."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_summary(sweep_dir: str | Path) -> Path:
    """Rebuild summary.csv and summary.md (and summary_cv.csv when `data.fold` is swept) from
    the job dirs of `sweep_dir`; returns the path of summary.csv. Columns: see the module doc."""
    import pandas as pd

    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise LitNlpError(f"sweep dir not found: {sweep_dir}")
    jobs = _read_jobs(sweep_dir)
    keys = _swept_keys(sweep_dir, jobs)
    mode = next((j["mode"] for j in jobs if j["status"] == "ok"), jobs[0]["mode"] if jobs else "max")
    monitor = next((j["monitor"] for j in jobs if j["monitor"]), None)
    metric_names = sorted({k for j in jobs for k in j["metrics"]}, key=lambda k: (not k.endswith("_best"), k))

    rows = []
    for job in sorted(jobs, key=_sort_key(mode)):
        rows.append({"job": job["job"], "status": job["status"], "objective": job["objective"],
                     **{k: job["overrides"].get(k) for k in keys},
                     **{m: job["metrics"].get(m) for m in metric_names},
                     "error": job["error"], "best": False})
    if rows and rows[0]["status"] == "ok" and rows[0]["objective"] is not None and not math.isnan(rows[0]["objective"]):
        rows[0]["best"] = True
    columns = ["job", "status", "objective", *keys, *metric_names, "error", "best"]
    table = pd.DataFrame(rows, columns=columns)
    csv_path = sweep_dir / SUMMARY_CSV
    _atomic_write(csv_path, table.to_csv(index=False))

    cv = _cv_table(table, keys, ["objective", *metric_names], mode) if FOLD_KEY in keys else None
    if cv is not None:
        _atomic_write(sweep_dir / SUMMARY_CV, cv.to_csv(index=False))
    _atomic_write(sweep_dir / SUMMARY_MD, _markdown(sweep_dir, table, cv, keys, monitor, mode))
    return csv_path


def _cv_table(table, keys: list[str], values: list[str], mode: str):
    """Mean and sample std over the folds of each group of jobs that differ only in data.fold."""
    import pandas as pd

    group_keys = [k for k in keys if k != FOLD_KEY]
    rows = []
    grouped = table.groupby(group_keys, dropna=False, sort=False) if group_keys else [((), table)]
    for group, frame in grouped:
        group = group if isinstance(group, tuple) else (group,)
        done = frame[frame["status"] == "ok"]
        row = {**dict(zip(group_keys, group)), "folds": len(done), "failed": int((frame["status"] != "ok").sum())}
        for column in values:
            numbers = pd.to_numeric(done[column], errors="coerce")
            row[f"{column}_mean"] = numbers.mean() if len(done) else None
            row[f"{column}_std"] = numbers.std(ddof=1) if len(done) > 1 else None
        rows.append(row)
    cv = pd.DataFrame(rows)
    if len(cv):
        cv = cv.sort_values("objective_mean", ascending=mode != "max", na_position="last", kind="stable")
    return cv


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "**best**" if value else ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|")


def _md_table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _markdown(sweep_dir: Path, table, cv, keys: list[str], monitor: str | None, mode: str) -> str:
    counts = table["status"].value_counts().to_dict()
    status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    lines = [f"# Sweep {sweep_dir.name}", "",
             f"Objective: best `{monitor or 'monitored metric'}` ({mode}). {len(table)} jobs: {status or 'none yet'}.",
             ""]
    columns = [c for c in table.columns if c != "best"]
    records = table.to_dict("records")  # not iterrows(), which turns a row of numbers into floats
    lines += _md_table(["", *columns], [[row["best"], *(row[c] for c in columns)] for row in records])
    if cv is not None and len(cv):
        group_keys = [k for k in keys if k != FOLD_KEY]
        values = [c[: -len("_mean")] for c in cv.columns if c.endswith("_mean")]
        lines += ["", "## Cross-validation: mean ± std over the folds", ""]
        body = [[*(row[k] for k in group_keys), row["folds"], row["failed"],
                 *(_mean_std(row[f"{v}_mean"], row[f"{v}_std"]) for v in values)] for row in cv.to_dict("records")]
        lines += _md_table([*group_keys, "folds", "failed", *values], body)
    return "\n".join(lines) + "\n"


def _mean_std(mean, std) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    return f"{mean:.4f}" if std is None or math.isnan(std) else f"{mean:.4f} ± {std:.4f}"
