"""Finished spans as an OTLP ``ExportTraceServiceRequest`` in protobuf's wire format.

Written by hand rather than through generated OTLP classes: a span is a handful
of fields and attribute pairs, and appending their bytes directly costs a
fraction of building message objects first (this runs for every exported span).
Field numbers are those of opentelemetry-proto's ``trace/v1/trace.proto``,
``common/v1/common.proto`` and ``resource/v1/resource.proto``; the tests decode
the output with the official generated classes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

AttributeValue = str | bool | int | float | Sequence[str]

# Attributes whose values are new on every span: never kept by the pair cache.
UNIQUE = frozenset({"chatgate.request_id", "gen_ai.response.id"})

KIND_SERVER = 2  # Span.SpanKind
KIND_CLIENT = 3
STATUS_ERROR = 2  # Status.StatusCode


class FinishedSpan(Protocol):
    trace_id: int
    span_id: int
    parent_id: int
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, AttributeValue]
    error: str  # the status message of a failed span; "" when it did not fail
    flags: int


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL = [bytes((n,)) for n in range(128)]  # one-byte varints: most lengths and counts


def varint(value: int) -> bytes:
    """Never negative here; up to 16383 (every length in a span) without a loop."""
    if value < 128:
        return _SMALL[value]
    if value < 16384:
        return bytes((value & 0x7F | 0x80, value >> 7))
    return _varint(value)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (strings, bytes, sub-messages)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def text(number: int, value: str) -> bytes:
    return field(number, value.encode("utf-8", "replace"))


def any_value(value: AttributeValue) -> bytes:
    if isinstance(value, str):
        return text(1, value)
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + varint(value & 0xFFFFFFFFFFFFFFFF)  # int64: negatives as two's complement
    if isinstance(value, float):
        return b"\x21" + struct.pack("<d", value)
    return field(5, b"".join([field(1, any_value(item)) for item in value]))


def attributes(number: int, pairs: Mapping[str, AttributeValue]) -> bytes:
    """``KeyValue`` messages in field ``number``."""
    return b"".join([field(number, text(1, key) + field(2, any_value(value))) for key, value in pairs.items()])


_KEYS: dict[str, bytes] = {}  # a span attribute's name, encoded once: the names are the gateway's own


def span_attribute(key: str, value: AttributeValue) -> bytes:
    """One ``KeyValue`` in field 9 (a span's attributes)."""
    prefix = _KEYS.get(key)
    if prefix is None:
        prefix = _KEYS[key] = text(1, key) + b"\x12"  # then field 2, the value
    encoded = any_value(value)
    pair = prefix + varint(len(encoded)) + encoded
    return b"\x4a" + varint(len(pair)) + pair


# Whole encoded pairs, for the values that repeat from span to span (models, routes, callers,
# outcomes, small counts): a lookup instead of an encoding. Bounded; list values are not kept.
_PAIRS: dict[tuple[str, type, str | int | float], bytes] = {}  # the type too: True == 1 == 1.0
_PAIRS_LIMIT = 4096


def span_attributes(pairs: Mapping[str, AttributeValue]) -> bytes:
    """A span's attributes (field 9), repeated pairs from ``_PAIRS``."""
    known, out = _PAIRS, []
    for key, value in pairs.items():
        if value.__class__ is list:
            out.append(span_attribute(key, value))
            continue
        cache_key = (key, value.__class__, value)
        pair = known.get(cache_key)  # type: ignore[arg-type]  # not a list: hashable
        if pair is None:
            pair = span_attribute(key, value)
            if len(known) < _PAIRS_LIMIT and key not in UNIQUE:
                known[cache_key] = pair  # type: ignore[index]
        out.append(pair)
    return b"".join(out)


def span(finished: FinishedSpan) -> bytes:
    parts = [
        b"\x0a\x10" + finished.trace_id.to_bytes(16, "big"),
        b"\x12\x08" + finished.span_id.to_bytes(8, "big"),
    ]
    if finished.parent_id:
        parts.append(b"\x22\x08" + finished.parent_id.to_bytes(8, "big"))
    parts += [
        text(5, finished.name),
        b"\x30" + varint(finished.kind),
        b"\x39" + struct.pack("<Q", finished.start_ns),
        b"\x41" + struct.pack("<Q", finished.end_ns),
        span_attributes(finished.attributes),
    ]
    if finished.error:
        parts.append(field(15, text(2, finished.error) + b"\x18" + varint(STATUS_ERROR)))
    parts.append(b"\x85\x01" + struct.pack("<I", finished.flags))  # field 16, fixed32
    return field(2, b"".join(parts))


def export_request(resource: Mapping[str, AttributeValue], scope: tuple[str, str], spans: Iterable[bytes]) -> bytes:
    """One ``ExportTraceServiceRequest`` with one resource and one instrumentation scope,
    around spans encoded by ``span``."""
    scope_message = field(1, text(1, scope[0]) + text(2, scope[1]))
    scope_spans = field(2, scope_message + b"".join(spans))
    return field(1, field(1, attributes(1, resource)) + scope_spans)
