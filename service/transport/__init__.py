"""Upstream plumbing every provider shares: the HTTP client seam (aiohttp or httpx),
the Server-Sent Events decoder, transport-failure mapping and the checks that tell
a malformed upstream reply from a bug of our own."""

from .errors import Malformed, error_from_transport, json_object, object_field, required_str
from .http import (
    ClientName,
    ConnectFailed,
    ConnectionBroken,
    ReadTimedOut,
    Timeouts,
    TransportError,
    UpstreamClient,
    UpstreamResponse,
    build_client,
)
from .sse import ServerSentEvent, SSEDecoder

__all__ = [
    "ClientName",
    "ConnectFailed",
    "ConnectionBroken",
    "Malformed",
    "ReadTimedOut",
    "SSEDecoder",
    "ServerSentEvent",
    "Timeouts",
    "TransportError",
    "UpstreamClient",
    "UpstreamResponse",
    "build_client",
    "error_from_transport",
    "json_object",
    "object_field",
    "required_str",
]
