"""Failures every upstream can have, mapped to the core's error tree in one place.

Two kinds: the transport failed below HTTP (``error_from_transport``), or the
upstream answered with something that does not have its documented shape
(``Malformed``). The helpers below are how provider code reads upstream JSON:
a missing or mistyped field raises ``Malformed``, so a genuine upstream fault
is reported as one (a retryable ``upstream_error``), while a ``KeyError`` or
``TypeError`` from our own code stays a bug (``internal_error``).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from service.core import errors

from .http import ConnectFailed, ReadTimedOut, TransportError


class Malformed(Exception):
    """The upstream sent a body or event that does not fit its documented shape."""


def json_object(data: bytes | str) -> dict[str, Any]:
    """Parses upstream JSON that must be an object."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise Malformed("not JSON") from None
    if not isinstance(value, dict):
        raise Malformed("not a JSON object")
    return value


def object_field(obj: dict[str, Any], key: str) -> dict[str, Any]:
    """An optional object field: absent or null reads as empty, any other type is malformed."""
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Malformed(f"`{key}` is not an object")
    return value


def required_str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise Malformed(f"`{key}` is missing or not a string")
    return value


def error_from_transport(exc: TransportError, *, started_stream: bool) -> errors.GatewayError:
    """Failures below HTTP, with fixed messages: library text can name internal hosts."""
    if isinstance(exc, ConnectFailed):
        if exc.pool:
            return errors.UpstreamUnavailable(
                "No upstream connection became free in time.", code="upstream_pool_timeout"
            )
        return errors.UpstreamUnavailable("Could not connect to the upstream.", code="upstream_connect_error")
    if isinstance(exc, ReadTimedOut):
        return errors.UpstreamTimeout("The upstream did not answer in time.")
    if started_stream:
        return errors.IncompleteStream("The upstream connection broke before the stream ended.")
    return errors.UpstreamUnavailable("The upstream connection failed.", code="upstream_connect_error")


def malformed_event(event: str) -> errors.GatewayError:
    """A reply or stream event the upstream sent that does not parse as its documented shape."""
    return errors.UpstreamError(f"The upstream sent a malformed `{event}` event.")


# What upstream error text may not carry to a client, a log line or a span: anything
# that looks like a credential, and addresses that name the inside of a network.
_SCRUB = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 [redacted]"),
    (
        re.compile(r"(?i)((?:x-)?api[-_]?key|authorization|token|secret|password)([\"']?\s*[:=]\s*[\"']?)[^\s\"',;]+"),
        r"\1\2[redacted]",
    ),
    (re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{8,}"), "[redacted]"),
    (re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s\"'<>]+"), "[url]"),
    (re.compile(r"\[[0-9a-fA-F:]{2,}\](?::\d+)?|\b(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{1,4}\b"), "[address]"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "[address]"),
    (
        re.compile(
            r"(?i)\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:internal|local|localdomain|lan|corp|svc|cluster\.local)(?::\d+)?\b"
        ),
        "[host]",
    ),
)
MAX_UPSTREAM_TEXT = 500  # characters of upstream error text passed on


_CREDENTIALS = _SCRUB[:3]  # bearer tokens, `api-key=...` and the like, `sk-...` keys: not addresses


def redact_credentials(body: bytes, secrets: tuple[str, ...] = ()) -> bytes:
    """An upstream answer passed through as sent, but for any credential it quotes (the gateway's own
    keys, tokens, `sk-...`): nothing else is touched, and a body that quotes none is returned as is."""
    text = body.decode("utf-8", "surrogateescape")
    redacted = text
    for secret in secrets:
        if secret:
            redacted = redacted.replace(secret, "[redacted]")
    for pattern, replacement in _CREDENTIALS:
        redacted = pattern.sub(replacement, redacted)
    return body if redacted == text else redacted.encode("utf-8", "surrogateescape")


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Upstream text made safe to show: known secrets, credential-like strings and internal addresses removed."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    for pattern, replacement in _SCRUB:
        text = pattern.sub(replacement, text)
    return text if len(text) <= MAX_UPSTREAM_TEXT else text[: MAX_UPSTREAM_TEXT - 1] + "…"
