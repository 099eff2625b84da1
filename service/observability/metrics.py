"""Prometheus metrics, fed from finished exchanges and from the providers' failure and key events.

With several workers, PROMETHEUS_MULTIPROC_DIR (set by the supervisor) lets any
worker's `/metrics` report the whole process group.

Label values are bounded by configuration, never by what a client sends: the
model label is the catalog id that served (`-` when the request named no known
model), the caller label is a configured key name, the route a known path.
Label children are looked up once each and kept, so a request pays a dict
lookup per metric rather than prometheus-client's label resolution.
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from service.core import ProviderCall
from service.core.exchange import Exchange

# Buckets in seconds: the gateway's own time is sub-millisecond when healthy.
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)

REQUESTS = Counter(
    "chatgate_requests",
    "Finished requests by protocol, route, mode, model served, caller and outcome (`ok` or the error code). "
    "Requests refused before parsing (authentication, body size, bad JSON) are counted too.",
    ["protocol", "route", "mode", "model", "caller", "outcome"],
)
DURATION = Histogram(
    "chatgate_request_duration_seconds",
    "Whole request time as the client saw it, to the last byte.",
    ["protocol", "route", "mode"],
    buckets=LATENCY_BUCKETS,
)
FIRST_TOKEN = Histogram(
    "chatgate_time_to_first_token_seconds",
    "Streams: time from the request's arrival to the first answer frame sent, by model.",
    ["protocol", "model"],
    buckets=LATENCY_BUCKETS,
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
    buckets=LATENCY_BUCKETS,
)
TOKENS = Counter(
    "chatgate_tokens",
    "Tokens by model, caller and kind: input (uncached), output, cache_read, cache_write, reasoning (part of output).",
    ["model", "caller", "kind"],
)
RETRIES = Counter(
    "chatgate_retries",
    "Upstream attempts beyond the first per request (retries and fallbacks before the first byte), by model asked.",
    ["model"],
)
IN_FLIGHT = Gauge("chatgate_in_flight_requests", "Requests being served.", ["protocol"], multiprocess_mode="livesum")
OPEN_STREAMS = Gauge("chatgate_open_streams", "Streams being served.", ["protocol"], multiprocess_mode="livesum")
UPSTREAM_AUTH_FAILURES = Counter(
    "chatgate_upstream_auth_failures", "Upstream rejections of the gateway's own credentials (operator action needed)."
)
ATTEMPTS = Counter(
    "chatgate_upstream_failed_attempts",
    "Failed upstream attempts by upstream, key alias, model and error code: each retry, fallback and final failure. "
    "Successful attempts are the requests (chatgate_requests_total) with outcome ok.",
    ["upstream", "key", "model", "outcome"],
)
KEY_EVENTS = Counter(
    "chatgate_upstream_key_events",
    "Upstream key events by upstream and key alias: rested (429), rejected (401/403), breaker_open, breaker_closed.",
    ["upstream", "key", "event"],
)
KEY_AVAILABLE = Gauge(
    "chatgate_upstream_key_available",
    "1 while an upstream key takes calls, 0 while it rests, was rejected or has its breaker open.",
    ["upstream", "key"],
    multiprocess_mode="max",
)
UNAVAILABLE_EVENTS = {"rested", "rejected", "breaker_open"}
STORE_EVENTS = Counter(
    "chatgate_store_events",
    "Shared-store trouble, by store and event: ledger write_failed / spilled / lost (records), "
    "limits unreachable (admissions decided without Redis).",
    ["store", "event"],
)

_children: dict[tuple[Any, ...], Any] = {}


def child(metric: Any, *labels: str) -> Any:
    key = (metric, *labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found


def attempt(call: ProviderCall, outcome: str) -> None:
    """Counted on failures only, so the happy path pays nothing."""
    child(ATTEMPTS, call.model.provider, call.key or "-", call.model.id, outcome).inc()


def key_event(upstream: str, key: str, event: str) -> None:
    child(KEY_EVENTS, upstream, key, event).inc()
    child(KEY_AVAILABLE, upstream, key).set(0 if event in UNAVAILABLE_EVENTS else 1)


def refused(protocol: str, outcome: str) -> None:
    """A request refused before it could be read as one (an unparsable HTTP request)."""
    child(REQUESTS, protocol, "unknown", "unary", "-", "anonymous", outcome).inc()


class Tally:
    """The per-request counters and histograms between scrapes, as plain numbers.

    prometheus-client takes a lock per increment and walks the buckets per
    observation: eleven locked updates per request. Here a request adds to
    dict entries (``bisect`` finds the bucket), and ``fold`` hands the sums to
    the Prometheus metrics when ``/metrics`` is read, one increment per label
    set and bucket. Only the event loop's thread records and folds, so nothing
    needs a lock. With several workers (metric files shared through
    PROMETHEUS_MULTIPROC_DIR) another worker may answer the scrape, so every
    observation goes straight to the files instead (``direct``).
    """

    __slots__ = ("counts", "direct", "observed")

    def __init__(self, direct: bool) -> None:
        self.direct = direct
        self.counts: dict[tuple[Any, tuple[str, ...]], float] = {}
        self.observed: dict[tuple[Any, tuple[str, ...]], list[float]] = {}  # bucket counts, then the sum

    def count(self, metric: Any, labels: tuple[str, ...], amount: float = 1) -> None:
        if self.direct:
            child(metric, *labels).inc(amount)
            return
        key = (metric, labels)
        self.counts[key] = self.counts.get(key, 0) + amount

    def observe(self, metric: Any, labels: tuple[str, ...], value: float) -> None:
        if self.direct:
            child(metric, *labels).observe(value)
            return
        key = (metric, labels)
        entry = self.observed.get(key)
        if entry is None:
            entry = self.observed[key] = [0.0] * (len(UPPER_BOUNDS[metric]) + 1)
        entry[bisect_left(UPPER_BOUNDS[metric], value)] += 1  # the first bucket whose bound is >= value
        entry[-1] += value

    def fold(self) -> None:
        counts, observed = self.counts, self.observed
        self.counts, self.observed = {}, {}
        for (metric, labels), amount in counts.items():
            child(metric, *labels).inc(amount)
        for (metric, labels), entry in observed.items():
            histogram = child(metric, *labels)
            # prometheus-client's own fields for a histogram child: a value per bucket and the sum
            # (what `observe` updates); tests/test_metrics.py checks the exposition against `observe`.
            for bucket, number in zip(histogram._buckets, entry[:-1], strict=True):
                if number:
                    bucket.inc(number)
            histogram._sum.inc(entry[-1])


# Each histogram's bucket bounds as prometheus-client keeps them (+Inf last).
UPPER_BOUNDS: dict[Any, tuple[float, ...]] = {
    metric: (*metric._upper_bounds,) for metric in (DURATION, FIRST_TOKEN, OVERHEAD, UPSTREAM)
}
TALLY = Tally(direct=bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR")))


def record(exchange: Exchange, duration: float, overhead: float) -> None:
    protocol, mode, model, caller = exchange.protocol, exchange.mode, exchange.model_served or "-", exchange.caller.name
    tally = TALLY
    tally.count(REQUESTS, (protocol, exchange.route, mode, model, caller, exchange.outcome))
    tally.observe(DURATION, (protocol, exchange.route, mode), duration)
    tally.observe(OVERHEAD, (protocol, mode), overhead)
    if exchange.attempts:
        tally.observe(UPSTREAM, (protocol, mode), exchange.upstream_seconds)
    if exchange.attempts > 1:
        tally.count(RETRIES, (model,), exchange.attempts - 1)
    if mode == "stream" and exchange.first_byte:
        tally.observe(FIRST_TOKEN, (protocol, model), exchange.first_byte - exchange.started)
    usage = exchange.usage
    if usage is not None:
        details = usage.prompt_tokens_details
        cached, written = details.cached_tokens, details.cache_creation_tokens
        for kind, number in (
            ("input", usage.prompt_tokens - cached - written),
            ("output", usage.completion_tokens),
            ("cache_read", cached),
            ("cache_write", written),
            ("reasoning", usage.completion_tokens_details.reasoning_tokens),
        ):
            if number > 0:
                tally.count(TOKENS, (model, caller, kind), number)
    if exchange.outcome == "upstream_authentication_failed":
        UPSTREAM_AUTH_FAILURES.inc()


def exposition() -> bytes:
    """The text exposition format, for every worker when running several, plus this
    process's live asyncio tasks (leak watch: the number must come back down)."""
    TALLY.fold()
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


def store_event(store: str, event: str, count: int = 1) -> None:
    child(STORE_EVENTS, store, event).inc(count)
