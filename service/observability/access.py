"""The access log: one structured line per finished request, on the `chatgate.access` logger.

The line names the request (id, protocol, route, caller name), what was asked
and what answered, how it ended (status, error code, attempts), what it cost
(tokens, time to first byte, duration, bytes) and what the gateway adjusted.
Never a key; message content only when the operator turns it on
(`log.content`). The formatter (`service/logs.py`) renders the fields as JSON
or as readable text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from service.core.exchange import Exchange

log = logging.getLogger("chatgate.access")


def fields(exchange: Exchange, duration: float) -> dict[str, Any]:
    line: dict[str, Any] = {
        "request_id": exchange.request_id,
        "protocol": exchange.protocol,
        "route": exchange.route,
        "mode": exchange.mode,
        "caller": exchange.caller.name,
        "model": exchange.model_asked or None,
        "served_model": exchange.model_served or None,
        "status": exchange.status,
        "outcome": exchange.outcome,
        "attempts": exchange.attempts,
        "duration_ms": round(duration * 1000, 3),
        "upstream_ms": round(exchange.upstream_seconds * 1000, 3),
        "bytes_in": exchange.bytes_in,
        "bytes_out": exchange.bytes_out,
    }
    if exchange.first_byte:
        line["ttfb_ms"] = round((exchange.first_byte - exchange.started) * 1000, 3)
    usage = exchange.usage
    if usage is not None:
        details = usage.prompt_tokens_details
        line["input_tokens"] = usage.prompt_tokens
        line["output_tokens"] = usage.completion_tokens
        line["cache_read_tokens"] = details.cached_tokens
        line["cache_write_tokens"] = details.cache_creation_tokens
        line["reasoning_tokens"] = usage.completion_tokens_details.reasoning_tokens
    if exchange.finish_reasons:
        line["finish_reasons"] = list(exchange.finish_reasons)
    if exchange.adjusted:
        line["adjusted"] = exchange.adjusted
    if exchange.upstream:
        line["upstream"] = exchange.upstream  # the route that answered
    if exchange.upstream_request_id:
        line["upstream_request_id"] = exchange.upstream_request_id
    if exchange.session or exchange.agent:  # Claude Code's attribution (never a metric label: unbounded)
        line["session"] = exchange.session or None
        line["agent"] = exchange.agent or None
        line["parent_agent"] = exchange.parent_agent or None
    if exchange.span is not None:
        line["trace_id"] = exchange.span.trace_id_hex
    if exchange.content:
        line["content"] = exchange.content
    return line


# Set by the composition root when the logs are JSON lines written by the gateway's own handler:
# the line goes straight to it (see `service.app.logs.LineHandler.structured`).
LANE: list[Callable[[str, str, dict[str, Any]], None] | None] = [None]


def use_lane(lane: Callable[[str, str, dict[str, Any]], None] | None) -> None:
    LANE[0] = lane


def write(exchange: Exchange, duration: float) -> None:
    """Logs the line: by the lane when there is one, else as a record, skipping `Logger.info`'s
    search of the call stack for a source line that no formatter prints."""
    if not log.isEnabledFor(logging.INFO):
        return
    lane = LANE[0]
    if lane is not None and not log.handlers and log.propagate:
        lane(log.name, "request", fields(exchange, duration))
    else:
        record = log.makeRecord(
            log.name, logging.INFO, "", 0, "request", (), None, extra={"fields": fields(exchange, duration)}
        )
        log.handle(record)
