"""A Hugging Face encoder model to ONNX (torch.onnx.export with dynamo, batch and length
dynamic) and its dynamic int8 quantization (onnxruntime.quantization.quantize_dynamic: int8
weights, activations quantized on the fly; nothing to calibrate)."""

from __future__ import annotations

import inspect
import logging
import warnings
from pathlib import Path

import torch

from lit_nlp.onnx import OUTPUTS, check_task, require_onnx

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"  # weights beside it in model.onnx.data
INT8_FILE = "model.int8.onnx"
ENCODER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class _Outputs(torch.nn.Module):
    """The model with named inputs and a tuple of the task's outputs (ONNX needs tensors out)."""

    def __init__(self, model, outputs: tuple[str, ...]):
        super().__init__()
        self.model, self.outputs = model, outputs

    def forward(self, input_ids, attention_mask):
        return self._outputs(input_ids=input_ids, attention_mask=attention_mask)

    def _outputs(self, **inputs):
        out = self.model(**inputs)
        return tuple(getattr(out, name) for name in self.outputs)


class _OutputsWithTokenTypes(_Outputs):
    def forward(self, input_ids, attention_mask, token_type_ids):
        return self._outputs(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)


def input_names(model) -> list[str]:
    """The encoder inputs the model's forward takes (DistilBERT and RoBERTa-style: no token types)."""
    taken = inspect.signature(model.forward).parameters
    return [name for name in ENCODER_INPUTS if name in taken]


def export_onnx(model, task: str, folder: str | Path, max_length: int = 512) -> Path:
    """`folder`/model.onnx of `model` (eval mode, CPU, fp32), batch and length dynamic."""
    require_onnx()
    check_task(task)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = model.float().cpu().eval()
    names = input_names(model)
    example = {name: torch.ones(2, 8, dtype=torch.long) for name in names}
    example["token_type_ids"] = torch.zeros(2, 8, dtype=torch.long) if "token_type_ids" in names else None
    example = {k: v for k, v in example.items() if v is not None}
    batch, length = torch.export.Dim("batch", min=1, max=4096), torch.export.Dim("length", min=2, max=max_length)
    path = folder / MODEL_FILE
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's notes on axis names and pytree internals
        wrapper = (_OutputsWithTokenTypes if "token_type_ids" in names else _Outputs)(model, OUTPUTS[task])
        torch.onnx.export(wrapper, (), kwargs=example, f=str(path), dynamo=True,
                          input_names=names, output_names=list(OUTPUTS[task]),
                          dynamic_shapes={name: {0: batch, 1: length} for name in names}, verbose=False)
    log.info("exported %s", path)
    return path


def quantize(path: str | Path) -> Path:
    """model.int8.onnx beside `path`: dynamic int8 quantization of its weights."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = Path(path)
    out = path.with_name(INT8_FILE)
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)  # its advice to pre-process first is for vision models
    try:
        quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8)
    finally:
        logger.setLevel(level)
    log.info("quantized %s", out)
    return out
