"""GatewayError -> HTTP status and headers, in one place, for every surface (docs/errors.md).

The body is each dialect's own shape; the status and the retry headers are not.
"""

from __future__ import annotations

import math

from service.core import errors
from service.proxy import unserved_headers

# Most specific class first is not needed: lookup walks each error's MRO.
STATUS: dict[type[errors.GatewayError], int] = {
    errors.InvalidRequest: 400,
    errors.AuthenticationFailed: 401,
    errors.PermissionDenied: 403,
    errors.ModelNotFound: 404,
    errors.NotFound: 404,
    errors.RequestTooLarge: 413,
    errors.NotSupported: 501,
    errors.ClientError: 400,
    errors.RateLimited: 429,
    errors.UpstreamAuthFailed: 502,
    errors.UpstreamError: 502,
    errors.UpstreamOverloaded: 503,
    errors.UpstreamUnavailable: 502,
    errors.UpstreamTimeout: 504,
    errors.IncompleteStream: 502,
    errors.DeadlineExceeded: 504,
    errors.ShuttingDown: 503,
    errors.Overloaded: 503,
    errors.CircuitOpen: 503,
    errors.InternalError: 500,
    errors.GatewayError: 500,
}


def http_status(error: errors.GatewayError) -> int:
    if isinstance(error, errors.UpstreamRejected) and error.upstream_status:
        return error.upstream_status
    if isinstance(error, errors.UpstreamUnavailable) and error.upstream_status in (502, 503, 504):
        return error.upstream_status
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_headers(error: errors.GatewayError, status: int | None = None) -> dict[str, str]:
    headers: dict[str, str] = dict(error.headers)
    if error.retry_after is not None:
        # After the gateway's own retries, "come back later" means at least a second, never 0.
        wait = max(1.0, error.retry_after) if error.retries_spent else error.retry_after
        headers["retry-after"] = str(math.ceil(wait))
        headers["retry-after-ms"] = str(int(wait * 1000))
    if (not error.retryable or error.retries_spent) and (status or http_status(error)) >= 429:
        # The OpenAI and Anthropic SDKs retry 429 and 5xx by status alone; this stops a futile
        # retry, and one that would multiply the attempts the gateway already made.
        headers["x-should-retry"] = "false"
    headers.update(unserved_headers(error))  # nothing reached the upstream: a proxy may send it elsewhere
    if error.upstream_request_id:
        headers["x-upstream-request-id"] = error.upstream_request_id
        if error.upstream_body is not None:  # the upstream's answer, passed through: its id, as the SDKs read it
            headers["request-id"] = error.upstream_request_id
    return headers
