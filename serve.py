"""Serve a trained model over HTTP: python serve.py model_path=<run dir | .ckpt | export dir>
[port=8000] [backend=torch|onnx|onnx-int8] [api_key=...]; see docs/serve.md."""

import sys

from lit_nlp.errors import exit_on_user_error
from lit_nlp.serve.server import main

if __name__ == "__main__":
    exit_on_user_error(main)(sys.argv[1:])
