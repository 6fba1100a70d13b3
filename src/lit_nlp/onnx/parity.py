"""ONNX against torch on a run's test split: the largest logit difference, how often the
predicted label agrees, and the task's test metrics computed by its own LightningModule with
each backend in the model's place (so ONNX is scored exactly as the run was)."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lit_nlp.onnx import OUTPUTS
from lit_nlp.onnx.runtime import OnnxModel
from lit_nlp.run_layout import SAVED_CONFIG

log = logging.getLogger(__name__)


def run_datamodule(run_dir: Path):
    """The run's data module from its saved config, set up (the prepared-data cache, rebuilt if gone)."""
    import lit_nlp  # noqa: F401  (registers the ${lit_nlp.*:} resolvers the saved config uses)

    cfg = OmegaConf.load(run_dir / SAVED_CONFIG)
    cfg.paths.output_dir = str(run_dir)  # Hydra's ${hydra:...} is unknown outside a Hydra run
    datamodule = instantiate(cfg.data, tokenizer=instantiate(cfg.tokenizer), num_workers=0)
    datamodule.prepare_data()
    datamodule.setup("test")
    return datamodule


def _agreement(task: str, torch_out, onnx_out, batch: dict) -> tuple[float, int, int]:
    """(largest absolute difference over real positions, predictions that agree, predictions)."""
    mask = batch["attention_mask"].bool()
    if task == "classification":
        a, b = torch_out.logits, onnx_out.logits
        return float((a - b).abs().max()), int((a.argmax(-1) == b.argmax(-1)).sum()), a.shape[0]
    if task == "token_classification":
        a, b = torch_out.logits, onnx_out.logits
        same = (a.argmax(-1) == b.argmax(-1)) & mask
        return float((a - b).abs()[mask].max()), int(same.sum()), int(mask.sum())
    diffs, agree = [], []
    for name in OUTPUTS[task]:  # extractive QA: the start and end positions
        a, b = getattr(torch_out, name).masked_fill(~mask, 0), getattr(onnx_out, name).masked_fill(~mask, 0)
        diffs.append(float((a - b).abs().max()))
        agree.append(a.argmax(-1) == b.argmax(-1))
    both = agree[0] & agree[1]
    return max(diffs), int(both.sum()), both.shape[0]


@torch.inference_mode()
def compare(task: str, model, sessions: dict[str, OnnxModel], loader) -> dict[str, dict]:
    """Per ONNX backend: max_abs_diff and agreement (the share of predictions equal to torch's:
    rows, tokens or answer spans) over the loader's batches."""
    out = {name: {"max_abs_diff": 0.0, "agree": 0, "total": 0} for name in sessions}
    for batch in loader:
        # the encoder inputs the collate made (the tokenizer's: no token types for DistilBERT)
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
        reference = model(**inputs)
        for name, session in sessions.items():
            diff, agree, total = _agreement(task, reference, session(**inputs), batch)
            row = out[name]
            row["max_abs_diff"] = max(row["max_abs_diff"], diff)
            row["agree"] += agree
            row["total"] += total
    return {name: {"max_abs_diff": row["max_abs_diff"], "agreement": row["agree"] / max(row["total"], 1),
                   "compared": row["total"]} for name, row in out.items()}


def test_metrics(module, datamodule, model) -> dict[str, float]:
    """The module's test metrics with `model` in its model's place."""
    original = module.model
    module.model = model
    try:
        trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, callbacks=[])
        [results] = trainer.test(module, datamodule=datamodule, verbose=False)
    finally:
        module.model = original
    return {k: float(v) for k, v in results.items()}
