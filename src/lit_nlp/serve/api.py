"""The LitAPI each model worker runs: the predictor loaded as predict.py loads it, and a batch of
requests (each one's inputs already checked by the gate) answered by predict_rows, so that the
server's answers are predict.py's."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

import litserve as ls
from starlette.responses import JSONResponse

from lit_nlp.errors import user_error
from lit_nlp.serve.inputs import Inputs
from lit_nlp.serve.metrics import Metrics
from lit_nlp.serve.options import OPTIONS

log = logging.getLogger(__name__)

# a worker told to stop waits for the requests in flight, at most DRAIN_S and at least GRACE_S:
# time for the main process to start the shutdown first, so that LitServe's worker monitor does
# not take the exit for a crash
DRAIN_S, GRACE_S = 60, 0.5


@dataclass(frozen=True)
class Refusal:
    """A request the predictor could not answer: 422 with its one-line reason (a user error),
    500 for anything else (logged with its traceback)."""

    status: int
    message: str


class PredictorAPI(ls.LitAPI):
    """`model_path`, `device` and `backend` as load_predictor takes them; `inputs`: the request
    fields (the gate sends each request as {"inputs": [...], "single": bool}); `workers`: how
    many model processes share this machine's cores."""

    def __init__(self, model_path: str, device: str, backend: str, inputs: Inputs, metrics: Metrics,
                 max_batch_size: int, batch_timeout: float, workers: int = 1,
                 batch_size: int = OPTIONS["batch_size"][0]):
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.model_path, self.model_device, self.backend = model_path, device, backend
        self.batch_size = batch_size  # texts per model call (serve.py's batch_size=)
        self.inputs, self.metrics, self.workers = inputs, metrics, workers
        self.predictor = None

    def setup(self, device) -> None:
        # LitServe's `device` is a worker slot ("cpu"); the model goes where device= says
        import torch
        import transformers

        from lit_nlp.predict import load_predictor

        # the model's threads: OMP_NUM_THREADS where set, else the workers share the cores
        threads = int(os.environ.get("OMP_NUM_THREADS") or max(1, (os.cpu_count() or 1) // self.workers))
        onnx = self.backend != "torch"
        # with ONNX Runtime running the model on threads of its own, torch only pads and takes
        # the softmax, and a second OpenMP thread of torch's would spin beside ORT's
        torch.set_num_threads(1 if onnx else threads)
        transformers.utils.logging.disable_progress_bar()
        self.predictor = load_predictor(self.model_path, device=self.model_device, backend=self.backend,
                                        threads=threads if onnx else None)
        signal.signal(signal.SIGTERM, self._stop_when_idle)
        print(f"serve: worker {os.environ.get('LITSERVE_WORKER_ID', '0')} ready "
              f"({getattr(self.predictor, 'device', self.model_device)}, {threads} threads)",
              file=sys.stderr, flush=True)

    def _stop_when_idle(self, signum, frame) -> None:
        """SIGTERM sent to every process of the server at once (systemd, `timeout`, kill --
        -<group>) must not drop the requests in flight: the worker answers until the gate counts
        none, then exits. When only the main process got SIGTERM, LitServe stops the workers
        after the HTTP processes have drained, so nothing is in flight and this exits at once."""
        def exit_when_idle():
            time.sleep(GRACE_S)
            deadline = time.monotonic() + DRAIN_S
            while self.metrics.value("lit_nlp_requests_in_flight") > 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            os._exit(0)

        threading.Thread(target=exit_when_idle, daemon=True).start()

    def authorize(self) -> None:
        """LitServe's own key check (LIT_SERVER_API_KEY, X-API-Key only) stays off: the gate
        checks api_key= / LIT_NLP_API_KEY on every endpoint."""

    def decode_request(self, request):
        return request

    def predict(self, batch):
        """A list of requests when batching (max_batch_size > 1), else one."""
        requests = batch if self.max_batch_size > 1 else [batch]
        start = time.perf_counter()
        answers = self._answer(requests)
        self.metrics.observe("lit_nlp_batch_duration_seconds", time.perf_counter() - start)
        self.metrics.observe("lit_nlp_batch_size", len(requests))
        self.metrics.observe("lit_nlp_batch_inputs", sum(len(r["inputs"]) for r in requests))
        return answers if self.max_batch_size > 1 else answers[0]

    def encode_response(self, output):
        if isinstance(output, Refusal):
            return JSONResponse({"error": output.message}, status_code=output.status)
        return output

    def _answer(self, requests: list[dict]) -> list:
        try:
            return self._predict(requests)
        except Exception as err:
            if len(requests) == 1:
                return [self._refusal(err)]
        # an input the predictor refuses (a QA question that leaves no room for its context)
        # must not fail the requests batched with it: each again on its own
        return [self._answer([request])[0] for request in requests]

    def _predict(self, requests: list[dict]) -> list:
        """Every input of every request through predict_rows, one call per set of fields (a
        seq2seq `text` beside template columns, token lists beside texts), in request order."""
        rows = [(r, self.inputs.to_row(item)) for r, request in enumerate(requests) for item in request["inputs"]]
        groups: dict[frozenset, list[int]] = {}
        for k, (_, row) in enumerate(rows):
            groups.setdefault(frozenset(row), []).append(k)
        predicted: list = [None] * len(rows)
        for members in groups.values():
            out = self.predictor.predict_rows([rows[k][1] for k in members], self.batch_size)
            for k, row in zip(members, out):
                predicted[k] = self.inputs.from_row(row)
        answers: list[list] = [[] for _ in requests]
        for k, (r, _) in enumerate(rows):
            answers[r].append(predicted[k])
        return [answer[0] if request["single"] else answer for answer, request in zip(answers, requests)]

    def _refusal(self, err: Exception) -> Refusal:
        own = user_error(err)
        if own is not None:
            return Refusal(422, str(own).splitlines()[0])
        log.error("predicting failed", exc_info=err)
        return Refusal(500, f"internal error while predicting ({type(err).__name__}); the server log has the details")
