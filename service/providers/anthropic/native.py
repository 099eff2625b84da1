"""Anthropic's own Messages API, relayed bytes through. Pure functions and one small reader.

The request body goes upstream as the client wrote it, with only the model name swapped for
the catalog's upstream id (spliced into the bytes when it can be found exactly once, else the
body is re-encoded: same JSON, other spacing). Answers go back untouched; the gateway only
reads usage, the stop reason and errors off them, parsing nothing but the few events that
carry those.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from service.core.chunks import FINISH_NAMES
from service.core.exchange import Exchange
from service.transport import Malformed, SSEDecoder, json_object, object_field
from service.transport.errors import redact_credentials

from .errors import error_from_event
from .response import finish_reason, usage_from

ANTHROPIC_VERSION = "2023-06-01"
# A top-level-looking `"model": "..."` member; the value is checked against the parsed one.
MODEL_MEMBER = re.compile(rb'"model"\s*:\s*("(?:[^"\\]|\\.)*")')
PASSTHROUGH_HEADERS = ("anthropic-version", "anthropic-beta")


def with_model(body: bytes, asked: str, upstream_id: str) -> bytes:
    """The body with its top-level model set to ``upstream_id``, every other byte kept where possible."""
    if asked == upstream_id:
        return body
    matches = [m for m in MODEL_MEMBER.finditer(body) if orjson.loads(m.group(1)) == asked]
    if len(matches) == 1:
        start, end = matches[0].span(1)
        return body[:start] + orjson.dumps(upstream_id) + body[end:]
    parsed = orjson.loads(body)  # the name also appears deeper in the body: re-encode, same JSON
    parsed["model"] = upstream_id
    return orjson.dumps(parsed)


def upstream_headers(client: tuple[tuple[str, str], ...], version: str = ANTHROPIC_VERSION) -> dict[str, str]:
    """The protocol headers the client sent, with the configured API ``version`` when it sent none."""
    headers = {"anthropic-version": version}
    headers.update((name, value) for name, value in client if name in PASSTHROUGH_HEADERS)
    return headers


def record_answer(message: dict[str, Any], exchange: Exchange) -> None:
    """Usage and stop reason of a whole Messages answer, for logs, metrics and accounting."""
    exchange.usage = usage_from(object_field(message, "usage"))
    exchange.finish_reasons = (FINISH_NAMES[finish_reason(message.get("stop_reason"))],)


# The events a relayed stream is read for; the rest (one per token) pass unread.
WATCHED = frozenset({"message_start", "message_delta", "message_stop", "error"})


class StreamWatcher:
    """Reads a Messages stream as it passes: usage (set, never added: it is cumulative), the stop
    reason, the end, and an error event. Only those events' JSON is parsed."""

    __slots__ = ("_decoder", "_exchange", "_secrets", "_usage", "error", "finished", "request_id")

    def __init__(self, exchange: Exchange, request_id: str | None, secrets: tuple[str, ...]) -> None:
        self._decoder = SSEDecoder(WATCHED)
        self._exchange = exchange
        self.request_id = request_id
        self._secrets = secrets
        self._usage: dict[str, Any] = {}
        self.finished = False
        self.error: Exception | None = None

    def feed(self, raw: bytes) -> None:
        for event in self._decoder.feed(raw):
            name = event.event
            if name == "message_start":
                self._usage = dict(object_field(object_field(json_object(event.data), "message"), "usage"))
                self._exchange.usage = usage_from(self._usage)
            elif name == "message_delta":
                payload = json_object(event.data)
                self._usage.update({k: v for k, v in object_field(payload, "usage").items() if v is not None})
                self._exchange.usage = usage_from(self._usage)
                reason = object_field(payload, "delta").get("stop_reason")
                self._exchange.finish_reasons = (FINISH_NAMES[finish_reason(reason)],)
            elif name == "message_stop":
                self.finished = True
            elif name == "error":
                error = error_from_event(event.data, self.request_id, self._secrets)
                data = event.data.encode() if isinstance(event.data, str) else event.data
                error.upstream_body = redact_credentials(data, self._secrets)  # passed on as the upstream sent it
                self.error = error


__all__ = ["Malformed", "StreamWatcher", "record_answer", "upstream_headers", "with_model"]
