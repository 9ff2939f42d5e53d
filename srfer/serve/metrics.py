"""`GET /metrics` in Prometheus' text format (prometheus_client): requests by endpoint and
status, their latency, the faces answered, and the inference queue's depth."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, queue_depth: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("srfer_requests", "HTTP requests answered", ["endpoint", "status"],
                                registry=self.registry)  # fmt: skip
        self.latency = Histogram("srfer_request_seconds", "Time to answer a request", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)  # fmt: skip
        self.faces_total = Counter("srfer_faces", "Faces answered (analyze, enhance)", registry=self.registry)
        queue = Gauge("srfer_queue_depth", "Inferences running or waiting", registry=self.registry)
        queue.set_function(queue_depth)

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def faces(self, count: int) -> None:
        self.faces_total.inc(count)

    def text(self) -> bytes:
        return generate_latest(self.registry)
