"""serve.py over real HTTP: the server started as a subprocess on a free port in front of the
session's tiny classifier (with an API key, backend torch) and a tiny token tagger (backend
onnx, the file `python -m lit_nlp.onnx` writes), talked to with httpx.
Answers equal predict.py's (load_predictor(...).predict_rows) for single inputs, lists and 32
concurrent requests, which /metrics shows were batched; every bad request gets a 4xx with one
line of JSON and the server answers the next good one; the key is required and never logged;
SIGTERM, to the main process or to every process of the server, lets the request in flight
finish. The options, the request fields of each task, a refused input inside a batch and the
benchmark's options are tested in-process."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import FILLER, ROOT, compose_cfg
from lit_nlp.errors import LitNlpError
from lit_nlp.predict import load_predictor

KEY = "s3cret-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
TEXTS = ["the film was superb and moving", "a tedious plot with clumsy actors", "the ending is dreadful"]
NAMES = ["john", "mary", "alice", "bob", "carol", "dave"]


class Server:
    """serve.py as a subprocess in its own session (so that teardown can end all it started),
    its output in a log file."""

    def __init__(self, model_path: Path, log: Path, *args: str, env: dict | None = None):
        with socket.socket() as sock:  # a free port, released for the server to take
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url, self.log = f"http://127.0.0.1:{self.port}", log
        with open(log, "w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "serve.py", f"model_path={model_path}", f"port={self.port}", *args], cwd=ROOT,
                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True)

    def wait_ready(self, timeout: float = 180) -> "Server":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"serve.py exited {self.process.returncode}:\n{self.log.read_text()}"
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"serve.py not ready after {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def tagged_lines(n: int, seed: int) -> list[str]:
    """CoNLL lines (token, BIO tag) of `n` sentences of filler words with one or two names."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        words = rng.choices(FILLER, k=rng.randint(3, 8))
        tags = ["O"] * len(words)
        for _ in range(rng.randint(1, 2)):
            at = rng.randrange(len(words) + 1)
            words.insert(at, rng.choice(NAMES))
            tags.insert(at, "B-PER")
        lines += [f"{w}\t{t}" for w, t in zip(words, tags)] + [""]
    return lines


@pytest.fixture(scope="module")
def tagger_run(tmp_path_factory) -> Path:
    """A tiny random-init BERT tagger, 1 epoch on 200 sentences (a few seconds), and its ONNX
    files with their parity: what it predicts does not matter here, only that the server
    predicts the same."""
    from lit_nlp.onnx.__main__ import main as onnx_main
    from lit_nlp.train import train

    tmp = tmp_path_factory.mktemp("serve_tagger")
    data = tmp / "train.conll"
    data.write_text("\n".join(tagged_lines(200, seed=0)) + "\n")
    run = tmp / "run"
    train(compose_cfg(["model=bert_tiny_ner", "data=conll", f"data.train_file={data}", "data.max_length=24",
                       "data.stride=6", "data.batch_size=32", "tokenizer.vocab_size=200", "trainer.max_epochs=1"], run))
    onnx_main([str(run)])  # python -m lit_nlp.onnx <run>
    return run


@pytest.fixture(scope="module")
def servers(trained_classifier, tmp_path_factory, request):
    """Both servers, started together (their start-up is mostly imports): the classifier with
    the key from LIT_NLP_API_KEY, small limits and a batch window of 0.3 s, so that concurrent
    requests batch even on a busy machine; the tagger on ONNX Runtime, with batches of up to 2
    requests. The
    tagger trains while the classifier's server starts."""
    logs = tmp_path_factory.mktemp("serve_logs")
    classifier = Server(trained_classifier[0], logs / "classifier.log", "max_batch_size=8", "batch_timeout=0.3",
                        "max_chars=300", "max_items=5", "device=cpu", env={"LIT_NLP_API_KEY": KEY})
    tagger = None
    try:
        tagger = Server(request.getfixturevalue("tagger_run"), logs / "tagger.log", "max_batch_size=2",
                        "batch_timeout=0.05", "backend=onnx")
        yield classifier.wait_ready(), tagger.wait_ready()
    finally:
        for server in (classifier, tagger):
            if server is not None:
                server.stop()


