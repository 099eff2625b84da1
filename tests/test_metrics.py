"""The request metrics' tally: what it folds into prometheus-client must read exactly as if every
observation had gone through prometheus-client itself (which also guards the two private fields of
a histogram child it writes to)."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from service.observability import metrics
from service.observability.metrics import LATENCY_BUCKETS, UPPER_BOUNDS, Tally

VALUES = [0.0, 0.001, 0.005, 0.0050001, 0.3, 2.5, 299.99, 300, 900, 901.5, 12_000.0]


def pair(registry: CollectorRegistry) -> tuple[Counter, Histogram]:
    counter = Counter("t_requests", "Requests.", ["route", "outcome"], registry=registry)
    histogram = Histogram("t_seconds", "Seconds.", ["route"], buckets=LATENCY_BUCKETS, registry=registry)
    return counter, histogram


def exposed(registry: CollectorRegistry) -> list[str]:
    # `_created` samples carry each process-local creation time: not part of the comparison.
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def test_folded_tallies_read_as_direct_observations() -> None:
    direct_registry, tallied_registry = CollectorRegistry(), CollectorRegistry()
    direct_counter, direct_histogram = pair(direct_registry)
    counter, histogram = pair(tallied_registry)
    UPPER_BOUNDS[histogram] = (*histogram._upper_bounds,)
    tally = Tally(direct=False)
    try:
        for n, value in enumerate(VALUES):
            route = "/a" if n % 3 else "/b"
            direct_histogram.labels(route).observe(value)
            direct_counter.labels(route, "ok").inc(n + 1)
            tally.observe(histogram, (route,), value)
            tally.count(counter, (route, "ok"), n + 1)
            if n == 5:  # a scrape in the middle: folding twice adds up
                tally.fold()
        assert exposed(tallied_registry) != exposed(direct_registry)  # the tail is not folded yet
        tally.fold()
        assert exposed(tallied_registry) == exposed(direct_registry)
        tally.fold()  # nothing new: nothing changes
        assert exposed(tallied_registry) == exposed(direct_registry)
    finally:
        del UPPER_BOUNDS[histogram]


def test_with_shared_metric_files_observations_go_straight_through() -> None:
    registry = CollectorRegistry()
    counter, histogram = pair(registry)
    tally = Tally(direct=True)
    tally.count(counter, ("/a", "ok"), 2)
    tally.observe(histogram, ("/a",), 0.3)
    assert not tally.counts and not tally.observed
    assert registry.get_sample_value("t_requests_total", {"route": "/a", "outcome": "ok"}) == 2
    assert registry.get_sample_value("t_seconds_bucket", {"route": "/a", "le": "0.5"}) == 1


def test_the_gateway_metrics_fold_before_every_scrape() -> None:
    async def scrape() -> bytes:  # /metrics is answered on the event loop
        return metrics.exposition()

    metrics.TALLY.count(metrics.RETRIES, ("tally-model",), 3)
    assert b'chatgate_retries_total{model="tally-model"} 3.0' in asyncio.run(scrape())
