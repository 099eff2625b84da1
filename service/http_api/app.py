"""The HTTP facade: OpenAI-compatible JSON and Server-Sent Events over the core."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chatgate.v1 import chat_pb2
from service.core import ChatService, ChatStream
from service.core.auth import KeyChecker
from service.core.compat import describe
from service.core.errors import GatewayError, InternalError, InvalidRequest, RequestTooLarge, ShuttingDown
from service.core.lifecycle import Lifecycle
from service.observability import Tracked, exposition

from .errors import error_headers, error_json, http_status
from .openai_wire import chunk_json, completion_json, model_json, request_from_json

log = logging.getLogger("chatgate.http")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CHAT_PATH = "/v1/chat/completions"
JSON_TYPE = b"application/json"
DONE_FRAME = b"data: [DONE]\n\n"
PING_FRAME = b": ping\n\n"
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # Tells nginx-style proxies not to buffer the stream.
    (b"x-accel-buffering", b"no"),
]


@dataclass(frozen=True, slots=True)
class HttpSettings:
    max_body_bytes: int = 8 * 1024 * 1024


class TrackedSend:
    """The ASGI ``send``, remembering how far the response got."""

    __slots__ = ("finished", "send", "started")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = self.finished = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        elif not message.get("more_body", False):
            self.finished = True
        await self.send(message)


async def end_on_shutdown(send: TrackedSend) -> None:
    """The server cancelled the request (its shutdown grace ran out): say so rather than just stop."""
    if send.finished:
        return
    error = ShuttingDown("The gateway is shutting down; send the request again.")
    with contextlib.suppress(Exception):
        await (send_error_frame(send, error) if send.started else send_error(send, error))


class ClientGone(Exception):
    """The client disconnected before the request body arrived in full."""


class DisconnectWatcher:
    """Cancels the request's task when the client disconnects, so the upstream
    call is abandoned at once, whether it is still waiting for the first token,
    streaming, or producing a whole reply."""

    __slots__ = ("_task", "_watcher", "finished", "gone")

    def __init__(self, receive: Receive) -> None:
        self._task = asyncio.current_task()
        self.gone = False
        self.finished = False
        self._watcher = asyncio.create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if not self.finished and self._task is not None:
            self.gone = True
            self._task.cancel()

    def close(self) -> None:
        """Call before the last send: the server reports a disconnect once the reply is complete."""
        self.finished = True
        self._watcher.cancel()


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def read_body(receive: Receive, scope: Scope, limit: int) -> bytes:
    """Reads the body, refusing it with 413 before buffering more than ``limit`` bytes."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"The request body is larger than this gateway's limit of {limit} bytes.")
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"The request body is larger than this gateway's limit of {limit} bytes.")
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


