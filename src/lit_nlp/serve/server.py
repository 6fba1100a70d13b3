"""serve.py's main: the model loaded once here to check it (one-line errors before any process
starts) and to describe it, then a LitServer whose workers each load it again and batch
requests, behind the gate; SIGTERM stops it gracefully."""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
import threading

from lit_nlp.errors import LitNlpError
from lit_nlp.serve.options import parse_args, require_serve_packages

ENDPOINTS = "POST /predict, GET /health, GET /info, GET /metrics, GET /docs"
QUEUE_TIMEOUT_S = 30  # LitServer's timeout: a request that waited this long for a worker gets 504


def build_server(api, *, inputs, info: dict, metrics, api_key: str | None, max_chars: int, max_items: int,
                 workers: int = 1):
    """A LitServer for `api` (a LitAPI) with the gate in front of every route, /metrics, JSON
    errors and the request body described on the OpenAPI page. The benchmark's baseline goes
    through this too, with its own LitAPI."""
    import litserve as ls
    from fastapi.responses import PlainTextResponse
    from starlette.exceptions import HTTPException

    from lit_nlp.serve.gate import Gate

    gate = {"inputs": inputs, "max_chars": max_chars, "max_items": max_items, "api_key": api_key,
            "metrics": metrics, "version": info["model_version"]["id"]}
    # accelerator="cpu": LitServe's devices are only worker slots here; each worker puts the
    # model where device= says
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=workers, timeout=QUEUE_TIMEOUT_S,
                          model_metadata=info, middlewares=[(Gate, gate)])
    app = server.app

    async def prometheus_metrics():
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    app.add_api_route("/metrics", prometheus_metrics, methods=["GET"], summary="Prometheus metrics",
                      response_class=PlainTextResponse)
    app.add_exception_handler(HTTPException, _json_error)
    app.openapi = _openapi(app, inputs, secured=bool(api_key))
    return server


async def _json_error(request, exc):
    """FastAPI's and LitServe's HTTP errors as {"error": one line}."""
    from fastapi.responses import JSONResponse

    messages = {
        404: f"no endpoint {request.method} {request.url.path}; the endpoints are {ENDPOINTS}",
        405: f"{request.method} is not allowed on {request.url.path}; the endpoints are {ENDPOINTS}",
        500: "internal error; the server log has the details",
        504: f"the request waited over {QUEUE_TIMEOUT_S} s for a model worker; retry, or start more workers=",
    }
    message = messages.get(exc.status_code, str(exc.detail).splitlines()[0] if exc.detail else "error")
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=getattr(exc, "headers", None))


def _openapi(app, inputs, secured: bool):
    """The OpenAPI document with POST /predict's body (one input or a list) and, with an API
    key, the bearer scheme, so that /docs can send real requests."""
    from fastapi.openapi.utils import get_openapi

    import lit_nlp
    from lit_nlp.serve.gate import OPEN_PATHS

    def schema() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title="lit_nlp serve", version=lit_nlp.__version__, routes=app.routes,
                          description=f"A {inputs.task} model; send {inputs.describe()}, or a list of them.")
        field = {"type": "object", "additionalProperties": False, "required": list(inputs.shapes[0]),
                 "properties": {f: {"type": "array", "items": {"type": "string"}} if f in inputs.word_lists
                                else {"type": "string"} for f in inputs.fields}}
        post = doc["paths"]["/predict"]["post"]
        post.update(summary="Predict", requestBody={"required": True, "content": {"application/json": {
            "schema": {"oneOf": [field, {"type": "array", "items": field}]}, "example": inputs.example()}}})
        if secured:
            doc.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            for path, operations in doc["paths"].items():
                for operation in operations.values():
                    if path not in OPEN_PATHS:
                        operation["security"] = [{"bearer": []}]
        app.openapi_schema = doc
        return doc

    return schema


