"""The summary of a sweep: summary.csv and summary.md (and summary_cv.csv for cross-validation)
rebuilt from the job dirs after every job by the `SweepSummary` Hydra callback
(conf/hydra/default.yaml), for any sweeper; `write_summary(<sweep dir>)` does it by hand.

Columns of summary.csv, in order:

    job            the job's dir name
    status         ok (metrics.json written), failed (failed.json written), pruned (pruned.json:
                   an Optuna trial its pruner stopped), unfinished (none: still running, or killed)
    objective      the best value of the monitored metric, what train() returned to the sweeper
    <key>          one column per swept override key, named by the key (`model.optimizer.lr`,
                   `data.fold`), holding the job's value as written on the command line
    <monitor>_best, test/<metric>
                   the main metrics from the job's metrics.json (per-class `test/f1/<label>`
                   and the data counts stay in metrics.json)
    error          the failed job's error, one line (a pruned job: why it was pruned)
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

import json
import logging
import math
import os
from pathlib import Path
from typing import Callable

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from lit_nlp.errors import LitNlpError
from lit_nlp.run_layout import METRICS_FILE, SAVED_CONFIG
from lit_nlp.sweeps.jobs import FAILED_FILE, PRUNED_FILE, objective_of

log = logging.getLogger(__name__)

SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
SUMMARY_CV = "summary_cv.csv"
FOLD_KEY = "data.fold"


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
        _draw_objective(sweep_dir)
        jobs = _read_jobs(sweep_dir)
        failed = [j for j in jobs if j["status"] not in ("ok", "pruned")]
        if failed:
            log.warning("%d of %d jobs failed or did not finish: %s; see %s", len(failed), len(jobs),
                        ", ".join(j["job"] for j in failed), path.with_suffix(".md"))
        else:
            log.info("all %d jobs finished; summary: %s", len(jobs), path.with_suffix(".md"))


def _draw_objective(sweep_dir: Path) -> None:
    """`sweep_objective.png` once the sweep ends (not after every job: matplotlib is slow to start
    and the summary is what a running sweep needs). A plot is never worth failing a finished sweep,
    so a drawing error is logged; `python -m lit_nlp.plots <sweep dir>` draws it again."""
    from lit_nlp.plots import plot_sweep

    try:
        log.info("objective plot: %s", plot_sweep(sweep_dir))
    except Exception as err:  # noqa: BLE001
        log.warning("could not draw the sweep's objective plot (%s: %s); "
                    "redraw it with python -m lit_nlp.plots %s", type(err).__name__, err, sweep_dir)


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
        pruned = json.loads((job_dir / PRUNED_FILE).read_text()) if (job_dir / PRUNED_FILE).is_file() else None
        monitor = saved.get("monitor")
        if not monitor:
            best = [k for k in metrics if k.endswith("_best")]
            monitor = best[0][: -len("_best")] if len(best) == 1 else None
        jobs.append({
            "job": job_dir.name,
            "status": "failed" if failed else "pruned" if pruned else "ok" if metrics else "unfinished",
            "objective": None if failed or pruned else objective_of(metrics, monitor),
            "monitor": monitor,
            "mode": saved.get("monitor_mode", "max"),
            "overrides": _job_overrides(job_dir),
            "metrics": {k: v for k, v in metrics.items()
                        if (k.startswith("test/") and k.count("/") == 1) or k.endswith("_best")},
            "error": failed["error"] if failed else pruned["reason"] if pruned else "",
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