@pytest.fixture(scope="module")
def classifier(servers) -> Server:
    return servers[0]


@pytest.fixture(scope="module")
def tagger(servers) -> Server:
    return servers[1]


def assert_same(served, local, path="answer"):
    """Equal structure and values; probabilities and scores within 1e-5 (the server pads
    each batch to its own longest text)."""
    if isinstance(local, dict):
        assert isinstance(served, dict) and set(served) == set(local), f"{path}: {served} != {local}"
        for key in local:
            assert_same(served[key], local[key], f"{path}.{key}")
    elif isinstance(local, (list, tuple)):
        assert isinstance(served, list) and len(served) == len(local), f"{path}: {served} != {local}"
        for i, (a, b) in enumerate(zip(served, local)):
            assert_same(a, b, f"{path}[{i}]")
    elif isinstance(local, float):
        assert served == pytest.approx(local, abs=1e-5), path
    else:
        assert served == local, f"{path}: {served!r} != {local!r}"


def metric(text: str, name: str) -> float:
    """A series' value in the /metrics text (the first series of that name and labels)."""
    match = re.search(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def bucket(text: str, name: str, le: str) -> float:
    match = re.search(rf'^{name}_bucket\{{[^}}]*le="{re.escape(le)}"\}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1))


def sigterm_with_a_request_in_flight(server: Server, body, headers: dict, whole_group: bool) -> httpx.Response:
    """A request in flight for sure: its first bytes sent, and counted by the gate; then SIGTERM
    to the server's main process or to its whole process group; once the server says it is
    stopping, the rest of the body. Returns the answer, after checking that the server exited 0."""
    raw = json.dumps(body).encode()

    async def run():
        release = asyncio.Event()

        async def slowly():
            yield raw[:4]
            await release.wait()
            yield raw[4:]

        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60) as client:
            pending = asyncio.create_task(client.post("/predict", content=slowly(),
                                                      headers={"Content-Type": "application/json"}))
            while metric((await client.get("/metrics")).text, "lit_nlp_requests_in_flight") < 1:
                assert not pending.done(), pending.result().text
            if whole_group:  # as systemd, `timeout` or kill -- -<group> send it
                os.killpg(server.process.pid, signal.SIGTERM)
            else:  # as docker stop or kill <pid> send it
                server.process.send_signal(signal.SIGTERM)
            while "serve: SIGTERM" not in server.log.read_text():
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # every process has the signal by now, and acts on it
            release.set()
            return await pending

    answer = asyncio.run(run())
    assert server.process.wait(timeout=60) == 0
    log = server.log.read_text()
    assert log.index("serve: SIGTERM") < log.index("serve: stopped") and "Traceback" not in log
    with pytest.raises(httpx.TransportError):
        httpx.post(f"{server.url}/predict", json=body, timeout=5)
    return answer


# ----------------------------------------------------------------- classification, over HTTP
def test_health_info_and_the_model_version(classifier, trained_classifier):
    """/health needs no key (probes); /info names task, labels, backend, lengths and the
    version (run, a hash of the weights that answer, lit_nlp), which every answer's headers
    carry, errors included."""
    import lit_nlp

    run = trained_classifier[0]
    health = httpx.get(f"{classifier.url}/health")
    assert health.status_code == 200
    info = httpx.get(f"{classifier.url}/info", headers=AUTH).json()["model"]
    weights = hashlib.sha256(b"model.safetensors" + (run / "export" / "model.safetensors").read_bytes()).hexdigest()
    version = f"{run.name}@{weights[:12]}"
    assert info["task"] == "classification" and info["labels"] == ["negative", "positive"]
    assert info["backend"] == "torch" and info["lengths"] == {"max_length": 32}
    assert info["model_version"]["id"] == version and info["lit_nlp_version"] == lit_nlp.__version__
    assert info["serving"]["max_items"] == 5 and info["serving"]["api_key"] is True
    assert info["inputs"]["fields"] == ["text"]
    for answer in (health, httpx.post(f"{classifier.url}/predict", headers=AUTH, json={"text": TEXTS[0]}),
                   httpx.post(f"{classifier.url}/predict", headers=AUTH, json={"txt": TEXTS[0]})):
        assert answer.headers["x-model-version"] == version
        assert answer.headers["x-lit-nlp-version"] == lit_nlp.__version__
    docs = httpx.get(f"{classifier.url}/openapi.json").json()  # the API description is open too
    assert docs["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["example"] == {"text": "..."}


def test_api_key_is_required_and_never_logged(classifier):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}):
        for method, path in (("POST", "/predict"), ("GET", "/info"), ("GET", "/metrics")):
            answer = httpx.request(method, f"{classifier.url}{path}", headers=headers, json={"text": "x"})
            assert answer.status_code == 401, (path, headers)
            assert answer.json() == {"error": "missing or wrong API key; send the header Authorization: Bearer "
                                              "<key> (or X-API-Key: <key>)"}
    for headers in (AUTH, {"X-API-Key": KEY}):
        assert httpx.post(f"{classifier.url}/predict", headers=headers, json={"text": "x"}).status_code == 200
    assert KEY not in classifier.log.read_text()


