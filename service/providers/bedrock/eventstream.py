"""AWS's binary event-stream framing (InvokeModelWithResponseStream) read as Anthropic's SSE.

Each frame carries one Anthropic stream event, base64-encoded in a JSON `{"bytes": ...}` payload;
an `exception` frame carries a Bedrock error. The frames are decoded and their checksums checked
by botocore's own decoder; each event becomes the SSE event Anthropic's API would have sent, so
the translator, the native relay and the usage reader downstream stay the same for every route.
A frame that fails its checksum, or does not parse, ends the stream as a malformed upstream reply.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import orjson
from botocore.eventstream import EventStreamBuffer, EventStreamMessage, ParserError

from service.core.streams import close
from service.providers.anthropic.platform import anthropic_error
from service.transport.errors import malformed_event

from .errors import STREAM_EXCEPTIONS

TYPE_PREFIX = b'{"type":"'


async def sse_from_event_stream(reads: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """One SSE read per upstream read that completed at least one frame."""
    buffer = EventStreamBuffer()
    try:
        async for raw in reads:
            buffer.add_data(raw)
            out = []
            try:
                for message in buffer:
                    out.append(sse_of(message))
            except (ParserError, ValueError, KeyError, TypeError) as exc:
                raise malformed_event("event-stream frame") from exc
            if out:
                yield b"".join(out)
    finally:
        await close(reads)


def sse_of(message: EventStreamMessage) -> bytes:
    """The SSE event for one frame: a `chunk` event's Anthropic event, or an `error` event."""
    headers = message.headers
    kind = headers.get(":message-type")
    if kind == "event":
        if headers.get(":event-type") != "chunk":
            return b""  # nothing but chunks carries an Anthropic event
        data = base64.b64decode(orjson.loads(message.payload)["bytes"], validate=True)
        return b"event: " + event_name(data) + b"\ndata: " + data + b"\n\n"
    if kind == "exception":
        name = str(headers.get(":exception-type", ""))
        text = str(orjson.loads(message.payload).get("message") or name)
        return error_event(STREAM_EXCEPTIONS.get(name, "api_error"), text)
    if kind == "error":
        return error_event("api_error", str(headers.get(":error-message") or headers.get(":error-code")))
    raise ValueError(f"unknown message type {kind!r}")


def event_name(data: bytes) -> bytes:
    """The event's `type`, read off its first bytes where it sits (it always leads, as Anthropic writes it)."""
    if data.startswith(TYPE_PREFIX):
        end = data.find(b'"', len(TYPE_PREFIX))
        if end > 0:
            return data[len(TYPE_PREFIX) : end]
    name = orjson.loads(data)["type"]
    if not isinstance(name, str):
        raise TypeError("event type is not a string")
    return name.encode()


def error_event(kind: str, message: str) -> bytes:
    return b"event: error\ndata: " + anthropic_error(kind, message) + b"\n\n"
