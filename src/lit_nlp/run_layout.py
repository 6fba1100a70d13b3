"""The names of what a run dir holds, stated once: train(), resume, the sweeps, the plots, the
trackers, the export and predict.py all find a run's files through these.

    <run dir>/config.yaml           the composed config (what resume= reads)
    <run dir>/metrics.json          test metrics, best validation value, data counts, throughput
    <run dir>/checkpoints/last.ckpt the last epoch (or step); best-*.ckpt by the monitored metric
    <run dir>/export/lit_nlp.json   beside a plain Hugging Face folder: what predict needs
    <run dir>/export/onnx/          python -m lit_nlp.onnx: model.onnx, model.int8.onnx, parity.json
    <run dir>/export/adapter/       model.finetune=lora: the adapter in peft's format
    <run dir>/tensorboard/          the TensorBoard log
"""

from __future__ import annotations

from pathlib import Path

SAVED_CONFIG = "config.yaml"
METRICS_FILE = "metrics.json"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
BEST_CHECKPOINTS = "best-*.ckpt"  # the file name pattern of conf/callbacks' model_checkpoint.filename
EXPORT_DIR = "export"
SETTINGS_FILE = "lit_nlp.json"  # in the export folder
ONNX_DIR = "onnx"  # in the export folder: model.onnx, model.int8.onnx, parity.json (python -m lit_nlp.onnx)
ONNX_PARITY = "parity.json"  # in ONNX_DIR
ADAPTER_DIR = "adapter"  # in the export folder, after a model.finetune=lora run
TENSORBOARD_DIR = "tensorboard"
CSV_DIR = "csv"
LEARNING_CURVES = "learning_curves.png"
CONFUSION_JSON = "confusion_matrix.json"
CONFUSION_PNG = "confusion_matrix.png"


def last_checkpoint(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / LAST_CHECKPOINT


def export_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / EXPORT_DIR
