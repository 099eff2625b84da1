"""What every ``chatgate.v1`` call goes through before and after its method, in one place.

``CallPrologue`` wraps each method of the chat service: it opens the call's ``Exchange`` (the
caller's `x-request-id` and `traceparent` metadata), observes it (metrics, access line, span,
ledger), authenticates the caller, takes the client's deadline, and runs the method inside one
``CallBoundary``, the single place where a failure becomes a gRPC status. A method reads what the
prologue prepared with ``current(context)`` and does only its own translation.

A ``GatewayError`` keeps its classification; any other exception is our own bug, logged with its
traceback and sent as ``INTERNAL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

import grpc

from chatgate.v1 import chat_pb2
from service.core.auth import KeyChecker
from service.core.errors import GatewayError, InternalError, ShuttingDown
from service.core.exchange import ATTRIBUTION_HEADERS, Exchange, attribution_value, request_id_from
from service.core.lifecycle import Lifecycle
from service.observability import Observed

from .errors import rich_status, status_code
from .heartbeat import StreamHeartbeat

log = logging.getLogger("chatgate.grpc")

Context = grpc.aio.ServicerContext[Any, Any]
Metadata = list[tuple[str, str]]
REQUEST_ID_KEY = "x-request-id"
SERVICE = "/chatgate.v1.ChatCompletionService/"


def deadline_of(context: Context) -> float | None:
    """The client's deadline as a monotonic time: gRPC Python does not pass it on by itself."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


async def abort(
    context: Context, error: GatewayError, metadata: Sequence[tuple[str, str]] = (), request_id: str = ""
) -> NoReturn:
    code, message, trailers = rich_status(error, request_id)
    if request_id:
        trailers = ((REQUEST_ID_KEY, request_id), *trailers)
    if error.headers:  # a limiter's x-ratelimit-*, as HTTP clients get them
        trailers = (*error.headers.items(), *trailers)
    await context.abort(code, message, trailing_metadata=tuple(metadata) + trailers)
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


def open_exchange(context: Context, method: str) -> Exchange:
    """The call's exchange: its id (the caller's `x-request-id` metadata if well-formed) and trace parent."""
    request_id = traceparent = None
    attributed: list[tuple[str, str]] | None = None  # made only when a client attributes (most do not)
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY:
            request_id = str(value)
        elif key == "traceparent":
            traceparent = str(value)
        elif key in ATTRIBUTION_HEADERS:
            attributed = [*(attributed or ()), (key, str(value))]
    exchange = Exchange(request_id_from(request_id), "grpc", SERVICE + method)
    if traceparent:
        exchange.traceparent = traceparent
    if attributed is not None:
        for name, value in attributed:
            setattr(exchange, ATTRIBUTION_HEADERS[name], attribution_value(value))
    return exchange


@dataclass(slots=True)
class Calls:
    """The chat calls in flight, so the end of the shutdown grace can end them with `shutting_down`."""

    lifecycle: Lifecycle
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def terminate(self) -> None:
        self.lifecycle.terminating = True
        for task in list(self.tasks):
            task.cancel()


class CallBoundary:
    """``async with CallBoundary(context, exchange, calls):`` turns whatever the body raises into one status.

    ``report`` (set once known) gives the metadata an error should still carry:
    the adjustments and the upstream's headers. Cancellation passes through
    (the client is gone, and the body's own ``finally`` releases the upstream),
    except when the server's shutdown grace ran out: then the call ends with
    UNAVAILABLE `shutting_down`, so the client knows to retry elsewhere.
    """

    __slots__ = ("calls", "context", "exchange", "report", "task")

    def __init__(self, context: Context, exchange: Exchange, calls: Calls | None = None) -> None:
        self.context = context
        self.exchange = exchange
        self.report: Callable[[], Metadata] = list
        self.calls = calls
        self.task = asyncio.current_task()

    async def __aenter__(self) -> CallBoundary:
        if self.calls is not None and self.task is not None:
            self.calls.tasks.add(self.task)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.calls is not None and self.task is not None:
            self.calls.tasks.discard(self.task)
        terminating = self.calls is not None and self.calls.lifecycle.terminating
        if isinstance(error, asyncio.CancelledError) and terminating:
            if self.task is not None:
                self.task.uncancel()
            self.exchange.outcome = "shutting_down"
            self.exchange.status = "UNAVAILABLE"
            await abort(
                self.context,
                ShuttingDown("The gateway is shutting down; send the request again."),
                request_id=self.exchange.request_id,
            )
        # CancelledError and GeneratorExit are BaseExceptions: the client left, nothing to send.
        if error is None:
            self.exchange.status = "OK"
            return
        if not isinstance(error, Exception) or isinstance(error, grpc.aio.AbortError):
            self.exchange.status = "CANCELLED" if isinstance(error, asyncio.CancelledError) else self.exchange.status
            return
        if isinstance(error, GatewayError):
            failure = error
        else:
            log.error("unexpected failure in a gRPC call", exc_info=(kind or Exception, error, trace))
            failure = InternalError("The gateway failed unexpectedly; the error was logged.")
        self.exchange.outcome = failure.code
        self.exchange.status = status_code(failure).name
        await abort(self.context, failure, self.report(), self.exchange.request_id)


