"""Sweeps (`python train.py -m ...`): each job's run dir and failure handling (jobs), the sweep
summary (summary), and an Optuna search kept in a study file of its own (optuna_sweeper)."""