async def send_json(send: Send, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    raw = [(b"content-type", JSON_TYPE), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, error: GatewayError) -> None:
    await send_json(send, http_status(error), error_json(error), error_headers(error))


def report_headers(adjusted: str, upstream: dict[str, str]) -> dict[str, str]:
    headers = dict(upstream)
    if adjusted:
        headers["x-chatgate-adjusted"] = adjusted
    return headers


class ChatCompletionsEndpoint:
    """``POST /v1/chat/completions`` as a plain ASGI app.

    It is written against ASGI directly because the contracts need control that
    a response class hides: nothing is sent before the first upstream event (so
    early errors keep their status), a disconnect cancels the upstream call in
    every phase, and a failed stream ends with an error frame, never a bare cut.
    """

    def __init__(self, chat: ChatService, keys: KeyChecker, settings: HttpSettings) -> None:
        self.chat = chat
        self.keys = keys
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            request, stream, ignored = await self._read_request(scope, receive)
        except ClientGone:
            return
        except GatewayError as error:
            await send_error(send, error)
            return
        except Exception:
            log.exception("unexpected failure reading a chat request")
            await send_error(send, InternalError("The gateway failed unexpectedly; the error was logged."))
            return
        watcher = DisconnectWatcher(receive)
        send = TrackedSend(send)
        with Tracked("http", "stream" if stream else "unary") as tracked:
            try:
                if stream:
                    await self._stream(request, ignored, watcher, send, tracked)
                else:
                    await self._complete(request, ignored, watcher, send, tracked)
            except asyncio.CancelledError:
                if not watcher.gone:
                    tracked.outcome = "shutting_down"
                    await end_on_shutdown(send)
                    raise
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                tracked.outcome = "client_disconnected"
                log.info("client disconnected; upstream request cancelled")
            finally:
                watcher.close()

    async def _read_request(self, scope: Scope, receive: Receive) -> tuple[Any, bool, list[str]]:
        self.keys.check(header(scope, b"authorization"))
        content_type = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise InvalidRequest(
                "The request body must be JSON, sent with `Content-Type: application/json`.",
                code="invalid_content_type",
            )
        body = await read_body(receive, scope, self.settings.max_body_bytes)
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise InvalidRequest("The request body is not valid JSON.", code="invalid_json") from None
        request, stream, ignored = request_from_json(parsed)
        if beta := header(scope, b"anthropic-beta"):
            request.anthropic_beta.extend(b.strip() for b in beta.split(",") if b.strip())
        mode = (header(scope, b"x-chatgate-compatibility") or "").lower()
        if mode in ("strict", "lenient") and not request.compatibility:
            request.compatibility = (
                chat_pb2.COMPATIBILITY_STRICT if mode == "strict" else chat_pb2.COMPATIBILITY_LENIENT
            )
        if ignored:
            log.info("ignored unknown request fields: %s", ", ".join(ignored))
        return request, stream, ignored

    async def _complete(
        self, request: Any, ignored: list[str], watcher: DisconnectWatcher, send: Send, tracked: Tracked
    ) -> None:
        try:
            result = await self.chat.complete(request)
        except GatewayError as error:
            tracked.outcome = error.code
            watcher.close()
            await send_error(send, error)
            return
        except Exception:
            log.exception("unexpected failure in a chat completion")
            tracked.outcome = "internal_error"
            watcher.close()
            await send_error(send, InternalError("The gateway failed unexpectedly; the error was logged."))
            return
        tracked.upstream_seconds = result.upstream.seconds
        body = orjson.dumps(completion_json(result.completion))
        headers = report_headers(describe(result.adjustments, ignored), result.upstream.headers)
        headers["x-chatgate-overhead-ms"] = f"{result.overhead_ms():.3f}"
        watcher.close()
        await send_json(send, 200, body, headers)

    async def _stream(
        self, request: Any, ignored: list[str], watcher: DisconnectWatcher, send: Send, tracked: Tracked
    ) -> None:
        try:
            stream = self.chat.stream(request)
        except GatewayError as error:
            tracked.outcome = error.code
            watcher.close()
            await send_error(send, error)
            return
        try:
            try:
                first = await anext(stream)
            except StopAsyncIteration:
                first = None
            except GatewayError as error:  # before any byte: a real status code
                tracked.outcome = error.code
                watcher.close()
                await send_error(send, error)
                return
            headers = report_headers(describe(stream.adjustments, ignored), stream.upstream.headers)
            raw_headers = SSE_HEADERS + [(k.encode(), v.encode()) for k, v in headers.items()]
            await send({"type": "http.response.start", "status": 200, "headers": raw_headers})
            if first is not None:
                await send_frames(stream, first, send)
            # The gateway's own time, as a comment SDKs skip: headers left long ago.
            done = b": x-chatgate-overhead-ms %.3f\n\n" % stream.overhead_ms() + DONE_FRAME
            watcher.close()
            await send({"type": "http.response.body", "body": done, "more_body": False})
        except GatewayError as error:
            tracked.outcome = error.code
            watcher.close()
            await send_error_frame(send, error)
        except Exception:
            log.exception("unexpected failure in a chat completion stream")
            tracked.outcome = "internal_error"
            watcher.close()
            await send_error_frame(send, InternalError("The gateway failed unexpectedly; the error was logged."))
        finally:
            tracked.upstream_seconds = stream.upstream.seconds
            await stream.aclose()


async def send_frames(stream: ChatStream, first: list[chat_pb2.ChatCompletionChunk], send: Send) -> None:
    """One write per batch: the chunks one upstream read produced go out together."""
    batch = first
    while True:
        body = frame(batch[0]) if len(batch) == 1 else b"".join([frame(chunk) for chunk in batch])
        await send({"type": "http.response.body", "body": body, "more_body": True})
        try:
            batch = await anext(stream)
        except StopAsyncIteration:
            return


def frame(chunk: chat_pb2.ChatCompletionChunk) -> bytes:
    if not chunk.choices and not chunk.HasField("usage"):
        return PING_FRAME  # an upstream keep-alive: an SSE comment the SDKs skip
    return b"data: " + orjson.dumps(chunk_json(chunk)) + b"\n\n"


async def send_error_frame(send: Send, error: GatewayError) -> None:
    """Ends a started stream with one error frame and no ``[DONE]``: OpenAI SDKs raise on it."""
    log.warning("stream failed after it started: %s (%s)", error.code, type(error).__name__)
    body = b"data: " + error_json(error) + b"\n\n"
    await send({"type": "http.response.body", "body": body, "more_body": False})


class ChatFastPath:
    """Sends ``POST /v1/chat/completions`` straight to its endpoint, ahead of Starlette's router and
    middleware stack (the endpoint answers every error itself); everything else goes to Starlette."""

    __slots__ = ("app", "chat")

    def __init__(self, chat: ChatCompletionsEndpoint, app: Starlette) -> None:
        self.chat, self.app = chat, app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == CHAT_PATH and scope["method"] == "POST":
            await self.chat(scope, receive, send)
        else:
            await self.app(scope, receive, send)  # type: ignore[arg-type]


def create_app(
    chat: ChatService, keys: KeyChecker, lifecycle: Lifecycle, settings: HttpSettings | None = None
) -> ChatFastPath:
    settings = settings or HttpSettings()
    chat_endpoint = ChatCompletionsEndpoint(chat, keys, settings)

    async def list_models(request: Request) -> Response:
        keys.check(request.headers.get("authorization"))
        data = [model_json(m.to_proto()) for m in chat.list_models()]
        return json_response({"object": "list", "data": data})

    async def get_model(request: Request) -> Response:
        keys.check(request.headers.get("authorization"))
        return json_response(model_json(chat.get_model(request.path_params["model_id"]).to_proto()))

    async def livez(_: Request) -> Response:
        return json_response({"status": "ok"})

    async def metrics(_: Request) -> Response:
        return Response(exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def readyz(_: Request) -> Response:
        if lifecycle.ready:
            return json_response({"status": "ready"})
        return json_response({"status": "draining" if lifecycle.draining else "starting"}, status=503)

    routes = [
        Route(CHAT_PATH, chat_endpoint, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
        Route("/livez", livez, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    handlers: dict[Any, Any] = {
        GatewayError: gateway_error_response,
        HTTPException: http_exception_response,
        Exception: unexpected_error_response,
    }
    return ChatFastPath(chat_endpoint, Starlette(routes=routes, exception_handlers=handlers))


def json_response(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


async def gateway_error_response(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return Response(
        error_json(exc), status_code=http_status(exc), media_type="application/json", headers=error_headers(exc)
    )


async def http_exception_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = "unknown_url" if exc.status_code == 404 else "method_not_allowed"
    message = (
        f"Unknown request URL: {request.method} {request.url.path}."
        if exc.status_code == 404
        else f"{request.method} is not allowed on {request.url.path}."
    )
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    return Response(
        orjson.dumps(body), status_code=exc.status_code, media_type="application/json", headers=dict(exc.headers or {})
    )


async def unexpected_error_response(_: Request, exc: Exception) -> Response:
    log.error("unexpected failure: %s", type(exc).__name__, exc_info=exc)
    error = InternalError("The gateway failed unexpectedly; the error was logged.")
    return Response(error_json(error), status_code=500, media_type="application/json")
