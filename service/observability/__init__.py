"""What the gateway tells operators about each request: metrics, the access log, trace spans.

The edges wrap each request in ``Observed``; when it ends, all three read the
same ``Exchange``. Tracing is set up only when configured (``configure``); until
then it costs one ``None`` test per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from service.core.exchange import REQUEST_ID, Exchange

from . import access, metrics
from .metrics import attempt, exposition, key_event, refused, store_event

if TYPE_CHECKING:
    from .tracing import Tracing

__all__ = [
    "Observed",
    "active_tracing",
    "attempt",
    "configure",
    "exposition",
    "key_event",
    "refused",
    "set_ledger",
    "store_event",
    "tracing_configured",
]
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def tracing_configured(environ: Mapping[str, str]) -> bool:
    """Tracing is on when an OTLP endpoint or a traces exporter is set and the SDK is not disabled
    (the standard variables; checked without importing OpenTelemetry)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(exporter) or any(environ.get(name) for name in ENDPOINT_VARIABLES)


class _State:
    access_log = True
    tracing: Tracing | None = None
    # Takes each finished request that named a model (the usage ledger), if configured.
    ledger: Callable[[Exchange, float], None] | None = None


STATE = _State()


def configure(*, access_log: bool, tracing: Tracing | None) -> None:
    STATE.access_log = access_log
    STATE.tracing = tracing


def set_ledger(ledger: Callable[[Exchange, float], None] | None) -> None:
    """Hands every finished request that named a model to ``ledger`` (None: to nothing)."""
    STATE.ledger = ledger


def active_tracing() -> Tracing | None:
    return STATE.tracing


class Observed:
    """``with Observed(exchange) as seen: ...``: the request's in-flight gauges, request id for
    log lines, server span, and at the end its metrics, access line and span attributes."""

    __slots__ = ("_in_flight", "_stream_gauge", "exchange")

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self._in_flight = metrics.child(metrics.IN_FLIGHT, exchange.protocol)
        self._stream_gauge: Any = None

    def __enter__(self) -> Observed:
        exchange = self.exchange
        REQUEST_ID.set(exchange.request_id)
        self._in_flight.inc()
        if STATE.tracing is not None:
            STATE.tracing.start(exchange)
        return self

    def streaming(self) -> None:
        self.exchange.mode = "stream"
        self._stream_gauge = gauge = metrics.child(metrics.OPEN_STREAMS, self.exchange.protocol)
        gauge.inc()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _: object) -> None:
        exchange = self.exchange
        self._in_flight.dec()
        if self._stream_gauge is not None:
            self._stream_gauge.dec()
        if kind is not None and exchange.outcome == "ok":
            exchange.outcome = "client_cancelled" if issubclass(kind, asyncio.CancelledError) else "internal_error"
        duration = time.monotonic() - exchange.started
        metrics.record(exchange, duration, max(0.0, duration - exchange.upstream_seconds))
        if STATE.access_log:
            access.write(exchange, duration)
        if STATE.ledger is not None and exchange.model_asked:
            STATE.ledger(exchange, duration)
        if STATE.tracing is not None and exchange.span is not None:
            STATE.tracing.end(exchange, duration)
