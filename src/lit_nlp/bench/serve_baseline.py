"""The serving benchmark's baseline: a classification export in transformers.pipeline, one call
per request, no batching, behind the same HTTP server as serve.py (LitServe, the gate, the same
request checks). `python -m lit_nlp.bench.serve_baseline model_path=<run dir | export> port=...
[device=cpu]`; answers {"text", "label", "score"}."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import litserve as ls

from lit_nlp.errors import LitNlpError, exit_on_user_error
from lit_nlp.run_layout import SETTINGS_FILE, export_dir


class PipelineAPI(ls.LitAPI):
    """transformers.pipeline("text-classification") over the export, as a user would load it."""

    def __init__(self, export: str, device: str):
        super().__init__(max_batch_size=1)
        self.export, self.model_device = export, device

    def setup(self, device) -> None:
        import transformers

        transformers.utils.logging.disable_progress_bar()
        self.pipe = transformers.pipeline("text-classification", model=self.export,
                                          device=-1 if self.model_device == "cpu" else 0)

    def authorize(self) -> None:
        """No key: LitServe's own LIT_SERVER_API_KEY check stays off, as in serve.py."""

    def decode_request(self, request):
        return request

    def predict(self, request):
        answers = [{"text": item["text"], **self.pipe(item["text"], truncation=True)[0]} for item in request["inputs"]]
        return answers[0] if request["single"] else answers


@exit_on_user_error
def main(argv: list[str]) -> None:
    from lit_nlp.serve.inputs import task_inputs
    from lit_nlp.serve.metrics import Metrics
    from lit_nlp.serve.model import model_version
    from lit_nlp.serve.server import build_server, check_port, run, stop_on_sigterm

    opts = {"device": "cpu", "port": "8000", "host": "127.0.0.1", "log_level": "warning"}
    for arg in argv:
        key, _, value = arg.partition("=")
        if key not in ("model_path", *opts):
            raise LitNlpError(f"unknown argument {key!r}; use model_path= port= device= host= log_level=")
        opts[key] = value
    if "model_path" not in opts:
        raise LitNlpError("model_path=<run dir | export> is required")
    path = Path(opts["model_path"])
    export = path if (path / SETTINGS_FILE).is_file() else export_dir(path)
    settings = json.loads((export / SETTINGS_FILE).read_text())
    if settings["task"] != "classification" or settings.get("multi_label"):
        raise LitNlpError("the pipeline baseline serves single-label classification exports")
    opts["port"] = int(opts["port"])
    check_port(opts["host"], opts["port"])
    inputs = task_inputs(settings)
    version = model_version(export, "torch")
    info = {"task": "classification", "backend": "pipeline", "model_version": version}
    metrics = Metrics("pipeline", {"task": "classification", "model_version": version["id"],
                                   "lit_nlp_version": version["lit_nlp"]})
    server = build_server(PipelineAPI(str(export), opts["device"]), inputs=inputs, info=info, metrics=metrics,
                          api_key=None, max_chars=10_000, max_items=64)
    print(f"serve_baseline: {export} in transformers.pipeline at http://{opts['host']}:{opts['port']}",
          file=sys.stderr, flush=True)
    stop_on_sigterm(server)
    run(server, opts)


if __name__ == "__main__":
    main(sys.argv[1:])
