"""The gateway's error tree: what went wrong, independent of any transport.

Each edge maps these classes exactly once (HTTP: status + OpenAI error JSON;
gRPC: status code + ``google.rpc.Status`` details). ``code`` is the stable
reason string both edges expose (HTTP ``error.code``, gRPC ``ErrorInfo.reason``);
``type`` is the OpenAI ``error.type`` (Anthropic's own type where one exists).

    GatewayError
    ├── ClientError                     the request can never succeed as sent
    │   ├── InvalidRequest              400 / INVALID_ARGUMENT (names `param`)
    │   ├── AuthenticationFailed        401 / UNAUTHENTICATED (gateway key)
    │   ├── PermissionDenied            403 / PERMISSION_DENIED
    │   ├── ModelNotFound               404 / NOT_FOUND
    │   ├── NotFound                    404 / NOT_FOUND (a stored response, say)
    │   ├── RequestTooLarge             413 / INVALID_ARGUMENT
    │   └── UpstreamRejected            other upstream 4xx, status kept
    ├── RateLimited                     429 / RESOURCE_EXHAUSTED (+ retry delay)
    │   └── QuotaExceeded               429, never retry / RESOURCE_EXHAUSTED
    └── ServerError                     the gateway or upstream failed
        ├── UpstreamAuthFailed          502 / INTERNAL (the gateway's own key)
        ├── UpstreamError               502 / UNAVAILABLE (upstream 5xx, bad body)
        ├── UpstreamOverloaded          503 / UNAVAILABLE (529, overloaded_error)
        ├── UpstreamUnavailable         502/503/504 / UNAVAILABLE (connect, LB)
        ├── UpstreamTimeout             504 / UNAVAILABLE
        ├── IncompleteStream            stream cut before its end / UNAVAILABLE
        ├── DeadlineExceeded            504 / DEADLINE_EXCEEDED (client deadline)
        ├── ShuttingDown                503 / UNAVAILABLE (draining; retry elsewhere)
        ├── Overloaded                  503 / UNAVAILABLE (this process is at its in-flight limit)
        ├── CircuitOpen                 503 / UNAVAILABLE (the upstream's breaker is open)
        └── InternalError               500 / INTERNAL (a gateway bug)
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error a client may see. ``message`` is safe to show."""

    type: str = "api_error"
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        retry_after: float | None = None,
        upstream_status: int | None = None,
        upstream_request_id: str | None = None,
        transient: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if type is not None:
            self.type = type
        self.retry_after = retry_after
        # Headers the answer carries beside the error (a limiter's x-ratelimit-*), name -> value.
        self.headers: dict[str, str] = {}
        self.upstream_status = upstream_status
        self.upstream_request_id = upstream_request_id
        # Whether an immediate new attempt can succeed, when the raiser knows better than
        # the class does (a key was rejected but others remain). None: decided by class.
        self.transient = transient
        # The gateway already retried this request as a client would: the edges tell the client
        # not to retry again (a retry each at the SDK and the gateway multiplies the attempts).
        self.retries_spent = False
        # The upstream's own error answer (a body, or a stream's error event data), credentials
        # redacted, for a surface that speaks the upstream's dialect and passes it through as sent.
        self.upstream_body: bytes | None = None
        # Refused by this process before anything went upstream (admission closed or full): another
        # replica can take the same request safely, so a proxy may retry it there.
        self.unserved = False

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed if sent again later."""
        return False


class ClientError(GatewayError):
    """The request cannot succeed as sent."""

    type = "invalid_request_error"
    code = "invalid_request"


class InvalidRequest(ClientError):
    """A field is missing, malformed or unsupported; ``param`` names it."""


class AuthenticationFailed(ClientError):
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(ClientError):
    type = "permission_error"
    code = "model_access_denied"


class ModelNotFound(ClientError):
    code = "model_not_found"


class NotFound(ClientError):
    """Something the request names (a stored response) does not exist for this caller."""

    code = "not_found"


class RequestTooLarge(ClientError):
    code = "request_too_large"


class NotSupported(ClientError):
    """The operation exists in the API but the model's upstream does not offer it (token
    counting on a platform without it, say): the request is fine, this route cannot serve it."""

    code = "not_supported"


class UpstreamRejected(ClientError):
    """An upstream 4xx without a more specific class; the status is kept."""


class RateLimited(GatewayError):
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    @property
    def retryable(self) -> bool:
        return True


class QuotaExceeded(RateLimited):
    """A spend or billing limit: retrying cannot help."""

    type = "insufficient_quota"
    code = "insufficient_quota"

    @property
    def retryable(self) -> bool:
        return False


class ServerError(GatewayError):
    type = "api_error"

    @property
    def retryable(self) -> bool:
        return True


class UpstreamAuthFailed(ServerError):
    """Anthropic refused the gateway's own key: the operator must act."""

    code = "upstream_authentication_failed"

    @property
    def retryable(self) -> bool:
        return False


class UpstreamError(ServerError):
    code = "upstream_error"


class UpstreamOverloaded(ServerError):
    type = "overloaded_error"
    code = "server_overloaded"


class UpstreamUnavailable(ServerError):
    code = "upstream_unavailable"


class UpstreamTimeout(ServerError):
    code = "upstream_timeout"


class IncompleteStream(ServerError):
    code = "incomplete_stream"


class DeadlineExceeded(ServerError):
    code = "deadline_exceeded"

    @property
    def retryable(self) -> bool:
        return False


class ShuttingDown(ServerError):
    type = "overloaded_error"
    code = "shutting_down"


class Overloaded(ServerError):
    """The gateway itself is at its limit of work in flight: refused at once, never queued."""

    type = "overloaded_error"
    code = "server_overloaded"


class CircuitOpen(ServerError):
    """Every usable key of the upstream failed repeatedly; calls fail fast until a probe succeeds."""

    type = "overloaded_error"
    code = "circuit_open"


class InternalError(ServerError):
    code = "internal_error"
