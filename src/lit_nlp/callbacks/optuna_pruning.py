"""Report the monitored metric of an Optuna trial after every validation, and stop the trial
when the sweeper's pruner gives up on it (hparams_search=optuna, hydra/sweeper/pruner=...)."""

from __future__ import annotations

import logging

import lightning as L

log = logging.getLogger(__name__)


class OptunaPruning(L.Callback):
    """Inside a job of lit_nlp's Optuna sweeper (hydra_plugins/lit_nlp_optuna_sweeper), whose job
    number is the trial number: after each validation, write `monitor` to the study as the
    trial's intermediate value at that epoch (optuna-dashboard plots them) and ask the pruner
    (`hydra.sweeper.pruner`; none: never prune). A pruned trial raises optuna.TrialPruned, which
    the sweep job records as pruned.json. Outside such a sweep it does nothing."""

    def __init__(self, monitor: str):
        self.monitor = monitor
        self._trial = None  # (storage, study, trial_id, pruner)

    def setup(self, trainer: L.Trainer, pl_module, stage: str) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if stage != "fit" or not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
            return
        sweeper = HydraConfig.get().sweeper
        if not str(sweeper.get("_target_", "")).endswith("lit_nlp_optuna_sweeper.optuna_sweeper.OptunaSweeper") \
                or not sweeper.get("storage"):
            return
        import optuna
        from hydra.utils import instantiate

        storage = optuna.storages.get_storage(sweeper.storage)
        study = optuna.load_study(study_name=sweeper.study_name, storage=storage)
        trial_id = storage.get_trial_id_from_study_id_trial_number(
            storage.get_study_id_from_name(sweeper.study_name), HydraConfig.get().job.num)
        pruner = instantiate(sweeper.pruner) if sweeper.get("pruner") else optuna.pruners.NopPruner()
        self._trial = (storage, study, trial_id, pruner)

    def on_validation_end(self, trainer: L.Trainer, pl_module) -> None:
        if self._trial is None or trainer.sanity_checking:
            return
        storage, study, trial_id, pruner = self._trial
        prune = False
        if trainer.is_global_zero:
            value = trainer.callback_metrics.get(self.monitor)
            if value is not None:
                storage.set_trial_intermediate_value(trial_id, trainer.current_epoch, float(value))
                prune = pruner.prune(study, storage.get_trial(trial_id))
        # every rank stops together (rank 0 decides)
        if trainer.strategy.broadcast(prune, src=0):
            import optuna

            value = trainer.callback_metrics.get(self.monitor)
            raise optuna.TrialPruned(f"pruned at epoch {trainer.current_epoch} with {self.monitor}="
                                     f"{float(value):.4f}" if value is not None else "pruned")