def test_answers_equal_predict_py(classifier, trained_classifier):
    local = load_predictor(trained_classifier[0]).predict_rows([{"text": t} for t in TEXTS], 32)
    one = httpx.post(f"{classifier.url}/predict", headers=AUTH, json={"text": TEXTS[0]})
    assert one.status_code == 200
    assert_same(one.json(), local[0])  # one object in, one object out
    many = httpx.post(f"{classifier.url}/predict", headers=AUTH, json=[{"text": t} for t in TEXTS])
    assert_same(many.json(), local)  # a list in, a list out, in order
    assert [r["label"] for r in many.json()] == ["positive", "negative", "negative"]


def test_concurrent_requests_are_batched_and_answered_as_predict_py(classifier, trained_classifier):
    """32 requests at once: each answered as predict.py answers its text, and /metrics' batch
    histogram shows that model calls took several requests together (8 at most)."""
    texts = [f"{t} {FILLER[i % len(FILLER)]}" for i, t in enumerate(TEXTS * 11)][:32]
    local = load_predictor(trained_classifier[0]).predict_rows([{"text": t} for t in texts], 32)
    before = httpx.get(f"{classifier.url}/metrics", headers=AUTH).text

    async def send_all():
        async with httpx.AsyncClient(base_url=classifier.url, headers=AUTH, timeout=60) as client:
            return await asyncio.gather(*(client.post("/predict", json={"text": t}) for t in texts))

    answers = asyncio.run(send_all())
    assert [a.status_code for a in answers] == [200] * 32
    for answer, want in zip(answers, local):
        assert_same(answer.json(), want)
    after = httpx.get(f"{classifier.url}/metrics", headers=AUTH).text
    batches = metric(after, "lit_nlp_batch_size_count") - metric(before, "lit_nlp_batch_size_count")
    requests = metric(after, "lit_nlp_batch_size_sum") - metric(before, "lit_nlp_batch_size_sum")
    assert requests == 32 and batches < 32, (batches, requests)  # some batch held more than one request
    assert bucket(after, "lit_nlp_batch_size", "8") == metric(after, "lit_nlp_batch_size_count")  # max_batch_size
    assert metric(after, 'lit_nlp_requests_total{backend="torch",endpoint="predict",code="200"}') >= 32


