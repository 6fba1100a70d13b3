"""A Hugging Face encoder model to ONNX (torch.onnx.export with dynamo, batch and length
dynamic), its operators fused by ONNX Runtime's transformer optimizer, and its dynamic int8
quantization (onnxruntime.quantization.quantize_dynamic: int8 weights, activations quantized on
the fly; nothing to calibrate)."""

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


# encoders ONNX Runtime's transformer optimizer knows as "bert" (its fusions match their graphs)
FUSABLE = {"bert", "distilbert", "roberta", "xlm-roberta", "electra", "albert", "camembert"}


def fuse(path: str | Path, config) -> dict[str, int]:
    """Rewrite `path` with the fused operators of ONNX Runtime's transformer optimizer where its
    patterns match the exported graph (on the dynamo export of a BERT: a BiasGelu per layer and
    a SkipLayerNormalization per residual; its attention pattern does not match). MiniLM int8
    on the 2-core CPU, SST-2 dev sentences in batches of 16: 225 sentences/s unfused, 302 fused,
    and a quarter less CPU time. Returns the fused operators' counts; {} where the architecture
    is not one it knows, or where it fails (the file is then left as exported)."""
    if getattr(config, "model_type", None) not in FUSABLE:
        return {}
    from onnxruntime.transformers.optimizer import optimize_model

    path = Path(path)
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", 0)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "dim", 0)
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)  # its notes on each pattern it tried
    try:
        optimized = optimize_model(str(path), model_type="bert", num_heads=heads, hidden_size=hidden)
        fused = {op: n for op, n in optimized.get_fused_operator_statistics().items() if n}
        # saved as exported: the weights in model.onnx.data beside it
        optimized.save_model_to_file(str(path), use_external_data_format=True, all_tensors_to_one_file=True)
        data = path.with_name(path.name + ".data")
        data.chmod(path.stat().st_mode & 0o777)  # written 0600; readable as the rest of the export
    except Exception as err:  # noqa: BLE001  (an optimization, not a result: the unfused file stays)
        log.warning("onnx: operators not fused (%s: %s); %s stays as exported", type(err).__name__, err, path.name)
        return {}
    finally:
        logger.setLevel(level)
    log.info("fused %s", ", ".join(f"{n} {op}" for op, n in sorted(fused.items())) or "no operators")
    return fused


def quantize(path: str | Path) -> Path:
    """model.int8.onnx beside `path`: dynamic int8 quantization of its weights, per channel."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = Path(path)
    out = path.with_name(INT8_FILE)
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)  # its advice to pre-process first is for vision models
    try:
        # a scale per output column, not one per matrix: MiniLM fine-tuned on SST-2, dev set
        # (872 sentences): one per matrix agreed with torch on 95.9% of the labels (accuracy
        # 0.8601, torch 0.8647), one per column on 99.0% (0.8681), at the same speed. A fused
        # operator's output has no type that ONNX's shape inference can tell: float
        quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        logger.setLevel(level)
    log.info("quantized %s", out)
    return out
