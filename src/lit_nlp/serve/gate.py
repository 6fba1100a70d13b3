"""The ASGI middleware every request passes in the HTTP processes, before LitServe's routes: the
API key, the checks of a POST /predict body (bad requests never reach a model worker), the
version headers on every answer, errors as one-line JSON, and the request metrics."""

from __future__ import annotations

import hmac
import json
import logging
import time

import lit_nlp
from lit_nlp.serve.inputs import Inputs, RequestError, read_request
from lit_nlp.serve.metrics import Metrics, code_of, endpoint_of

log = logging.getLogger(__name__)

OPEN_PATHS = ("/health", "/docs", "/openapi.json")  # probes and the API's description need no key
PREDICT_PATH = "/predict"
# the error kind of an answer that came back from FastAPI or a model worker, by status
KIND_OF_STATUS = {404: "not_found", 405: "method_not_allowed", 422: "unprocessable", 499: "client_closed",
                  504: "timeout"}


class ClientGone(Exception):
    """The client disconnected before its body was read."""


class Gate:
    """`inputs`, `max_chars`, `max_items`: what a POST /predict body may hold; `api_key`: None
    for an open server; `version`: the X-Model-Version header of every answer."""

    def __init__(self, app, *, inputs: Inputs, max_chars: int, max_items: int, api_key: str | None,
                 metrics: Metrics, version: str):
        self.app, self.inputs, self.metrics = app, inputs, metrics
        self.max_chars, self.max_items = max_chars, max_items
        self.key = api_key.encode() if api_key else None
        self.headers = [(b"x-model-version", version.encode()), (b"x-lit-nlp-version", lit_nlp.__version__.encode())]
        # JSON may spell one character in 6 bytes (\u00e9), and each item has its field names
        self.max_body = max_items * (6 * max_chars + 1024) + 1024

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        path = scope["path"]
        predict = path == PREDICT_PATH and scope["method"] == "POST"
        # 499 (client closed) stays only if the client left before any answer started
        state = {"status": 499, "started": False, "kind": None}

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                state["status"], state["started"] = message["status"], True
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        if predict:
            self.metrics.inc("lit_nlp_requests_in_flight")
        try:
            if self.key and path not in OPEN_PATHS and not self._authorized(scope["headers"]):
                raise RequestError("unauthorized", "missing or wrong API key; send the header "
                                                   "Authorization: Bearer <key> (or X-API-Key: <key>)", 401)
            if predict:
                items, single = read_request(await _read_body(scope, receive, self.max_body), self.inputs,
                                             self.max_chars, self.max_items)
                body = json.dumps({"inputs": items, "single": single}).encode()
                scope = {**scope, "headers": _json_headers(scope["headers"], len(body))}
                receive = _replay(body, receive)
            await self.app(scope, receive, send_with_headers)
        except ClientGone:
            pass  # nobody to answer: counted as 499, client_closed
        except RequestError as err:
            state["kind"] = err.kind
            extra = [(b"www-authenticate", b"Bearer")] if err.status == 401 else []
            await _send_json(send_with_headers, err.status, {"error": err.message}, extra)
        except Exception:
            log.exception("error answering %s %s", scope["method"], path)
            if not state["started"]:
                state["kind"] = "internal"
                await _send_json(send_with_headers, 500, {"error": "internal error; the server log has the details"})
        finally:
            status = state["status"]
            self.metrics.inc("lit_nlp_requests_total", endpoint_of(path), code_of(status))
            if status >= 400:
                kind = state["kind"] or KIND_OF_STATUS.get(status, "internal" if status >= 500 else "other")
                self.metrics.inc("lit_nlp_errors_total", kind)
            if predict:
                self.metrics.inc("lit_nlp_requests_in_flight", by=-1)
                self.metrics.observe("lit_nlp_request_duration_seconds", time.perf_counter() - start)

    def _authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        """Authorization: Bearer <key> or X-API-Key: <key>, compared in constant time."""
        given = []
        for name, value in headers:
            if name == b"x-api-key":
                given.append(value.strip())
            elif name == b"authorization" and value[:7].lower() == b"bearer ":
                given.append(value[7:].strip())
        return any(hmac.compare_digest(candidate, self.key) for candidate in given)


async def _read_body(scope, receive, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to be over `limit` bytes."""
    def too_large():
        return RequestError("body_too_large", f"the body is over {limit:,} bytes (max_items x max_chars); send "
                                              "fewer or shorter texts per request", 413)

    declared = dict(scope["headers"]).get(b"content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large()
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large()
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, receive):
    """A receive() that gives the checked body once, then listens to the client again (for
    its disconnect, as Starlette may ask)."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _json_headers(headers: list[tuple[bytes, bytes]], length: int) -> list[tuple[bytes, bytes]]:
    """The request's headers for the rewritten JSON body (curl -d sends a form content type,
    which LitServe would parse as a form)."""
    kept = [(k, v) for k, v in headers if k not in (b"content-type", b"content-length")]
    return [*kept, (b"content-type", b"application/json"), (b"content-length", str(length).encode())]


async def _send_json(send, status: int, content: dict, headers: list | None = None) -> None:
    body = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