BAD_REQUESTS = [
    # (body, status, kind, what the one line says)
    (b'{"text": "a film', 400, "malformed_json", "the body is not valid JSON (Unterminated string"),
    (b"", 400, "malformed_json", "the body is empty"),
    (b'"a film"', 422, "wrong_type", "the body must be a JSON object like {\"text\": \"...\"}"),
    (b"{}", 422, "missing_field", "missing field text"),
    (b'{"text": 3}', 422, "wrong_type", "field text must be a string, got a number"),
    (b'{"text": null}', 422, "wrong_type", "field text must be a string, got null"),
    (b'{"text": ""}', 422, "empty", "field text is empty"),
    (b'{"text": "  "}', 422, "empty", "field text is empty"),
    (json.dumps({"text": "a" * 301}).encode(), 422, "too_long", "field text has 301 characters, over max_chars=300"),
    (json.dumps([{"text": "a"}] * 6).encode(), 422, "too_many_items", "6 items, over max_items=5"),
    (b"[]", 422, "empty", "the list is empty"),
    (b'{"text": "a film", "label": "positive"}', 422, "unknown_field", 'unknown field "label"'),
    (b'[{"text": "fine"}, "a film", {"text": ""}]', 422, "wrong_type",
     "items[1]: must be a JSON object like {\"text\": \"...\"}, got a string; items[2]: field text is empty"),
]


