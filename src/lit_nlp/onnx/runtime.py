"""An ONNX Runtime session standing where a Hugging Face model stood: the predictors and the
LightningModules call it with the same keyword inputs and read the same output attributes
(`logits`, or `start_logits`/`end_logits`), as torch tensors on the CPU."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from lit_nlp.errors import LitNlpError
from lit_nlp.onnx import require_onnx


def providers_for(device: str | torch.device) -> list[str]:
    """ONNX Runtime's execution providers for a device: CUDA where asked for and present."""
    import onnxruntime

    kind = torch.device(device).type if not isinstance(device, torch.device) else device.type
    if kind == "cuda":
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise LitNlpError("device=cuda with an ONNX backend needs onnxruntime-gpu; use device=cpu or backend=torch")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxModel(torch.nn.Module):
    """`config`: the Hugging Face config (labels) of the model the file was exported from."""

    def __init__(self, path: str | Path, config, device: str | torch.device = "cpu", threads: int | None = None):
        super().__init__()
        require_onnx()
        import onnxruntime

        path = Path(path)
        if not path.is_file():
            raise LitNlpError(f"{path} not found; write it with: python -m lit_nlp.onnx <run dir or export>")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # threads that wait sleep instead of spinning: a server's HTTP processes and its clients
        # share the cores. MiniLM int8 on 2 cores, batches of 16 SST-2 sentences: 247 sentences/s
        # and 7.6 ms of CPU each while spinning, 289/s and 5.9 ms without, alone on the machine
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(path), options, providers=providers_for(device))
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.config = config
        self.path = path

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        feed = {name: np.ascontiguousarray(given[name].detach().cpu().numpy().astype(np.int64))
                for name in self.input_names}
        outputs = self.session.run(self.output_names, feed)
        return SimpleNamespace(**{name: torch.from_numpy(value) for name, value in zip(self.output_names, outputs)})
