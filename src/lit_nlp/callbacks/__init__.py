"""Side concerns of a run, each a Lightning callback built from conf/callbacks/."""

from lit_nlp.callbacks.batch_size import TrainBatchSizeFinder
from lit_nlp.callbacks.checkpoint import RunCheckpoint
from lit_nlp.callbacks.confusion_matrix import ConfusionMatrixLogger
from lit_nlp.callbacks.export import HFExport
from lit_nlp.callbacks.matmul_precision import MatmulPrecision
from lit_nlp.callbacks.max_steps import ValidateAtMaxSteps
from lit_nlp.callbacks.nan_guard import NaNGuard
from lit_nlp.callbacks.optuna_pruning import OptunaPruning
from lit_nlp.callbacks.progress import ProgressBar
from lit_nlp.callbacks.qa_predictions import QAPredictions
from lit_nlp.callbacks.samples import GenerationSamples
from lit_nlp.callbacks.seeding import StepSeed
from lit_nlp.callbacks.throughput import Throughput

__all__ = ["ConfusionMatrixLogger", "GenerationSamples", "HFExport", "MatmulPrecision", "NaNGuard",
           "OptunaPruning", "ProgressBar", "QAPredictions", "RunCheckpoint", "StepSeed", "Throughput", "TrainBatchSizeFinder",
           "ValidateAtMaxSteps"]
