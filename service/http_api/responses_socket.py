"""The Responses API over a WebSocket (`GET /v1/responses` upgraded), as Codex (`supports_websockets`)
and the Agents SDK (`use_responses_websocket`) speak it: one socket per conversation, a
`response.create` frame per turn (the `POST /v1/responses` body, flat beside `type`), and the same
typed `response.*` events back, one JSON text frame each. Several responses follow one another on a
socket; one is in flight at a time.

Each response is a request like any other: its own request id, caller authentication (from the
upgrade's headers), limits, retries, ledger entry, access line, metrics and trace, through the
Responses surface and the one pipeline. What a socket adds is memory of its last response: a
`previous_response_id` naming it continues it even when it was not stored (`store: false`), as the
API's WebSocket mode allows, so a client sends only the new items each turn.

Draining: an idle socket is closed at once with 1001 (going away), a busy one right after its
response completes; the gateway waits for those responses before the server stops. Heartbeats are
the WebSocket protocol's own pings (uvicorn's, every 20 s), so idle sockets stay open through proxies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from service.codecs.responses_output import Envelope, OutputBuilder
from service.core import ChatService
from service.core.auth import KeyChecker
from service.core.compat import describe
from service.core.errors import GatewayError, InternalError, InvalidRequest, ShuttingDown
from service.core.exchange import Exchange, new_request_id
from service.core.lifecycle import Lifecycle
from service.core.responses import Json
from service.observability import Observed

from .asgi import Scope, header
from .errors import http_status
from .lifecycle import ChatCall, open_exchange
from .openai_responses import OpenAIResponses, ResponsesStream, responses_request

log = logging.getLogger("chatgate.http")
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
GOING_AWAY = 1001
POLICY = 1008  # a socket whose upgrade failed authentication
DRAIN_POLL = 0.1  # seconds between an idle socket's looks at the drain flag


class OpenSockets:
    """The sockets this process holds, so a drain can close the idle ones and wait for the busy ones."""

    def __init__(self) -> None:
        self._busy: set[asyncio.Event] = set()  # one per response in flight; set when it ends

    def busy(self) -> asyncio.Event:
        done = asyncio.Event()
        self._busy.add(done)
        return done

    def idle(self, done: asyncio.Event) -> None:
        done.set()
        self._busy.discard(done)

    async def drained(self) -> None:
        """Returns once every response in flight on a socket has ended (the caller bounds the wait)."""
        while self._busy:
            await next(iter(self._busy)).wait()


class ResponsesSocket:
    """`/v1/responses` as a WebSocket endpoint (plain ASGI, `websocket` scope)."""

    def __init__(
        self,
        surface: OpenAIResponses,
        chat: ChatService,
        keys: KeyChecker,
        lifecycle: Lifecycle,
        sockets: OpenSockets,
        max_body_bytes: int,
    ) -> None:
        self.surface, self.chat, self.keys, self.lifecycle = surface, chat, keys, lifecycle
        self.sockets, self.max_body_bytes = sockets, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        try:
            caller = self.keys.check(header(scope, b"authorization"), header(scope, b"x-api-key"))
        except GatewayError as error:
            await refuse(scope, send, error)
            return
        await send({"type": "websocket.accept"})
        session = Session(self, scope, send, caller)
        frames: asyncio.Task[dict[str, Any]] | None = None
        try:
            while True:
                frames = frames or asyncio.ensure_future(receive())
                done, _ = await asyncio.wait({frames}, timeout=DRAIN_POLL)
                if not done:
                    if self.lifecycle.draining:  # idle while draining: the client reconnects elsewhere
                        await session.close(GOING_AWAY, "the gateway is draining; reconnect")
                        return
                    continue
                message, frames = frames.result(), None
                if message["type"] == "websocket.disconnect":
                    return
                # The socket is read while the response runs: a client that leaves cancels it (and the
                # upstream call) at once, even while the model is silent; a frame sent meanwhile waits.
                frames = asyncio.ensure_future(receive())
                served = asyncio.ensure_future(session.turn(message.get("text") or message.get("bytes") or b""))
                await asyncio.wait({served, frames}, return_when=asyncio.FIRST_COMPLETED)
                if not served.done() and frames.result()["type"] == "websocket.disconnect":
                    served.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await served
                    return
                await served
                if self.lifecycle.draining:
                    await session.close(GOING_AWAY, "the gateway is draining; reconnect")
                    return
        finally:
            if frames is not None:
                frames.cancel()
                with contextlib.suppress(BaseException):
                    await frames


class Session:
    """One socket's conversation: its caller, and its last response (for `previous_response_id`)."""

    def __init__(self, endpoint: ResponsesSocket, scope: Scope, send: Send, caller: Any) -> None:
        self.endpoint, self.scope, self.send, self.caller = endpoint, scope, send, caller
        self.last_id: str | None = None
        # The whole conversation up to the last response, when it was not stored (else the store has it).
        self.last_items: list[Json] | None = None
        self.closed = False
        self.warming = False  # the frame being served asked for no generation (`generate: false`)

    async def close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):
                await self.send({"type": "websocket.close", "code": code, "reason": reason})

    async def frame(self, payload: bytes, exchange: Exchange) -> None:
        if not exchange.first_byte:
            exchange.first_byte = time.monotonic()
        exchange.bytes_out += len(payload)
        await self.send({"type": "websocket.send", "text": payload.decode()})

    async def events(self, sse: bytes, exchange: Exchange) -> None:
        """The surface's SSE-framed events as one text frame each (the `data` line is the event's JSON)."""
        for block in sse.split(b"\n\n"):
            for line in block.split(b"\n"):
                if line.startswith(b"data: "):
                    await self.frame(line[6:], exchange)

    async def turn(self, raw: str | bytes) -> None:
        """One `response.create` frame: a response, streamed back as events, with its own exchange."""
        if steering(raw):
            await self.refuse_steer(raw)
            return
        endpoint = self.endpoint
        exchange = open_exchange(self.scope)
        # Each response is a request of its own: never the upgrade's `x-request-id` twice.
        exchange.request_id = new_request_id()
        exchange.caller = self.caller
        exchange.bytes_in = len(raw)
        exchange.status = "101"
        done = endpoint.sockets.busy()
        with Observed(exchange) as observed:
            observed.streaming()
            stream: ResponsesStream | None = None
            try:
                call = self.parse(raw)
                if endpoint.lifecycle.draining:
                    raise ShuttingDown("The gateway is draining; reconnect and send the request again.")
                if self.warming:
                    await self.warm(call, exchange)
                    return
                stream = endpoint.surface.open(endpoint.chat, call, exchange)
                call.opened = stream
                async for batch in stream:
                    await self.events(batch, exchange)
                exchange.adjusted = describe(stream.adjustments, call.ignored)
                self.remember(call, stream)
            except GatewayError as error:
                exchange.outcome = error.code
                exchange.status = str(http_status(error))
                await self.failed(error, stream, exchange)
            except OSError:  # the client left mid-response (uvicorn's ClientDisconnected): the upstream call ends below
                exchange.outcome = "client_disconnected"
                self.closed = True
            except asyncio.CancelledError:  # the socket saw the client leave while the response ran
                exchange.outcome = "client_disconnected"
                self.closed = True
                raise
            except Exception:
                log.exception("unexpected failure serving a Responses socket frame")
                exchange.outcome = "internal_error"
                await self.failed(
                    InternalError("The gateway failed unexpectedly; the error was logged."), stream, exchange
                )
            finally:
                if stream is not None:
                    exchange.upstream_seconds = stream.upstream.seconds
                    await stream.aclose()
                endpoint.sockets.idle(done)

    async def refuse_steer(self, raw: str | bytes) -> None:
        """`response.steer` (queued input for a continuation of a response in flight) is answered
        `response.steer.failed` with `steering_not_supported`, which the API lets clients expect:
        the client sends the input with its next `response.create` instead."""
        frame = orjson.loads(raw)
        steer = {"input": frame.get("input"), "previous_response_id": frame.get("previous_response_id")}
        failed = {
            "type": "response.steer.failed",
            "sequence_number": 0,
            "error": {
                "type": "invalid_request_error",
                "code": "steering_not_supported",
                "message": "This gateway does not steer responses; send the input with the next response.create.",
            },
            "steer": steer,
        }
        await self.send({"type": "websocket.send", "text": orjson.dumps(failed).decode()})

    def parse(self, raw: str | bytes) -> ChatCall:
        endpoint = self.endpoint
        if len(raw) > endpoint.max_body_bytes:
            raise InvalidRequest(f"The frame is larger than this gateway's limit of {endpoint.max_body_bytes} bytes.")
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise InvalidRequest("The frame is not valid JSON.", code="invalid_json") from None
        if not isinstance(frame, dict) or frame.get("type") != "response.create":
            raise InvalidRequest("Send `response.create` frames on this socket.", param="type", code="invalid_value")
        nested = frame.get("response")
        given: dict[str, Any] = nested if isinstance(nested, dict) else frame
        self.warming = given.get("generate") is False
        body = {k: v for k, v in given.items() if k not in ("type", "stream", "background", "generate")}
        call = endpoint.surface.parse(orjson.dumps(body), self.scope)
        call.stream = True
        turn = responses_request(call)
        turn.stream = True
        if turn.previous_response_id and turn.previous_response_id == self.last_id and self.last_items is not None:
            turn.continues(self.last_items)  # this socket's own last response, which was not stored
        return call

    async def warm(self, call: ChatCall, exchange: Exchange) -> None:
        """`generate: false` (Codex warms a socket with it): a response with no output and nothing sent
        upstream, whose conversation the next frame may continue like any other."""
        turn = responses_request(call)
        exchange.model_asked = turn.model
        builder = OutputBuilder(Envelope.new(turn.model, turn.echo), turn.custom_tools, turn.summaries)
        builder.started()
        response = builder.finished()
        await self.events(builder.take(), exchange)
        self.last_id = response["id"]
        self.last_items = list(turn.input_items)

    def remember(self, call: ChatCall, stream: ResponsesStream) -> None:
        """The conversation so far, for a `previous_response_id` naming this response on this socket."""
        turn = responses_request(call)
        response = stream.response
        if response is None:
            return
        self.last_id = response["id"]
        stored = turn.store and self.endpoint.chat.archive is not None
        # A stored response is found in the store; one that continued a stored chain has its earlier
        # items only there. Otherwise the socket keeps the conversation itself.
        self.last_items = None if stored or turn.previous_response_id else [*turn.input_items, *response["output"]]

    async def failed(self, error: GatewayError, stream: ResponsesStream | None, exchange: Exchange) -> None:
        """An `error` event (and `response.failed` when the response had started), never a silent end."""
        with contextlib.suppress(Exception):
            if stream is not None and stream.started:
                await self.events(stream.failed(error), exchange)
            else:
                payload = {"type": "error", "status": http_status(error), "error": error_fields(error)}
                await self.frame(orjson.dumps(payload), exchange)


async def refuse(scope: Scope, send: Send, error: GatewayError) -> None:
    """The upgrade refused as an HTTP answer (the status and error JSON any request would get) where the
    server can send one, else closed with 1008 (policy violation) before it was accepted."""
    if "websocket.http.response" in scope.get("extensions", {}):
        body = orjson.dumps({"error": error_fields(error)})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "websocket.http.response.start", "status": http_status(error), "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "websocket.close", "code": POLICY, "reason": error.message[:120]})


def steering(raw: str | bytes) -> bool:
    """Whether a frame is `response.steer` (cheap: the type is looked for before anything is parsed)."""
    if b"response.steer" not in (raw if isinstance(raw, bytes) else raw.encode()):
        return False
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return isinstance(frame, dict) and frame.get("type") == "response.steer"


def error_fields(error: GatewayError) -> Json:
    return {"type": error.type, "code": error.code, "message": error.message, "param": error.param}
