"""GatewayError -> gRPC status code and google.rpc.Status details, in one place (docs/errors.md)."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from service.core import errors
from service.proxy import unserved_headers

DOMAIN = "chatgate.dev"
STATUS_DETAILS_KEY = "grpc-status-details-bin"

# Codes chosen by meaning (docs/errors.md), never by running the HTTP -> gRPC
# table backwards.
CODES: dict[type[errors.GatewayError], grpc.StatusCode] = {
    errors.InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    errors.AuthenticationFailed: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.ModelNotFound: grpc.StatusCode.NOT_FOUND,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.RequestTooLarge: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotSupported: grpc.StatusCode.UNIMPLEMENTED,
    errors.ClientError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.UpstreamAuthFailed: grpc.StatusCode.INTERNAL,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.InternalError: grpc.StatusCode.INTERNAL,
    errors.ServerError: grpc.StatusCode.UNAVAILABLE,
    errors.GatewayError: grpc.StatusCode.INTERNAL,
}
UPSTREAM_STATUS_CODES = {402: grpc.StatusCode.FAILED_PRECONDITION, 409: grpc.StatusCode.ABORTED}


def status_code(error: errors.GatewayError) -> grpc.StatusCode:
    if isinstance(error, errors.UpstreamRejected) and error.upstream_status in UPSTREAM_STATUS_CODES:
        return UPSTREAM_STATUS_CODES[error.upstream_status]
    for cls in type(error).__mro__:
        if cls in CODES:
            return CODES[cls]
    return grpc.StatusCode.INTERNAL


def _packed(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def rich_status(
    error: errors.GatewayError, request_id: str = ""
) -> tuple[grpc.StatusCode, str, tuple[tuple[str, bytes | str], ...]]:
    """The code, message and trailing metadata (with ``grpc-status-details-bin``) for an abort."""
    code = status_code(error)
    metadata = {"type": error.type}
    if error.param:
        metadata["param"] = error.param
    if error.upstream_status:
        metadata["upstream_status"] = str(error.upstream_status)
    details = [_packed(error_details_pb2.ErrorInfo(reason=error.code, domain=DOMAIN, metadata=metadata))]
    if error.param and isinstance(error, errors.ClientError):
        violation = error_details_pb2.BadRequest.FieldViolation(field=error.param, description=error.message)
        details.append(_packed(error_details_pb2.BadRequest(field_violations=[violation])))
    trailers: list[tuple[str, bytes | str]] = list(unserved_headers(error))  # a proxy may retry elsewhere
    if error.retries_spent:
        trailers.append(("grpc-retry-pushback-ms", "-1"))  # the gateway retried already: no client retry
    elif error.retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(int(error.retry_after * 1000))
        details.append(_packed(error_details_pb2.RetryInfo(retry_delay=delay)))
        # At least 1 ms: gRPC-core clients given a pushback of 0 never retry and wait out their deadline.
        trailers.append(("grpc-retry-pushback-ms", str(max(1, int(error.retry_after * 1000)))))
    elif not error.retryable and code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        trailers.append(("grpc-retry-pushback-ms", "-1"))  # tells gRPC clients not to retry
    if request_id or error.upstream_request_id:
        # The gateway's id names the request; the upstream's, when there is one, rides along.
        upstream = f"upstream request id {error.upstream_request_id}" if error.upstream_request_id else ""
        info = error_details_pb2.RequestInfo(request_id=request_id or error.upstream_request_id, serving_data=upstream)
        details.append(_packed(info))
    message = error.message if not error.param else f"{error.message} (field: {error.param})"
    status = status_pb2.Status(code=code_pb2.Code.Value(code.name), message=message, details=details)
    trailers.append((STATUS_DETAILS_KEY, status.SerializeToString()))
    return code, message, tuple(trailers)
