"""Prometheus metrics shared by both edges: outcomes, the gateway's own time, upstream time, in-flight work.

With several workers, PROMETHEUS_MULTIPROC_DIR (set by the supervisor) lets any
worker's `/metrics` report the whole process group.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from service.core import ProviderCall
from service.core.chat import own_time_ms

# Buckets in seconds: the gateway's own time is sub-millisecond when healthy.
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
UPSTREAM_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

REQUESTS = Counter(
    "chatgate_requests", "Completed chat requests by protocol, mode and outcome.", ["protocol", "mode", "outcome"]
)
OVERHEAD = Histogram(
    "chatgate_gateway_overhead_seconds",
    "The gateway's own time per request: total minus time waiting on the upstream.",
    ["protocol", "mode"],
    buckets=OVERHEAD_BUCKETS,
)
UPSTREAM = Histogram(
    "chatgate_upstream_seconds",
    "Time spent waiting on the upstream per request.",
    ["protocol", "mode"],
    buckets=UPSTREAM_BUCKETS,
)
IN_FLIGHT = Gauge(
    "chatgate_in_flight_requests", "Chat requests being served.", ["protocol"], multiprocess_mode="livesum"
)
UPSTREAM_AUTH_FAILURES = Counter(
    "chatgate_upstream_auth_failures", "Upstream rejections of the gateway's own credentials (operator action needed)."
)


ATTEMPTS = Counter(
    "chatgate_upstream_failed_attempts",
    "Failed upstream attempts by upstream, model and error code: each retry, fallback and final failure. "
    "Successful attempts are the chat requests (chatgate_requests_total) with outcome ok.",
    ["upstream", "model", "outcome"],
)
KEY_EVENTS = Counter(
    "chatgate_upstream_key_events",
    "Upstream key events by upstream and key alias: rested (429), rejected (401/403), breaker_open, breaker_closed.",
    ["upstream", "key", "event"],
)


_attempt_counters: dict[tuple[str, str, str], Any] = {}


def attempt(call: ProviderCall, outcome: str) -> None:
    """Counted on failures only, so the happy path pays nothing; children are looked up once each."""
    key = (call.model.provider, call.model.id, outcome)
    counter = _attempt_counters.get(key)
    if counter is None:
        counter = _attempt_counters[key] = ATTEMPTS.labels(*key)
    counter.inc()


def key_event(upstream: str, key: str, event: str) -> None:
    KEY_EVENTS.labels(upstream, key, event).inc()


def record(protocol: str, mode: str, outcome: str, overhead_ms: float, upstream_seconds: float) -> None:
    REQUESTS.labels(protocol, mode, outcome).inc()
    OVERHEAD.labels(protocol, mode).observe(overhead_ms / 1000)
    UPSTREAM.labels(protocol, mode).observe(upstream_seconds)
    if outcome == "upstream_authentication_failed":
        UPSTREAM_AUTH_FAILURES.inc()


def exposition() -> bytes:
    """The text exposition format, for every worker when running several, plus this
    process's live asyncio tasks (leak watch: the number must come back down)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        text = generate_latest(registry)
    else:
        text = generate_latest()
    tasks = len(asyncio.all_tasks())
    return text + (
        b"# HELP chatgate_asyncio_tasks Live asyncio tasks in the process that answered this scrape.\n"
        b"# TYPE chatgate_asyncio_tasks gauge\nchatgate_asyncio_tasks %d\n" % tasks
    )


class Tracked:
    """One request's metrics: ``with Tracked("http", "stream") as t: ... t.outcome = error.code``."""

    __slots__ = ("_gauge", "mode", "outcome", "protocol", "started", "upstream_seconds")

    def __init__(self, protocol: str, mode: str) -> None:
        self.protocol, self.mode = protocol, mode
        self.outcome = "ok"
        self.upstream_seconds = 0.0
        self.started = 0.0
        self._gauge = IN_FLIGHT.labels(protocol)

    def __enter__(self) -> Tracked:
        self.started = time.monotonic()
        self._gauge.inc()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _: object) -> None:
        self._gauge.dec()
        if kind is not None and issubclass(kind, asyncio.CancelledError) and self.outcome == "ok":
            self.outcome = "client_cancelled"
        elif kind is not None and self.outcome == "ok":
            self.outcome = "internal_error"
        overhead_ms = own_time_ms(self.started, self.upstream_seconds)
        record(self.protocol, self.mode, self.outcome, overhead_ms, self.upstream_seconds)
