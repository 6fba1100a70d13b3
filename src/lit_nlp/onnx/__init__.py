"""ONNX Runtime for the encoder tasks (classification, token classification, extractive QA):
export an export folder's model to ONNX with dynamic batch and length, quantize it to int8
(dynamic quantization of the weights), run it where a Hugging Face model ran, and check both
against torch on the run's test split. `python -m lit_nlp.onnx <run dir | export>`; see
docs/onnx.md. Text-to-text models stay on torch (generation calls the decoder step by step)."""

from __future__ import annotations

from lit_nlp.errors import LitNlpError

# the tasks whose models run in ONNX Runtime, with the outputs their modules and predictors read
OUTPUTS = {"classification": ("logits",), "token_classification": ("logits",),
           "extractive_qa": ("start_logits", "end_logits")}
BACKENDS = ("torch", "onnx", "onnx-int8")


def require_onnx() -> None:
    """A one-line error naming the extra when the ONNX packages are missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise LitNlpError(f"ONNX needs {err.name}: pip install -e \".[serve]\"") from None


def check_task(task: str) -> None:
    if task not in OUTPUTS:
        raise LitNlpError(f"ONNX backends serve {', '.join(OUTPUTS)} models; a {task} model runs on torch "
                          "(backend=torch)")
