"""The native Anthropic Messages surface: `POST /v1/messages` and `POST /v1/messages/count_tokens`.

What Claude Code and the Anthropic SDKs speak. Bodies go upstream as the client wrote them
(the model name resolved through the catalog) and answers come back as the upstream sent
them, byte for byte; the gateway's own answers (auth, limits, unknown model, upstream
unreachable, shutting down) use Anthropic's error shape and statuses. The request lifecycle
is ``lifecycle.ChatEndpoint``'s, as for every surface.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson

from chatgate.v1 import chat_pb2
from service.core import ChatService, NativeRequest, RelayResult, RelayStream
from service.core import errors as e
from service.core.exchange import REQUEST_ID, Exchange

from .asgi import Scope, header
from .errors import http_status
from .lifecycle import ChatCall

PATH = "/v1/messages"
COUNT_PATH = "/v1/messages/count_tokens"
PING_FRAME = b'event: ping\ndata: {"type": "ping"}\n\n'
FORWARDED = (b"anthropic-version", b"anthropic-beta")
# Anthropic's error types; an upstream error keeps its own, the gateway's map by class.
ANTHROPIC_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "billing_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "rate_limit_error",
        "api_error",
        "timeout_error",
        "overloaded_error",
    }
)
BY_CLASS: tuple[tuple[type[e.GatewayError], str], ...] = (
    (e.InvalidRequest, "invalid_request_error"),
    (e.AuthenticationFailed, "authentication_error"),
    (e.PermissionDenied, "permission_error"),
    (e.ModelNotFound, "not_found_error"),
    (e.NotFound, "not_found_error"),
    (e.RequestTooLarge, "request_too_large"),
    (e.RateLimited, "rate_limit_error"),
    (e.UpstreamOverloaded, "overloaded_error"),
    (e.Overloaded, "overloaded_error"),
    (e.ShuttingDown, "overloaded_error"),
    (e.CircuitOpen, "overloaded_error"),
    (e.UpstreamTimeout, "timeout_error"),
    (e.DeadlineExceeded, "timeout_error"),
)
OVERLOADED = 529  # Anthropic's status for overload; its SDKs retry it


def error_type(error: e.GatewayError) -> str:
    for cls, kind in BY_CLASS:
        if isinstance(error, cls):
            return kind
    return error.type if error.type in ANTHROPIC_TYPES else "api_error"  # an upstream's own (billing_error...)


def error_json(error: e.GatewayError, request_id: str = "") -> bytes:
    """Anthropic's error shape: ``{"type": "error", "error": {"type", "message"}, "request_id"}``, the id
    being the one the answer's `request-id` header carries (left out when there is none)."""
    body: dict[str, Any] = {"type": "error", "error": {"type": error_type(error), "message": error.message}}
    if request_id:
        body["request_id"] = request_id
    return orjson.dumps(body)


class AnthropicMessages:
    """The dialect of Anthropic's Messages API, relayed."""

    stream_headers: ClassVar[list[tuple[bytes, bytes]]] = [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no"),
    ]
    request_id_header = b"request-id"  # what the Anthropic SDKs read (`_request_id`)
    keep_alive = PING_FRAME

    def __init__(self, operation: str = "messages") -> None:
        self.operation = operation

    def parse(self, body: bytes, scope: Scope) -> ChatCall:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise e.InvalidRequest("The request body is not valid JSON.", code="invalid_json") from None
        if not isinstance(parsed, dict):
            raise e.InvalidRequest("The request body must be a JSON object.", code="invalid_json")
        model = parsed.get("model")
        if not isinstance(model, str) or not model:
            raise e.InvalidRequest("model: Field required", param="model", code="missing_required_parameter")
        stream = self.operation == "messages" and parsed.get("stream") is True
        headers = tuple(
            (name.decode(), value.decode("latin-1")) for name, value in scope["headers"] if name in FORWARDED
        )
        query = scope.get("query_string", b"").decode("latin-1")  # `?beta=true` and the like go upstream too
        native = NativeRequest(self.operation, model, body, stream, headers, query)
        strict = (header(scope, b"x-chatgate-compatibility") or "").lower()
        return ChatCall(native, stream, strict=strict == "strict" if strict else None)

    async def run(self, chat: ChatService, call: ChatCall, exchange: Exchange) -> RelayResult:
        return await chat.relay(
            native_request(call), strict=strictness(chat, call), deadline=call.deadline, exchange=exchange
        )

    def open(self, chat: ChatService, call: ChatCall, exchange: Exchange) -> RelayStream:
        return chat.relay_stream(
            native_request(call), strict=strictness(chat, call), deadline=call.deadline, exchange=exchange
        )

    def completion(self, result: RelayResult) -> bytes:
        return result.body  # the upstream's bytes

    def frames(self, batch: bytes) -> bytes:
        return batch  # the upstream's bytes, as read

    def end_of_stream(self, stream: RelayStream) -> bytes:
        return b""  # the upstream's `message_stop` has been passed on already

    def error_status(self, error: e.GatewayError) -> int:
        if error.upstream_body is not None and error.upstream_status:
            return error.upstream_status  # the upstream's own answer: its status too
        return OVERLOADED if error_type(error) == "overloaded_error" else http_status(error)

    def error_body(self, error: e.GatewayError) -> bytes:
        """The upstream's error answer byte for byte (Claude Code's retry logic reads its wording; only a
        credential it quotes is redacted), else the gateway's own in Anthropic's shape."""
        if error.upstream_body is not None:
            return error.upstream_body
        return error_json(error, REQUEST_ID.get())  # the request's own id, set as it was opened

    def error_frame(self, error: e.GatewayError, stream: object = None) -> bytes:
        """An `event: error` frame (the upstream's own event data when it sent one): the Anthropic SDKs
        raise it as the matching error class."""
        data = error.upstream_body if error.upstream_body is not None else error_json(error)
        return b"event: error\ndata: " + data + b"\n\n"


def model_entry(model: chat_pb2.Model) -> dict[str, Any]:
    """A catalog model as Anthropic's Models API describes one."""
    created = datetime.fromtimestamp(model.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "type": "model",
        "id": model.id,
        "display_name": model.display_name,
        "created_at": created,
        "max_input_tokens": model.context_window,
        "max_tokens": model.max_output_tokens,
    }


def models_page(models: list[chat_pb2.Model], query: Mapping[str, str]) -> dict[str, Any]:
    """One page of `GET /v1/models`, paged as Anthropic pages it (`limit`, `after_id`, `before_id`)."""
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 1000:
        raise e.InvalidRequest("limit: Input should be between 1 and 1000", param="limit")
    ids = [m.id for m in models]
    start, end = 0, len(models)
    if "after_id" in query:
        start = ids.index(query["after_id"]) + 1 if query["after_id"] in ids else len(ids)
    if "before_id" in query:
        end = ids.index(query["before_id"]) if query["before_id"] in ids else 0
        start = max(start, end - limit)
    data = [model_entry(m) for m in models[start:end][:limit]]
    more = start + len(data) < end if "before_id" not in query else start > 0
    return {
        "data": data,
        "has_more": more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def native_request(call: ChatCall) -> NativeRequest:
    assert isinstance(call.request, NativeRequest)  # parsed by this surface
    return call.request


def strictness(chat: ChatService, call: ChatCall) -> bool:
    return chat.strict_by_default if call.strict is None else call.strict
