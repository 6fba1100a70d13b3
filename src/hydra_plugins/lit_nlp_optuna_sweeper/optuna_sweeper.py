"""`hparams_search=optuna`: a Hydra sweeper on Optuna's ask-and-tell API (Optuna >= 4), with the
study kept in a SQLite file inside the sweep dir.

Hydra's own hydra-optuna-sweeper pins optuna<3 (Optuna 2.10, 2021), so this project keeps a
small sweeper of its own (Hydra loads sweepers only from the `hydra_plugins` package, hence this
folder). Each trial is a job of the sweep: the launcher runs it as `<trial number>_<overrides>`
under the sweep dir, the job's return value (the best `monitor`, None for a failed job) is told
to the study, and `optuna-dashboard sqlite:///<sweep dir>/optuna.db` watches the search.

A killed search resumes from its storage: run the same command with `hydra.sweep.dir=<sweep
dir> resume_sweep=true`. Finished trials count toward `n_trials`; a trial that was running when
the search died is run again under its own number (its job dir continues from its last.ckpt).
Pruning (optional, `hydra/sweeper/pruner=median`) happens inside the jobs: the OptunaPruning
callback reports the monitored metric after every validation and stops a trial the pruner gives
up on; the job then writes `pruned.json` and the trial is told PRUNED."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

RESULTS_FILE = "optimization_results.yaml"


def distribution(override: Override):
    """Optuna's distribution for one swept key, in Hydra's sweep syntax: `choice(16, 32)` or
    `a,b` (categorical), `range(1, 5)` (integers, step 1), `interval(1e-5, 1e-3)` (uniform; int
    when both ends are ints), `tag(log, interval(...))` (log-uniform)."""
    import optuna.distributions as d

    value = override.value()
    if isinstance(value, ChoiceSweep):
        return d.CategoricalDistribution([x for x in value.list])
    if isinstance(value, RangeSweep):
        values = list(override.sweep_iterator())
        if all(isinstance(x, int) for x in values) and len(values) > 1:
            return d.IntDistribution(min(values), max(values), step=abs(int(value.step)))
        return d.CategoricalDistribution(values)
    if isinstance(value, IntervalSweep):
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return d.IntDistribution(value.start, value.end, log=log_scale)
        return d.FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise ValueError(f"{override.input_line}: not a sweep Optuna can search (choice, range, interval)")


class OptunaSweeper(Sweeper):
    """Configured by conf/hydra/sweeper/optuna.yaml (see there and conf/hparams_search/optuna.yaml)."""

    def __init__(self, sampler: Any = None, direction: str = "maximize", study_name: str = "lit_nlp",
                 storage: str | None = None, n_trials: int = 20, n_jobs: int = 1, max_failure_rate: float = 0.0,
                 params: DictConfig | None = None, pruner: Any = None):
        self.sampler, self.pruner = sampler, pruner
        self.direction, self.study_name, self.storage = direction, study_name, storage
        self.n_trials, self.n_jobs, self.max_failure_rate = n_trials, max(1, n_jobs), max_failure_rate
        self.params = dict(params or {})

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    # ------------------------------------------------------------------ the search space
    def _search_space(self, arguments: list[str]) -> tuple[dict, list[str]]:
        """Swept keys from `params` and from swept command-line overrides (which win), and the
        plain overrides that every trial gets."""
        parser = OverridesParser.create()
        space = {}
        for key, value in self.params.items():
            (override,) = parser.parse_overrides([f"{key}={value}"])
            space[override.get_key_element()] = distribution(override) if override.is_sweep_override() else None
        fixed = []
        for override in parser.parse_overrides(arguments):
            if override.is_sweep_override():
                space[override.get_key_element()] = distribution(override)
            else:
                space.pop(override.get_key_element(), None)
                fixed.append(override.input_line)
        # params that are not sweeps (`key: value`) are fixed values too
        fixed += [f"{key}={self.params[key]}" for key, dist in space.items() if dist is None]
        return {k: v for k, v in space.items() if v is not None}, fixed

    def _overrides(self, fixed: list[str], params: dict) -> list[str]:
        from lit_nlp.trainer_args import trainer_overrides

        return trainer_overrides([*fixed, *(f"{key}={value}" for key, value in params.items())])

    # ------------------------------------------------------------------ the loop
    def sweep(self, arguments: list[str]) -> list:
        import optuna

        from lit_nlp.errors import LitNlpError

        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        space, fixed = self._search_space(arguments)
        study = optuna.create_study(study_name=self.study_name, storage=self.storage, pruner=self.pruner,
                                    direction=self.direction, load_if_exists=True)
        earlier = study.get_trials(deepcopy=False)
        study.sampler = self._sampler(len(earlier))
        if earlier and not self.config.get("resume_sweep"):
            raise LitNlpError(f"{sweep_dir} holds an Optuna study with {len(earlier)} trials; resume it with "
                              "resume_sweep=true, or pick another hydra.sweep.dir")
        state = optuna.trial.TrialState
        done = [t for t in earlier if t.state.is_finished()]
        killed = [t for t in earlier if t.state == state.RUNNING]  # the search died during these
        log.info("Optuna study %s in %s: %d trials finished, %d to run again, %d of n_trials=%d to go",
                 self.study_name, self.storage or "memory", len(done), len(killed),
                 max(0, self.n_trials - len(done) - len(killed)), self.n_trials)

        returns = []
        for trial in killed:  # one at a time: their numbers need not be consecutive
            returns += self._run(study, [(trial.number, trial.params)], fixed)
        while (started := len(study.get_trials(deepcopy=False, states=(state.COMPLETE, state.PRUNED, state.FAIL,
                                                                         state.RUNNING)))) < self.n_trials:
            batch = [study.ask(fixed_distributions=space) for _ in range(min(self.n_jobs, self.n_trials - started))]
            numbers = [t.number for t in batch]
            consecutive = numbers == list(range(numbers[0], numbers[0] + len(numbers)))
            groups = [batch] if consecutive else [[t] for t in batch]  # job number = trial number
            for group in groups:
                returns += self._run(study, [(t.number, t.params) for t in group], fixed)
            self._check_failure_rate(study)
        self._write_results(study, sweep_dir)
        return returns

    def _sampler(self, trials_before: int):
        """The configured sampler (a partial, `_partial_: true`). A seeded sampler restarted on a
        resumed study would draw the same parameters as its first trials did (its random state
        starts over, and TPE's first 10 trials are random): it is seeded with seed + the number
        of trials already in the study instead."""
        import optuna

        if self.sampler is None or isinstance(self.sampler, optuna.samplers.BaseSampler):
            return self.sampler
        seed = getattr(self.sampler, "keywords", {}).get("seed")
        return self.sampler(seed=seed + trials_before) if seed is not None and trials_before else self.sampler()

    def _run(self, study, trials: list[tuple[int, dict]], fixed: list[str]) -> list:
        import optuna

        from lit_nlp.sweeps.jobs import PRUNED_FILE

        overrides = [self._overrides(fixed, params) for _, params in trials]
        self.validate_batch_is_legal(overrides)
        results = self.launcher.launch(overrides, initial_job_idx=trials[0][0])
        for (number, _), result in zip(trials, results):
            job_dir = Path(result.hydra_cfg.hydra.runtime.output_dir) if result.hydra_cfg else None
            try:
                value = result.return_value  # raises the job's exception when it failed
            except Exception as err:  # noqa: BLE001  (the job failed outside lit_nlp's sweep_job)
                log.warning("trial %d failed: %s", number, err)
                value = None
            if job_dir is not None and (job_dir / PRUNED_FILE).is_file():
                study.tell(number, state=optuna.trial.TrialState.PRUNED)
            elif value is None or (isinstance(value, float) and math.isnan(value)):
                study.tell(number, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(number, float(value))
        return results

    def _check_failure_rate(self, study) -> None:
        import optuna

        from lit_nlp.errors import LitNlpError

        trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                          optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL))
        failed = sum(t.state == optuna.trial.TrialState.FAIL for t in trials)
        if trials and failed / len(trials) > self.max_failure_rate:
            raise LitNlpError(f"{failed} of {len(trials)} Optuna trials failed, more than "
                              f"hydra.sweeper.max_failure_rate={self.max_failure_rate}; see the failed.json of their job dirs")

    def _write_results(self, study, sweep_dir: Path) -> None:
        import optuna

        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if not complete:
            log.warning("no Optuna trial finished; %s not written", RESULTS_FILE)
            return
        best = study.best_trial
        results = {"name": "optuna", "study_name": study.study_name, "storage": self.storage,
                   "best_trial": best.number, "best_params": best.params, "best_value": best.value}
        OmegaConf.save(OmegaConf.create(results), sweep_dir / RESULTS_FILE)
        log.info("best trial %d: %s = %s with %s", best.number, self.direction, best.value, best.params)
