"""Train a model: python train.py [group=option ...] [key=value ...]; see README.md."""

import sys

import hydra
from omegaconf import DictConfig

from lit_nlp.config_errors import one_line_config_errors
from lit_nlp.console import quiet_console
from lit_nlp.distributed import shared_run_dir_argv, sweep_job_argv
from lit_nlp.errors import exit_on_user_error
from lit_nlp.run_dir import resume_argv
from lit_nlp.sweeps.jobs import sweep_job
from lit_nlp.trainer_args import trainer_argv


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@exit_on_user_error
@sweep_job  # in a sweep (-m) a failed job is recorded and the others go on
def main(cfg: DictConfig) -> float:
    # torch and Lightning load here, after Hydra composed the config: a misspelt option is
    # reported in about a second, not after the imports
    from lit_nlp.train import train

    quiet_console()  # library details to train.log, not the terminal
    return train(cfg)


@exit_on_user_error
def cli() -> None:
    sys.argv = sweep_job_argv(sys.argv)  # a DDP process of a sweep job runs that job, not the sweep
    sys.argv = resume_argv(sys.argv)  # resume=<run dir> composes that run's saved config
    sys.argv = shared_run_dir_argv(sys.argv)  # every rank of a multi-process run in one run dir
    sys.argv = trainer_argv(sys.argv)  # trainer.<any Trainer argument>=... without Hydra's "+"
    with one_line_config_errors():  # a misspelt option or key: one line, not Hydra's page
        main()


if __name__ == "__main__":
    cli()