def check_port(host: str, port: int) -> None:
    """A port already taken is one line here, not uvicorn's exit after the model loaded."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds it
        try:
            sock.bind((host, port))
        except OSError as err:
            raise LitNlpError(f"cannot listen on {host}:{port} ({err.strerror}); pass port=<a free port>") from None


def stop_on_sigterm(server) -> None:
    """SIGTERM (docker stop, kill <pid>) starts LitServe's graceful shutdown, as its /shutdown
    endpoint would: each HTTP process stops accepting and finishes the requests in flight
    (uvicorn waits up to 30 s), then the model workers stop. The processes forked from this one
    keep the handler and ignore SIGTERM (LitServe's manager process, which every request passes
    through, is shut down last; the HTTP processes install uvicorn's own handler), so a SIGTERM
    sent to the whole process group drains as well (the workers: PredictorAPI._stop_when_idle)."""
    main_pid = os.getpid()

    def handler(signum, frame):
        if os.getpid() != main_pid:
            return
        print("serve: SIGTERM: answering the requests in flight, then stopping", file=sys.stderr, flush=True)
        event = getattr(server, "_shutdown_event", None)
        if event is None:  # LitServe has started nothing yet
            raise KeyboardInterrupt
        # set from another thread: this one is waiting on the same event through its own
        # connection to LitServe's manager process, which must not be used twice at once
        threading.Thread(target=event.set, daemon=True).start()

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str]) -> None:
    """python serve.py model_path=... [key=value ...] (lit_nlp.serve.options)."""
    opts = parse_args(argv)
    require_serve_packages()
    check_port(opts["host"], opts["port"])
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    from lit_nlp.predict import load_predictor
    from lit_nlp.predictors.common import resolve_device
    from lit_nlp.serve.api import PredictorAPI
    from lit_nlp.serve.inputs import task_inputs
    from lit_nlp.serve.metrics import Metrics
    from lit_nlp.serve.model import describe, model_version

    transformers.utils.logging.disable_progress_bar()
    if opts["device"] != "auto":
        resolve_device(opts["device"])  # cuda without a GPU: one line now, not a worker's traceback
    # on the CPU: this copy only checks and describes the model; the workers load their own
    predictor = load_predictor(opts["model_path"], device="cpu", backend=opts["backend"])
    inputs = task_inputs(predictor.settings)
    version = model_version(opts["model_path"], opts["backend"])
    info = describe(predictor, opts["backend"], version, inputs)
    info["serving"] = {key: opts[key] for key in ("max_batch_size", "batch_size", "batch_timeout", "workers",
                                                   "device", "max_chars", "max_items")}
    info["serving"]["api_key"] = opts["api_key"] is not None
    del predictor
    gc.collect()
    metrics = Metrics(opts["backend"], {"task": info["task"], "model_version": version["id"],
                                        "lit_nlp_version": version["lit_nlp"]})
    api = PredictorAPI(opts["model_path"], opts["device"], opts["backend"], inputs, metrics,
                       opts["max_batch_size"], opts["batch_timeout"], opts["workers"], opts["batch_size"])
    server = build_server(api, inputs=inputs, info=info, metrics=metrics, api_key=opts["api_key"],
                          max_chars=opts["max_chars"], max_items=opts["max_items"], workers=opts["workers"])
    host = f"[{opts['host']}]" if ":" in opts["host"] else opts["host"]
    print(f"serve: {info['task']} model {version['id']} (backend {opts['backend']}, {opts['workers']} worker(s), "
          f"batches of up to {opts['max_batch_size']} requests within {opts['batch_timeout'] * 1000:g} ms"
          f"{', API key required' if opts['api_key'] else ''}) at http://{host}:{opts['port']}: {ENDPOINTS}",
          file=sys.stderr, flush=True)
    stop_on_sigterm(server)
    run(server, opts)
    print("serve: stopped", file=sys.stderr, flush=True)


def ignore_monitor_after_shutdown(record: logging.LogRecord) -> bool:
    """LitServe's worker-monitor thread sleeps 2 s between checks; when it wakes while the
    shutdown is stopping the manager process (or after), its next question to that process
    fails with a broken connection and it logs "Monitoring worker crashed" with a traceback.
    Only that record is dropped: a connection error means the manager is gone, which happens
    at the end of a shutdown; any other error of the monitor is still logged."""
    error = record.exc_info[1] if record.exc_info else None
    return not (record.getMessage().startswith("Monitoring worker crashed")
                and isinstance(error, (ConnectionError, EOFError)))


def run(server, opts: dict) -> None:
    """LitServer.run on the given host (its default is 0.0.0.0) without writing a client.py,
    and a worker that fails to load as one line (its traceback is above it)."""
    # LitServe logs through litserve.server; a filter on a parent logger would not see its records
    logging.getLogger("litserve.server").addFilter(ignore_monitor_after_shutdown)
    try:
        server.run(host=opts["host"], port=opts["port"], log_level=opts["log_level"], generate_client_file=False)
    except KeyboardInterrupt:
        pass
    except RuntimeError as err:
        if "workers failed to start" not in str(err):
            raise
        for worker in getattr(server, "inference_workers", []):
            worker.terminate()
        raise LitNlpError("the model worker failed to start (its error is above); check device= and backend=") from None
