"""Anthropic's error replies and in-stream error events -> the core's error tree (docs/errors.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from service.core import errors
from service.transport.errors import scrub

SPEND_LIMIT_MARKERS = ("spend limit", "enforced_spend_limit_reached", "credit balance")


def retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_from_response(
    status: int, headers: Mapping[str, str], body: bytes, *, secrets: tuple[str, ...] = ()
) -> errors.GatewayError:
    """An upstream non-200 reply as a ``GatewayError``. Non-JSON bodies (a proxy's
    HTML page, say) still give a useful, safe message without echoing them; the
    upstream's own text is scrubbed of credentials and internal addresses."""
    kind, message, details = _parse_error_body(body, secrets)
    request_id = headers.get("request-id")
    common: dict[str, Any] = {"upstream_status": status, "upstream_request_id": request_id}
    if message is None:
        message = f"The upstream answered HTTP {status} without an Anthropic error body."
    return error_from_kind(kind, message, status, details, retry=retry_after(headers), **common)


def error_from_event(data: bytes, request_id: str | None, secrets: tuple[str, ...] = ()) -> errors.GatewayError:
    """An in-stream ``event: error``; its status would have been what a
    non-streaming call returned for the same type."""
    kind, message, details = _parse_error_body(data, secrets)
    status = {"overloaded_error": 529, "rate_limit_error": 429, "api_error": 500}.get(kind or "", 500)
    return error_from_kind(
        kind,
        message or "The upstream reported an error mid-stream.",
        status,
        details,
        retry=None,
        upstream_status=status,
        upstream_request_id=request_id,
    )


def error_from_kind(
    kind: str | None, message: str, status: int, details: str, *, retry: float | None, **common: Any
) -> errors.GatewayError:
    lowered = (message + " " + details).lower()
    if status == 401 or kind == "authentication_error":
        return errors.UpstreamAuthFailed(
            "The upstream rejected the gateway's credentials; the operator must fix the gateway's API key.", **common
        )
    if status == 403 or kind == "permission_error":
        return errors.PermissionDenied(f"The upstream refused access: {message}", **common)
    if status == 404 or kind == "not_found_error":
        return errors.ModelNotFound(f"The upstream did not find the resource: {message}", param="model", **common)
    if status == 413 or kind == "request_too_large":
        return errors.RequestTooLarge(f"The request is too large for the upstream: {message}", **common)
    if any(marker in lowered for marker in SPEND_LIMIT_MARKERS) and status in (400, 402, 429):
        return errors.QuotaExceeded(message, **common)
    if status == 429 or kind == "rate_limit_error":
        return errors.RateLimited(message, retry_after=retry, code="upstream_rate_limited", **common)
    if status == 529 or kind == "overloaded_error":
        return errors.UpstreamOverloaded(message, retry_after=retry, **common)
    if status == 400 or kind == "invalid_request_error":
        if "prompt is too long" in lowered:
            return errors.InvalidRequest(message, param="messages", code="context_length_exceeded", **common)
        return errors.InvalidRequest(message, code="upstream_invalid_request", **common)
    if 400 <= status < 500:
        return errors.UpstreamRejected(message, type=kind or "invalid_request_error", code=kind, **common)
    if status in (502, 503, 504) and kind is None:
        return errors.UpstreamUnavailable(message, retry_after=retry, **common)
    return errors.UpstreamError(message, retry_after=retry, **common)


def _parse_error_body(body: bytes, secrets: tuple[str, ...]) -> tuple[str | None, str | None, str]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None, ""
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return None, None, ""
    details = error.get("details")
    kind, message = error.get("type"), error.get("message")
    return (
        str(kind) if kind else None,
        scrub(str(message), secrets) if message else None,
        orjson.dumps(details).decode() if details else "",
    )
