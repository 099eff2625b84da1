"""Upstream error mapping, one row of the table in docs/errors.md per case."""

from __future__ import annotations

import json

import pytest

from service.core import errors
from service.providers.anthropic.errors import error_from_event, error_from_response
from service.transport.errors import error_from_transport
from service.transport.http import ConnectFailed, ConnectionBroken, ReadTimedOut, TransportError


def body(kind: str, message: str = "msg", **extra: object) -> bytes:
    return json.dumps(
        {"type": "error", "error": {"type": kind, "message": message, **extra}, "request_id": "req_1"}
    ).encode()


@pytest.mark.parametrize(
    ("status", "payload", "cls", "code"),
    [
        (400, body("invalid_request_error"), errors.InvalidRequest, "upstream_invalid_request"),
        (
            400,
            body("invalid_request_error", "prompt is too long: 300000 tokens"),
            errors.InvalidRequest,
            "context_length_exceeded",
        ),
        (401, body("authentication_error"), errors.UpstreamAuthFailed, "upstream_authentication_failed"),
        (403, body("permission_error"), errors.PermissionDenied, "model_access_denied"),
        (404, body("not_found_error", "model: x"), errors.ModelNotFound, "model_not_found"),
        (413, b"<html>413 Request Entity Too Large</html>", errors.RequestTooLarge, "request_too_large"),
        (429, body("rate_limit_error"), errors.RateLimited, "upstream_rate_limited"),
        (
            429,
            body("rate_limit_error", "spend limit reached", details={"error_code": "enforced_spend_limit_reached"}),
            errors.QuotaExceeded,
            "insufficient_quota",
        ),
        (500, body("api_error"), errors.UpstreamError, "upstream_error"),
        (529, body("overloaded_error"), errors.UpstreamOverloaded, "server_overloaded"),
        (409, body("conflict_error"), errors.UpstreamRejected, "conflict_error"),
        (402, body("billing_error"), errors.UpstreamRejected, "billing_error"),
        (503, b"<html>Service Unavailable</html>", errors.UpstreamUnavailable, "upstream_unavailable"),
        (418, body("teapot_error"), errors.UpstreamRejected, "teapot_error"),
    ],
    ids=lambda v: str(v)[:30] if not isinstance(v, bytes) else "",
)
def test_status_and_body_map_to_one_error(status: int, payload: bytes, cls: type, code: str) -> None:
    error = error_from_response(status, {"request-id": "req_1", "retry-after": "3"}, payload)
    assert type(error) is cls
    assert error.code == code
    assert error.upstream_status == status and error.upstream_request_id == "req_1"


def test_rate_limit_keeps_retry_after() -> None:
    assert error_from_response(429, {"retry-after": "7"}, body("rate_limit_error")).retry_after == 7.0


def test_upstream_auth_failure_never_echoes_the_upstream_message() -> None:
    error = error_from_response(401, {}, body("authentication_error", "invalid x-api-key sk-ant-secret"))
    assert "sk-ant" not in error.message


def test_non_json_bodies_give_a_safe_message() -> None:
    error = error_from_response(502, {}, b"<html>internal-lb-7.corp</html>")
    assert "corp" not in error.message and "502" in error.message


def test_mid_stream_error_events_are_classified_by_type() -> None:
    assert isinstance(error_from_event(body("overloaded_error"), None), errors.UpstreamOverloaded)
    assert isinstance(error_from_event(body("api_error"), None), errors.UpstreamError)
    assert isinstance(error_from_event(b"not json", None), errors.UpstreamError)


@pytest.mark.parametrize(
    ("exc", "cls", "code"),
    [
        (ConnectFailed("x"), errors.UpstreamUnavailable, "upstream_connect_error"),
        (ConnectFailed("x", pool=True), errors.UpstreamUnavailable, "upstream_pool_timeout"),
        (ReadTimedOut("x"), errors.UpstreamTimeout, "upstream_timeout"),
        (ConnectionBroken("x"), errors.UpstreamUnavailable, "upstream_connect_error"),
    ],
)
def test_transport_failures(exc: TransportError, cls: type, code: str) -> None:
    error = error_from_transport(exc, started_stream=False)
    assert (type(error), error.code) == (cls, code)


def test_a_broken_connection_after_the_stream_started_is_an_incomplete_stream() -> None:
    error = error_from_transport(ConnectionBroken("peer closed"), started_stream=True)
    assert isinstance(error, errors.IncompleteStream) and error.code == "incomplete_stream"