def test_bad_requests_get_one_line_and_the_server_keeps_serving(classifier):
    before = httpx.get(f"{classifier.url}/metrics", headers=AUTH).text
    for body, status, kind, says in BAD_REQUESTS:
        answer = httpx.post(f"{classifier.url}/predict", headers={**AUTH, "Content-Type": "application/json"},
                            content=body)
        assert answer.status_code == status, (body, answer.text)
        error = answer.json()
        assert list(error) == ["error"] and says in error["error"], (body, error)
        assert "\n" not in error["error"] and "Traceback" not in answer.text
    # a form content type (curl -d's) still reads as JSON; other paths and methods are JSON too
    form = httpx.post(f"{classifier.url}/predict", content=b'{"text": "a superb film"}',
                      headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 200 and form.json()["label"] == "positive"
    for method, path, status in (("GET", "/predict", 405), ("GET", "/nowhere", 404)):
        answer = httpx.request(method, f"{classifier.url}{path}", headers=AUTH)
        assert answer.status_code == status and "the endpoints are POST /predict" in answer.json()["error"]
    assert httpx.post(f"{classifier.url}/predict", headers=AUTH, json={"text": TEXTS[0]}).status_code == 200
    after = httpx.get(f"{classifier.url}/metrics", headers=AUTH).text
    for kind in {k for _, _, k, _ in BAD_REQUESTS}:
        series = f'lit_nlp_errors_total{{backend="torch",kind="{kind}"}}'
        assert metric(after, series) - metric(before, series) == sum(k == kind for _, _, k, _ in BAD_REQUESTS), kind


def test_metrics_are_prometheus_text(classifier):
    text = httpx.get(f"{classifier.url}/metrics", headers=AUTH).text
    sample = re.compile(r'^[a-z_]+\{backend="torch"(,[a-z_]+="[^"]*")*\} -?[0-9.e+]+$')
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or sample.match(line), line
    for name in ("lit_nlp_requests_total", "lit_nlp_errors_total", "lit_nlp_request_duration_seconds",
                 "lit_nlp_batch_size", "lit_nlp_model_info"):
        assert f"# TYPE {name} " in text
    assert metric(text, "lit_nlp_request_duration_seconds_count") >= 1


def test_sigterm_lets_the_request_in_flight_finish(classifier, trained_classifier):
    """Last test of the classifier: SIGTERM to the main process with a request in flight; it
    is answered as predict.py answers, then the server exits 0 and refuses more."""
    body = [{"text": t} for t in TEXTS]
    answer = sigterm_with_a_request_in_flight(classifier, body, AUTH, whole_group=False)
    assert answer.status_code == 200
    assert_same(answer.json(), load_predictor(trained_classifier[0]).predict_rows(body, 32))


# ----------------------------------------------------------------- token classification, then SIGTERM
def test_tagger_answers_equal_predict_py(tagger, tagger_run):
    """Texts and token lists, one object or a mixed list, as predict.py tags them."""
    rows = [{"text": "john went to the city with mary"}, {"tokens": ["alice", "met", "bob", "today"]},
            {"text": "  a quiet   day  "}]
    local = load_predictor(tagger_run, backend="onnx").predict_rows(rows, 32)
    assert httpx.get(f"{tagger.url}/info").json()["model"]["backend"] == "onnx"
    assert_same(httpx.post(f"{tagger.url}/predict", json=rows[1]).json(), local[1])
    assert_same(httpx.post(f"{tagger.url}/predict", json=rows).json(), local)
    bad = httpx.post(f"{tagger.url}/predict", json={"tokens": ["alice", 3]})
    assert bad.status_code == 422 and bad.json() == {"error": "tokens[1] must be a non-empty string, got a number"}
    both = httpx.post(f"{tagger.url}/predict", json={"text": "a", "tokens": ["a"]}).json()["error"]
    assert both.startswith("fields text, tokens do not go together; a token_classification model takes")


def test_sigterm_to_every_process_lets_the_request_in_flight_finish(tagger, tagger_run):
    """Last test of the tagger: SIGTERM to the whole process group (the HTTP process, the model
    worker, LitServe's manager) with a request in flight: it is still answered, then the server
    exits 0."""
    row = {"text": "carol and dave went to the office"}
    answer = sigterm_with_a_request_in_flight(tagger, row, {}, whole_group=True)
    assert answer.status_code == 200
    assert_same(answer.json(), load_predictor(tagger_run, backend="onnx").predict_rows([row], 32)[0])


# ----------------------------------------------------------------- in-process: options, inputs, batches
def test_options_are_checked_together_in_one_line():
    from lit_nlp.serve.options import parse_args

    with pytest.raises(LitNlpError) as err:
        parse_args(["model_path=run", "port=80", "backend=tensorrt", "workers=0", "apikey=hunter2", "hunter2",
                    "batch_timeout=x"])
    message = str(err.value)
    assert "\n" not in message and "hunter2" not in message  # a misspelt api_key is named, not shown
    for says in ("port must be from 1024 to 65535", "backend=tensorrt is not one of torch, onnx, onnx-int8",
                 "workers must be at least 1", "unknown argument 'apikey'", "argument 6 is not key=value",
                 "batch_timeout must be a number"):
        assert says in message
    opts = parse_args(["model_path=run"], environ={"LIT_NLP_API_KEY": "k"})
    assert (opts["host"], opts["port"], opts["api_key"], opts["backend"]) == ("127.0.0.1", 8000, "k", "torch")
    assert parse_args(["model_path=run", "api_key=a"], environ={"LIT_NLP_API_KEY": "k"})["api_key"] == "a"


def test_cli_error_is_one_line():
    out = subprocess.run([sys.executable, "serve.py", "model_path=run", "port=80", "max_items=many"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr == ("error: max_items must be a whole number, got 'many'; port must "
                                                  "be from 1024 to 65535 (LitServe's range), got 80\n")


def test_a_missing_package_names_the_extra(monkeypatch):
    from lit_nlp.serve.options import require_serve_packages

    monkeypatch.setitem(sys.modules, "litserve", None)  # import litserve now raises ImportError
    with pytest.raises(LitNlpError, match=r'serve.py needs litserve: pip install -e "\.\[serve\]"'):
        require_serve_packages()


def test_request_fields_per_task():
    from lit_nlp.serve.inputs import RequestError, read_request, task_inputs

    qa = task_inputs({"task": "extractive_qa", "question_column": "q", "context_column": "passage"})
    items, single = read_request(b'{"question": "who?", "context": "mary ran"}', qa, 100, 4)
    assert single and qa.to_row(items[0]) == {"q": "who?", "passage": "mary ran"}
    assert qa.from_row({"q": "who?", "passage": "mary ran", "answer": "mary"}) == {
        "question": "who?", "context": "mary ran", "answer": "mary"}
    t5 = task_inputs({"task": "seq2seq", "source_template": "question: {question} context: {context}"})
    assert t5.shapes == (("question", "context"), ("text",))  # the template's columns, or predict.py's text=
    pair = task_inputs({"task": "classification", "text_pair_column": "hypothesis"})
    with pytest.raises(RequestError, match="missing field text_pair"):
        read_request(b'[{"text": "a"}]', pair, 100, 4)


def test_an_input_the_predictor_refuses_does_not_fail_its_batch():
    """A batch of three requests, one of which the predictor refuses (as extractive QA refuses
    a question that leaves no room for its context): that one gets 422 with the reason, the
    others their answers."""
    from lit_nlp.serve.api import PredictorAPI, Refusal
    from lit_nlp.serve.inputs import task_inputs
    from lit_nlp.serve.metrics import Metrics

    class Echo:
        def predict_rows(self, rows, batch_size):
            if any(row["text"] == "refused" for row in rows):
                raise LitNlpError("1 questions leave no room for context; shorten them")
            return [{**row, "label": row["text"].upper()} for row in rows]

    api = PredictorAPI("unused", "cpu", "torch", task_inputs({"task": "classification"}), Metrics("torch"),
                       max_batch_size=4, batch_timeout=0.01)
    api.predictor = Echo()
    answers = api.predict([{"inputs": [{"text": "a"}], "single": True},
                           {"inputs": [{"text": "b"}, {"text": "refused"}], "single": False},
                           {"inputs": [{"text": "c"}, {"text": "d"}], "single": False}])
    assert answers[0] == {"text": "a", "label": "A"}
    assert answers[1] == Refusal(422, "1 questions leave no room for context; shorten them")
    assert answers[2] == [{"text": "c", "label": "C"}, {"text": "d", "label": "D"}]
    assert api.encode_response(answers[1]).status_code == 422
    assert api.metrics.value("lit_nlp_batch_size", part="count") == 1


def test_bench_suite_serve_options(trained_classifier, tmp_path):
    """python -m lit_nlp.bench suite=serve: its options, checked together (the run itself, a
    server per backend under load, is a benchmark, not a test)."""
    from lit_nlp.bench.options import parse

    with pytest.raises(LitNlpError) as err:
        parse(["suite=serve", "backends=torch,tensorrt", "concurrency=1,x", f"dev_file={tmp_path / 'none.tsv'}"])
    message = str(err.value)
    for says in ("suite=serve needs model_path=", "unknown backend tensorrt", "concurrency=1,x: expected whole numbers",
                 "dev_file="):
        assert says in message
    dev = tmp_path / "dev.tsv"
    dev.write_text("sentence\tlabel\na superb film\t1\n")
    opts = parse(["suite=serve", f"model_path={trained_classifier[0]}", "requests=48", "backends=torch",
                  "batch_timeout=0.01", f"dev_file={dev}", f"out={tmp_path}"])
    assert (opts["parts"], opts["backends"], opts["concurrency"], opts["requests"], opts["batch_timeout"]) == (
        ["serve"], ["torch"], [1, 8, 32], 48, 0.01)
    from lit_nlp.bench.serving import dev_sentences

    assert dev_sentences(opts, ["negative", "positive"])[:2] == (["a superb film"], ["positive"])


def test_only_the_monitor_losing_the_stopped_manager_is_silenced(caplog):
    """The monitor thread's broken connection to LitServe's manager process, once a shutdown has
    stopped that process, is not logged as a crash (the race the SIGTERM tests above can hit);
    any other error of the monitor still is."""
    from lit_nlp.serve.server import ignore_monitor_after_shutdown

    litserve_log = logging.getLogger("litserve.server")  # the logger LitServe's monitor writes to
    litserve_log.addFilter(ignore_monitor_after_shutdown)
    try:
        for error in (BrokenPipeError(32, "Broken pipe"), EOFError(), ValueError("a real bug")):
            try:
                raise error
            except Exception:  # noqa: BLE001
                litserve_log.exception("Monitoring worker crashed")
    finally:
        litserve_log.removeFilter(ignore_monitor_after_shutdown)
    assert [r.exc_info[0] for r in caplog.records if r.name == "litserve.server"] == [ValueError]