@dataclass(slots=True)
class Call:
    """What the prologue prepared for the method it wraps."""

    exchange: Exchange
    deadline: float | None
    boundary: CallBoundary


# The calls in flight by their servicer context's id (unique while the call runs). Not a ContextVar:
# a second variable in every task's context cost 16k instructions per unary call here (callgrind,
# `python -m bench.instructions --kind grpc`: 1,283k -> 1,267k without it).
_CALLS: dict[int, Call] = {}
# What a silent server stream of each method is sent to keep it alive: a message clients skip.
KEEP_ALIVE: dict[str, Any] = {"StreamChatCompletion": chat_pb2.ChatCompletionChunk()}


def current(context: Context) -> Call:
    """The running call's exchange, deadline and boundary (set by ``CallPrologue``)."""
    return _CALLS[id(context)]


Unary = Callable[[Any, Context], Awaitable[Any]]
Streaming = Callable[[Any, Context], AsyncGenerator[Any, None]]


if TYPE_CHECKING:  # generic only in the stubs
    Handler = grpc.RpcMethodHandler[Any, Any]
else:
    Handler = grpc.RpcMethodHandler


class CallPrologue:
    """Gives every method of the chat service its exchange, caller, deadline and boundary.

    It wraps each method's handler once, when the service is registered (``wrap``), rather than
    as a ``grpc.aio.ServerInterceptor``: the interceptor's dispatch runs for every call and cost
    58k instructions per unary call here (callgrind, ``python -m bench.instructions --kind grpc``:
    1,260k -> 1,318k), while a handler wrapped at registration costs nothing to find. The effect
    is the same: one prologue for every method, none in the methods themselves."""

    def __init__(self, keys: KeyChecker, calls: Calls, heartbeat: StreamHeartbeat | None = None) -> None:
        self.keys = keys
        self.calls = calls
        self.heartbeat = heartbeat  # keep-alive chunks for silent streams; None: off

    def wrap(self, name: str, handler: Handler) -> Handler:
        """``handler`` (the generated one for method ``name``) with the prologue around its behaviour."""
        codec = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        # grpc's stubs type the behaviours as synchronous; on a grpc.aio server they are coroutines.
        if handler.unary_stream is not None:
            streaming: Streaming = handler.unary_stream  # type: ignore[assignment]
            return grpc.unary_stream_rpc_method_handler(self._streaming(name, streaming, KEEP_ALIVE.get(name)), **codec)
        unary: Unary = handler.unary_unary  # type: ignore[assignment]
        return grpc.unary_unary_rpc_method_handler(self._unary(name, unary), **codec)

    def _authenticate(self, context: Context, exchange: Exchange) -> None:
        if self.keys.enabled:
            metadata = dict(context.invocation_metadata() or ())
            exchange.caller = self.keys.check(metadata.get("authorization"), metadata.get("x-api-key"))

    def _unary(self, name: str, method: Unary) -> Unary:
        async def call(request: Any, context: Context) -> Any:
            exchange = open_exchange(context, name)
            with Observed(exchange):
                boundary = CallBoundary(context, exchange, self.calls)
                async with boundary:
                    self._authenticate(context, exchange)
                    key = id(context)
                    _CALLS[key] = Call(exchange, deadline_of(context), boundary)
                    try:
                        return await method(request, context)
                    finally:
                        del _CALLS[key]

        return call

    def _streaming(self, name: str, method: Streaming, keep_alive: Any = None) -> Unary:
        """A coroutine that writes what the method yields: grpc.aio accepts either for a server stream,
        and a generator around the method's generator would add a hop to every streamed message
        (about 6k instructions each, measured)."""

        async def call(request: Any, context: Context) -> None:
            exchange = open_exchange(context, name)
            with Observed(exchange) as observed:
                observed.streaming()
                boundary = CallBoundary(context, exchange, self.calls)
                async with boundary:
                    self._authenticate(context, exchange)
                    key = id(context)
                    _CALLS[key] = Call(exchange, deadline_of(context), boundary)
                    write = context.write
                    heartbeat = self.heartbeat if keep_alive is not None else None
                    beat = heartbeat.join(write, keep_alive) if heartbeat is not None else None
                    try:
                        # Closed however the call ends, so the method's own `finally` releases the upstream.
                        async with contextlib.aclosing(method(request, context)) as items:
                            if beat is None:
                                async for item in items:
                                    await write(item)
                            else:
                                async for item in items:
                                    if beat.ping is not None:  # one message in flight at a time
                                        await beat.ping
                                    beat.writes += 1
                                    await write(item)
                    finally:
                        del _CALLS[key]
                        if beat is not None:
                            if beat.ping is not None:  # its write finishes before the call's status goes out
                                with contextlib.suppress(BaseException):
                                    await beat.ping
                            heartbeat.leave(beat)  # type: ignore[union-attr]

        return call
