"""The request lifecycle every HTTP chat surface shares, with its one error and outcome boundary.

A surface is an API dialect (OpenAI Chat Completions today; the Anthropic
Messages and OpenAI Responses APIs next): it parses its wire format into a
``chatgate.v1`` request and renders answers, stream frames and errors in its
own shape. Everything else happens here, once: authentication, the body limit,
disconnect watching and cancellation, metrics, and the choice of how a failure
reaches the client.

The contracts it keeps (docs/errors.md): nothing is sent before the first
upstream event, so early errors keep their status; a disconnect cancels the
upstream call in every phase; a failed stream ends with an error frame, never
a bare cut; a complete answer is never followed by an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from service.core import ChatService
from service.core.auth import KeyChecker
from service.core.compat import Adjustment, describe
from service.core.errors import GatewayError, InternalError, InvalidRequest, ShuttingDown
from service.core.exchange import ATTRIBUTION_HEADERS, Exchange, attribution_value, request_id_from
from service.core.provider import UpstreamInfo
from service.observability import Observed

from .asgi import ClientGone, DisconnectWatcher, Receive, Scope, Send, TrackedSend, header, read_body, send_json
from .errors import error_headers

log = logging.getLogger("chatgate.http")


DEADLINE_HEADER = b"x-chatgate-timeout-ms"
MAX_DEADLINE_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class HttpSettings:
    max_body_bytes: int
    heartbeat: float = 0.0  # seconds of silence before a stream gets a keep-alive frame; 0: never
    log_content: bool = False  # request bodies in the access log (off unless the operator asks)
    metrics_route: bool = True  # `/metrics` on this listener (off when an admin listener serves it)
    # Answers `GET /admin/usage` (the ledger's totals) from the Authorization header and the query;
    # raises GatewayError (a missing or wrong admin key, a bad query). None: no such route.
    usage: Callable[[str | None, Mapping[str, str]], Awaitable[list[dict[str, Any]]]] | None = None


@dataclass(slots=True)
class ChatCall:
    """A parsed request: what to ask the core, how to answer, and what the gateway ignored."""

    # What the surface's `parse` made (a ChatCompletionRequest, a NativeRequest, a ResponsesRequest);
    # the same surface reads it back.
    request: object
    stream: bool
    ignored: list[str] = field(default_factory=list)
    deadline: float | None = None  # monotonic; from the deadline header
    strict: bool | None = None  # native requests: the client's policy, if it chose (chat requests carry theirs)
    opened: OpenedStream | None = None  # what `open` returned, once it did (a failed stream's last frame needs it)


class OpenedStream(Protocol):
    """What the lifecycle needs of a streamed answer (the core's ``UpstreamStream`` is one)."""

    @property
    def adjustments(self) -> list[Adjustment]: ...

    @property
    def upstream(self) -> UpstreamInfo: ...

    def overhead_ms(self) -> float: ...

    def __aiter__(self) -> AsyncIterator[Any]: ...

    async def __anext__(self) -> Any: ...

    async def aclose(self) -> None: ...


class Surface(Protocol):
    """One API dialect over HTTP. Translation only: no I/O, no error handling of its own.

    ``run`` and ``open`` say which use case serves the dialect (translated chat, or the
    native relay); what they return (a result, a stream of batches) goes back to the same
    surface's ``completion``, ``frames`` and ``end_of_stream``."""

    @property
    def stream_headers(self) -> list[tuple[bytes, bytes]]:
        """The response headers of a stream (content type and proxy hints)."""
        ...

    @property
    def request_id_header(self) -> bytes | None:
        """The dialect's own request id header, sent beside `x-request-id` when the answer has none."""
        ...

    def parse(self, body: bytes, scope: Scope) -> ChatCall:
        """The request body (and headers) as a core request; raises ``GatewayError`` on bad input."""
        ...

    async def run(self, chat: ChatService, call: ChatCall, exchange: Exchange) -> Any:
        """The whole answer from the core (a ``ChatResult`` or a ``RelayResult``)."""
        ...

    def open(self, chat: ChatService, call: ChatCall, exchange: Exchange) -> OpenedStream:
        """The streamed answer from the core; nothing is called upstream until its first batch."""
        ...

    def completion(self, result: Any) -> bytes: ...

    def frames(self, batch: Any) -> bytes:
        """One batch as the bytes of its stream frames (keep-alives included)."""
        ...

    def end_of_stream(self, stream: Any) -> bytes: ...

    def error_status(self, error: GatewayError) -> int:
        """The HTTP status this dialect gives the error."""
        ...

    @property
    def keep_alive(self) -> bytes:
        """A frame clients ignore, written when a stream has been silent (an SSE comment)."""
        ...

    def error_body(self, error: GatewayError) -> bytes: ...

    def error_frame(self, error: GatewayError, stream: Any = None) -> bytes:
        """The last frame of a stream that failed after it started (``stream``: what ``open`` returned)."""
        ...


def report_headers(adjusted: str, upstream: dict[str, str]) -> dict[str, str]:
    headers = dict(upstream)
    if adjusted:
        headers["x-chatgate-adjusted"] = adjusted
    return headers


class ChatEndpoint:
    """A chat surface's route as a plain ASGI app, around the shared lifecycle.

    Plain ASGI because the contracts need control that a response class hides:
    when the status line goes out, and what happens on disconnect.
    """

    def __init__(self, surface: Surface, chat: ChatService, keys: KeyChecker, settings: HttpSettings) -> None:
        self.surface = surface
        self.chat = chat
        self.keys = keys
        self.settings = settings
        self.heartbeat = Heartbeat(surface.keep_alive, settings.heartbeat) if settings.heartbeat else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        exchange = open_exchange(scope)
        out = TrackedSend(send, exchange, self.surface.request_id_header)
        watcher: DisconnectWatcher | None = None
        call: ChatCall | None = None
        with Observed(exchange) as observed:
            try:
                call = await self._read(scope, receive, exchange)
                watcher = DisconnectWatcher(receive)
                if call.stream:
                    observed.streaming()
                    await self._stream(call, watcher, out, exchange)
                else:
                    await self._complete(call, watcher, out, exchange)
            except ClientGone:
                exchange.outcome = "client_disconnected"
            except asyncio.CancelledError:
                if watcher is None or not watcher.gone:  # the server's shutdown grace ran out
                    exchange.outcome = "shutting_down"
                    await self._fail(
                        out, ShuttingDown("The gateway is shutting down; send the request again."), call=call
                    )
                    raise
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                exchange.outcome = "client_disconnected"
                log.info("client disconnected; upstream request cancelled")
            except GatewayError as error:
                exchange.outcome = error.code
                await self._fail(out, error, watcher, call)
            except Exception:
                # Our own bug, never an upstream fault: logged with its traceback, reported as 500.
                log.exception("unexpected failure serving %s", scope.get("path"))
                exchange.outcome = "internal_error"
                failure = InternalError("The gateway failed unexpectedly; the error was logged.")
                await self._fail(out, failure, watcher, call)
            finally:
                if watcher is not None:
                    watcher.close() if out.finished else watcher.abandon()

    async def _fail(
        self,
        out: TrackedSend,
        error: GatewayError,
        watcher: DisconnectWatcher | None = None,
        call: ChatCall | None = None,
    ) -> None:
        """A JSON error if nothing was sent, an error frame if a stream started, nothing if the answer is complete."""
        if watcher is not None:
            watcher.close()
        if out.finished:
            return
        with contextlib.suppress(OSError, RuntimeError):  # the client may be gone already
            if not out.started:
                status = self.surface.error_status(error)
                await send_json(out, status, self.surface.error_body(error), error_headers(error, status))
            else:
                log.warning("stream failed after it started: %s (%s)", error.code, type(error).__name__)
                frame = self.surface.error_frame(error, call.opened if call is not None else None)
                await out({"type": "http.response.body", "body": frame, "more_body": False})

    async def _read(self, scope: Scope, receive: Receive, exchange: Exchange) -> ChatCall:
        if self.keys.enabled:
            exchange.caller = self.keys.check(header(scope, b"authorization"), header(scope, b"x-api-key"))
        content_type = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise InvalidRequest(
                "The request body must be JSON, sent with `Content-Type: application/json`.",
                code="invalid_content_type",
            )
        deadline = deadline_of(scope)
        body = await read_body(receive, scope, self.settings.max_body_bytes)
        exchange.bytes_in = len(body)
        if self.settings.log_content:
            exchange.content = body.decode("utf-8", "replace")
        call = self.surface.parse(body, scope)
        call.deadline = deadline
        if call.ignored:
            log.info("ignored unknown request fields: %s", ", ".join(call.ignored))
        return call

    async def _complete(self, call: ChatCall, watcher: DisconnectWatcher, out: TrackedSend, exchange: Exchange) -> None:
        result = await self.surface.run(self.chat, call, exchange)
        exchange.upstream_seconds = result.upstream.seconds
        body = self.surface.completion(result)
        exchange.adjusted = describe(result.adjustments, call.ignored)
        headers = report_headers(exchange.adjusted, result.upstream.headers)
        headers["x-chatgate-overhead-ms"] = f"{result.overhead_ms():.3f}"
        watcher.close()
        await send_json(out, 200, body, headers)

    async def _stream(self, call: ChatCall, watcher: DisconnectWatcher, out: TrackedSend, exchange: Exchange) -> None:
        stream = call.opened = self.surface.open(self.chat, call, exchange)
        heartbeat = self.heartbeat
        try:
            first = await anext(stream, None)  # the upstream call starts here; errors still get a status
            exchange.adjusted = describe(stream.adjustments, call.ignored)
            headers = report_headers(exchange.adjusted, stream.upstream.headers)
            raw_headers = self.surface.stream_headers + [(k.encode(), v.encode()) for k, v in headers.items()]
            await out({"type": "http.response.start", "status": 200, "headers": raw_headers})
            if heartbeat is not None:
                heartbeat.join(out)
            batch = first
            while batch is not None:  # one write per batch: what one upstream read produced
                await out({"type": "http.response.body", "body": self.surface.frames(batch), "more_body": True})
                batch = await anext(stream, None)
            end = self.surface.end_of_stream(stream)
            if heartbeat is not None:
                heartbeat.leave(out)
            watcher.close()
            await out({"type": "http.response.body", "body": end, "more_body": False})
        finally:
            if heartbeat is not None:
                heartbeat.leave(out)
            exchange.upstream_seconds = stream.upstream.seconds
            await stream.aclose()


class Heartbeat:
    """Keep-alive frames for started streams that have been silent for ``interval`` seconds
    (a model thinking, say), so idle-timeout proxies do not cut them.

    One ticker task per process serves every open stream; a stream only joins and
    leaves a set, and costs nothing per write: the ticker, four times per interval,
    reads each stream's count of bytes sent and stamps the time it last changed. A
    silence is therefore noticed between one and one and a half intervals after the
    last write. The ticker sleeps while no stream is open.
    """

    __slots__ = ("_frame", "_interval", "_open", "_pings", "_ticker")

    def __init__(self, frame: bytes, interval: float) -> None:
        self._frame, self._interval = frame, interval
        # stream -> (its bytes sent when last looked at, loop time they last changed)
        self._open: dict[TrackedSend, tuple[int, float]] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._pings: set[asyncio.Task[None]] = set()  # one slow client must not hold up the others

    def join(self, out: TrackedSend) -> None:
        loop = asyncio.get_running_loop()
        self._open[out] = (out.exchange.bytes_out, loop.time())
        if self._ticker is None or self._ticker.done():
            self._ticker = loop.create_task(self._tick())

    def leave(self, out: TrackedSend) -> None:
        self._open.pop(out, None)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while self._open:
            await asyncio.sleep(self._interval / 4)
            now = loop.time()
            for out, (seen, since) in list(self._open.items()):
                sent = out.exchange.bytes_out
                if sent != seen:
                    self._open[out] = (sent, now)
                elif now - since >= self._interval and not out.finished and out in self._open:
                    self._open[out] = (sent, now)
                    ping = loop.create_task(self._ping(out))
                    self._pings.add(ping)
                    ping.add_done_callback(self._pings.discard)

    async def _ping(self, out: TrackedSend) -> None:
        with contextlib.suppress(Exception):  # the client may be gone; its request ends on its own
            await out({"type": "http.response.body", "body": self._frame, "more_body": True})


def open_exchange(scope: Scope) -> Exchange:
    """The request's exchange: its id (the client's `x-request-id` if well-formed) and trace parent."""
    request_id = traceparent = None
    attributed: list[tuple[bytes, bytes]] | None = None  # made only when a client attributes (most do not)
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            request_id = value.decode("latin-1")
        elif key == b"traceparent":
            traceparent = value.decode("latin-1")
        elif key in ATTRIBUTION_KEYS:
            attributed = [*(attributed or ()), (key, value)]
    exchange = Exchange(request_id_from(request_id), "http", scope["path"])
    if traceparent:
        exchange.traceparent = traceparent
    if attributed is not None:
        for key, value in attributed:
            setattr(exchange, ATTRIBUTION_KEYS[key], attribution_value(value.decode("latin-1")))
    return exchange


ATTRIBUTION_KEYS = {name.encode(): field_name for name, field_name in ATTRIBUTION_HEADERS.items()}


def deadline_of(scope: Scope) -> float | None:
    """The client's deadline from ``x-chatgate-timeout-ms`` (milliseconds from now), as a monotonic time."""
    value = header(scope, DEADLINE_HEADER)
    if value is None:
        return None
    if not value.strip().isdigit() or not 0 < int(value) <= MAX_DEADLINE_MS:
        raise InvalidRequest(
            f"`x-chatgate-timeout-ms` must be a whole number of milliseconds from 1 to {MAX_DEADLINE_MS}.",
            param="x-chatgate-timeout-ms",
            code="invalid_value",
        )
    return time.monotonic() + int(value) / 1000
