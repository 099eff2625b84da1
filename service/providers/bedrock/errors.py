"""Bedrock's error replies in Anthropic's shape, so one mapping (anthropic/errors.py) serves every route.

Bedrock answers `{"message": "..."}` and names the error in the `x-amzn-ErrorType` header
(`ThrottlingException:http://...`). A refused signature or an unknown access key is a 403 there;
for the gateway it is the same as Anthropic's 401: the operator's credential, not the client's request.
"""

from __future__ import annotations

from collections.abc import Mapping

from service.providers.anthropic.platform import ERROR_KINDS, anthropic_error, parsed_error

# Bedrock's exception names -> Anthropic's error types.
EXCEPTIONS = {
    "ThrottlingException": "rate_limit_error",
    "ServiceQuotaExceededException": "rate_limit_error",
    "ServiceUnavailableException": "overloaded_error",
    "ModelNotReadyException": "overloaded_error",
    "ModelTimeoutException": "timeout_error",
    "InternalServerException": "api_error",
    "ModelErrorException": "api_error",
    "ModelStreamErrorException": "api_error",
    "ValidationException": "invalid_request_error",
    "ResourceNotFoundException": "not_found_error",
    "AccessDeniedException": "permission_error",
    # The credential itself: the gateway's own failure, whatever the status says.
    "UnrecognizedClientException": "authentication_error",
    "InvalidSignatureException": "authentication_error",
    "IncompleteSignatureException": "authentication_error",
    "ExpiredTokenException": "authentication_error",
    "MissingAuthenticationTokenException": "authentication_error",
}
# In a stream, the same exceptions arrive with lower-camel-case names.
STREAM_EXCEPTIONS = {name[0].lower() + name[1:]: kind for name, kind in EXCEPTIONS.items()}


def error_body(status: int, headers: Mapping[str, str], body: bytes) -> bytes:
    """Anthropic's error body for a Bedrock error reply (an Anthropic-shaped one is kept as sent)."""
    anthropic, parsed = parsed_error(body)
    if anthropic:
        return body
    name = (headers.get("x-amzn-errortype") or "").split(":", 1)[0]
    message = ""
    if isinstance(parsed, dict):
        message = str(parsed.get("message") or parsed.get("Message") or "")
    if not message:
        message = f"Amazon Bedrock answered HTTP {status}" + (f" ({name})" if name else "") + "."
    kind = EXCEPTIONS.get(name) or ERROR_KINDS.get(status, "api_error")
    return anthropic_error(kind, message)
