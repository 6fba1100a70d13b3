"""lit_nlp's Optuna sweeper for Hydra (hparams_search=optuna); see optuna_sweeper.py."""
