"""The server's counters and histograms, in one array of doubles in shared memory: the HTTP
processes LitServe forks count requests, errors and latencies, the model workers it spawns count
batches, and GET /metrics (answered by any HTTP process) reads them all, in Prometheus' text
format. Every series is labelled with the backend; the label sets are fixed up front, so each
series has its slot in the array."""

from __future__ import annotations

import bisect
import itertools
import multiprocessing as mp
from dataclasses import dataclass

ENDPOINTS = ("predict", "health", "info", "metrics", "docs", "other")
CODES = ("200", "400", "401", "404", "405", "413", "422", "500", "503", "504", "other")
# what went wrong; the gate names the kinds it finds itself, the rest come from the status code
ERROR_KINDS = ("malformed_json", "wrong_type", "missing_field", "unknown_field", "mixed_fields", "empty",
               "too_long", "too_many_items", "body_too_large", "unauthorized", "unprocessable", "not_found",
               "method_not_allowed", "timeout", "client_closed", "internal", "other")
# seconds: a MiniLM sentence on a CPU core takes about 10 ms, a T5 generation seconds
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # counter | gauge | histogram
    help: str
    labels: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (label, its values) besides backend
    buckets: tuple[float, ...] = ()


METRICS = (
    Metric("lit_nlp_requests_total", "counter", "HTTP requests answered, by endpoint and status code.",
           (("endpoint", ENDPOINTS), ("code", CODES))),
    Metric("lit_nlp_errors_total", "counter", "Requests answered with an error, by what was wrong.",
           (("kind", ERROR_KINDS),)),
    Metric("lit_nlp_requests_in_flight", "gauge", "POST /predict requests being answered now."),
    Metric("lit_nlp_request_duration_seconds", "histogram",
           "POST /predict wall time in the HTTP server, checks, queue, batching and model included.",
           buckets=LATENCY_BUCKETS),
    Metric("lit_nlp_batch_size", "histogram", "Requests per model batch (dynamic batching).", buckets=BATCH_BUCKETS),
    Metric("lit_nlp_batch_inputs", "histogram", "Inputs (texts, questions) per model batch.", buckets=BATCH_BUCKETS),
    Metric("lit_nlp_batch_duration_seconds", "histogram", "Model worker time per batch (predict_rows).",
           buckets=LATENCY_BUCKETS),
)


class Metrics:
    """The slots of METRICS in one shared array (a lock around each update). Create it before
    the server starts its processes: the forked ones inherit it, the spawned ones receive it
    with the LitAPI they are started with. `info` labels the constant lit_nlp_model_info series."""

    def __init__(self, backend: str, info: dict[str, str] | None = None):
        self.backend, self.info = backend, info or {}
        self._slots: dict[tuple, int] = {}
        for metric in METRICS:
            for values in itertools.product(*(values for _, values in metric.labels)):
                if metric.kind == "histogram":  # one slot per bucket, +Inf, then sum and count
                    for part in (*metric.buckets, "+Inf", "sum", "count"):
                        self._slots[(metric.name, values, part)] = len(self._slots)
                else:
                    self._slots[(metric.name, values, None)] = len(self._slots)
        # spawn context: its shared memory and lock may be handed to spawned worker processes
        self._values = mp.get_context("spawn").Array("d", len(self._slots))

    def inc(self, name: str, *labels: str, by: float = 1.0) -> None:
        slot = self._slots[(name, labels, None)]
        with self._values.get_lock():
            self._values[slot] += by

    def observe(self, name: str, value: float) -> None:
        """One observation of a histogram: its bucket (the first bound >= value), sum, count."""
        metric = next(m for m in METRICS if m.name == name)
        index = bisect.bisect_left(metric.buckets, value)
        part = metric.buckets[index] if index < len(metric.buckets) else "+Inf"
        slots = [self._slots[(name, (), p)] for p in (part, "sum", "count")]
        with self._values.get_lock():
            self._values[slots[0]] += 1
            self._values[slots[1]] += value
            self._values[slots[2]] += 1

    def value(self, name: str, *labels: str, part=None) -> float:
        return self._values[self._slots[(name, labels, part)]]

    def render(self) -> str:
        """Prometheus' text exposition format (version 0.0.4); request counts only for the
        endpoint and code pairs seen, everything else always."""
        with self._values.get_lock():
            values = list(self._values)
        base = {"backend": self.backend}
        lines = ["# HELP lit_nlp_model_info The model served: task, model version, lit_nlp version.",
                 "# TYPE lit_nlp_model_info gauge", f"lit_nlp_model_info{_labels({**base, **self.info})} 1"]
        for metric in METRICS:
            lines += [f"# HELP {metric.name} {metric.help}", f"# TYPE {metric.name} {metric.kind}"]
            names = [label for label, _ in metric.labels]
            for combo in itertools.product(*(values for _, values in metric.labels)):
                labels = {**base, **dict(zip(names, combo))}
                if metric.kind != "histogram":
                    value = values[self._slots[(metric.name, combo, None)]]
                    if value or metric.name != "lit_nlp_requests_total":
                        lines.append(f"{metric.name}{_labels(labels)} {_number(value)}")
                    continue
                cumulative = 0.0
                for bound in (*metric.buckets, "+Inf"):
                    cumulative += values[self._slots[(metric.name, combo, bound)]]
                    bucket = _labels({**labels, "le": _number(bound)})
                    lines.append(f"{metric.name}_bucket{bucket} {_number(cumulative)}")
                for part in ("sum", "count"):
                    value = values[self._slots[(metric.name, combo, part)]]
                    lines.append(f"{metric.name}_{part}{_labels(labels)} {_number(value)}")
        return "\n".join(lines) + "\n"


def _labels(labels: dict) -> str:
    def escape(value) -> str:
        return str(value).replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels.items()) + "}"


def _number(value) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def endpoint_of(path: str) -> str:
    """The endpoint label of a request path."""
    name = path.strip("/").split("/")[0] or "other"
    if name in ("docs", "openapi.json", "redoc"):
        return "docs"
    return name if name in ENDPOINTS else "other"


def code_of(status: int) -> str:
    return str(status) if str(status) in CODES else "other"
