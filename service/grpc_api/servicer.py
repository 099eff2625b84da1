"""``chatgate.v1.ChatCompletionService``: receive, delegate to the core, send or abort.

Every method runs inside one ``CallBoundary``: the single place where a
failure becomes a gRPC status. A ``GatewayError`` keeps its classification; any
other exception is our own bug, logged with its traceback and sent as
``INTERNAL``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Any, NoReturn

import grpc

from chatgate.v1 import chat_pb2, chat_service_pb2, chat_service_pb2_grpc
from service.core import Adjustment, ChatService
from service.core.auth import KeyChecker
from service.core.chunks import as_chunk
from service.core.compat import describe
from service.core.errors import GatewayError, InternalError, ShuttingDown
from service.core.exchange import Exchange, request_id_from
from service.core.lifecycle import Lifecycle
from service.core.validation import check_enums
from service.observability import Observed

from .errors import rich_status, status_code

log = logging.getLogger("chatgate.grpc")

Context = grpc.aio.ServicerContext[Any, Any]
Metadata = list[tuple[str, str]]
ADJUSTED_KEY = "x-chatgate-adjusted"
REQUEST_ID_KEY = "x-request-id"
SERVICE = "/chatgate.v1.ChatCompletionService/"
OVERHEAD_KEY = "x-chatgate-overhead-ms"
ACTIONS = {"dropped": chat_pb2.ADJUSTMENT_ACTION_DROPPED, "adjusted": chat_pb2.ADJUSTMENT_ACTION_ADJUSTED}


def deadline_of(context: Context) -> float | None:
    """The client's deadline as a monotonic time: gRPC Python does not pass it on by itself."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def report_metadata(adjustments: Sequence[Adjustment], upstream: dict[str, str]) -> Metadata:
    metadata = list(upstream.items())
    if adjustments:
        metadata.append((ADJUSTED_KEY, describe(adjustments)))
    return metadata


def fill_report(report: chat_pb2.GatewayReport, adjustments: Sequence[Adjustment], overhead_ms: float) -> None:
    """The gateway's report, written into the answer's own (a built report would be copied in whole)."""
    report.SetInParent()  # present even when empty, as the schema promises
    report.overhead_ms = overhead_ms
    for a in adjustments:
        report.adjustments.add(param=a.param, action=ACTIONS[a.action], detail=a.detail)


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
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY:
            request_id = str(value)
        elif key == "traceparent":
            traceparent = str(value)
    exchange = Exchange(request_id_from(request_id), "grpc", SERVICE + method)
    if traceparent:
        exchange.traceparent = traceparent
    return exchange


class CallBoundary:
    """``async with CallBoundary(context, exchange):`` turns whatever the body raises into one status.

    ``report`` (set once known) gives the metadata an error should still carry:
    the adjustments and the upstream's headers. Cancellation passes through
    (the client is gone, and the body's own ``finally`` releases the upstream),
    except when the server's shutdown grace ran out: then the call ends with
    UNAVAILABLE `shutting_down`, so the client knows to retry elsewhere.
    """

    __slots__ = ("calls", "context", "exchange", "lifecycle", "report", "task")

    def __init__(self, context: Context, exchange: Exchange, *, servicer: ChatCompletionServicer | None = None) -> None:
        self.context = context
        self.exchange = exchange
        self.report: Callable[[], Metadata] = list
        self.lifecycle = servicer.lifecycle if servicer is not None else None
        self.calls = servicer.calls if servicer is not None else None
        self.task = asyncio.current_task()

    async def __aenter__(self) -> CallBoundary:
        if self.calls is not None and self.task is not None:
            self.calls.add(self.task)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.calls is not None and self.task is not None:
            self.calls.discard(self.task)
        if isinstance(error, asyncio.CancelledError) and self.lifecycle is not None and self.lifecycle.terminating:
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


class ChatCompletionServicer(chat_service_pb2_grpc.ChatCompletionServiceServicer):
    def __init__(self, chat: ChatService, keys: KeyChecker, lifecycle: Lifecycle) -> None:
        self.chat = chat
        self.keys = keys
        self.lifecycle = lifecycle
        self.calls: set[asyncio.Task[Any]] = set()  # chat calls in flight, for the end of the shutdown grace

    def terminate(self) -> None:
        """The shutdown grace is over: every chat call still running ends with `shutting_down`."""
        self.lifecycle.terminating = True
        for task in list(self.calls):
            task.cancel()

    def _authenticate(self, context: Context, exchange: Exchange) -> None:
        if self.keys.enabled:
            metadata = dict(context.invocation_metadata() or ())
            exchange.caller = self.keys.check(metadata.get("authorization"), metadata.get("x-api-key"))

    async def CreateChatCompletion(
        self, request: chat_service_pb2.ChatCompletionRequest, context: Context
    ) -> chat_pb2.ChatCompletion:
        exchange = open_exchange(context, "CreateChatCompletion")
        with Observed(exchange):
            async with CallBoundary(context, exchange, servicer=self):
                self._authenticate(context, exchange)
                exchange.bytes_in = request.ByteSize()
                check_enums(request)
                result = await self.chat.complete(request, deadline=deadline_of(context), exchange=exchange)
            exchange.upstream_seconds = result.upstream.seconds
            overhead_ms = result.overhead_ms()
            completion = result.completion
            fill_report(completion.gateway, result.adjustments, overhead_ms)
            exchange.adjusted = describe(result.adjustments)
            metadata = report_metadata(result.adjustments, result.upstream.headers)
            metadata.append((OVERHEAD_KEY, f"{overhead_ms:.3f}"))
            metadata.append((REQUEST_ID_KEY, exchange.request_id))
            context.set_trailing_metadata(tuple(metadata))
            exchange.bytes_out = completion.ByteSize()
            exchange.first_byte = time.monotonic()
            return completion

    async def StreamChatCompletion(
        self, request: chat_service_pb2.ChatCompletionRequest, context: Context
    ) -> AsyncIterator[chat_pb2.ChatCompletionChunk]:
        exchange = open_exchange(context, "StreamChatCompletion")
        with Observed(exchange) as observed:
            observed.streaming()
            boundary = CallBoundary(context, exchange, servicer=self)
            async with boundary:
                self._authenticate(context, exchange)
                exchange.bytes_in = request.ByteSize()
                check_enums(request)
                stream = self.chat.stream(request, deadline=deadline_of(context), exchange=exchange)
                boundary.report = lambda: report_metadata(stream.adjustments, stream.upstream.headers)
                try:
                    batch = await anext(stream, None)  # the upstream call starts here
                    # Adjustments are known before the first chunk: callers get them up front.
                    exchange.adjusted = describe(stream.adjustments)
                    initial = boundary.report()
                    initial.append((REQUEST_ID_KEY, exchange.request_id))
                    await context.send_initial_metadata(tuple(initial))
                    exchange.first_byte = time.monotonic()
                    sent = 0
                    while batch is not None:
                        for item in batch:
                            chunk = as_chunk(item)  # gRPC writes the protobuf chunk a text delta stands for
                            if chunk.choices or chunk.HasField("usage"):  # upstream pings: HTTP/2 keeps gRPC alive
                                sent += chunk.ByteSize()
                                yield chunk
                        batch = await anext(stream, None)
                    exchange.bytes_out = sent
                finally:
                    # Also runs when the client cancels (CancelledError propagates, never
                    # swallowed): the upstream request is closed at once.
                    exchange.upstream_seconds = stream.upstream.seconds
                    await stream.aclose()
            metadata = boundary.report()
            metadata.append((OVERHEAD_KEY, f"{stream.overhead_ms():.3f}"))
            metadata.append((REQUEST_ID_KEY, exchange.request_id))
            context.set_trailing_metadata(tuple(metadata))

    async def CountTokens(
        self, request: chat_service_pb2.ChatCompletionRequest, context: Context
    ) -> chat_service_pb2.CountTokensResponse:
        exchange = open_exchange(context, "CountTokens")
        with Observed(exchange):
            async with CallBoundary(context, exchange, servicer=self):
                self._authenticate(context, exchange)
                exchange.bytes_in = request.ByteSize()
                check_enums(request)
                tokens, model = await self.chat.count_tokens(request, deadline=deadline_of(context), exchange=exchange)
            context.set_trailing_metadata(((REQUEST_ID_KEY, exchange.request_id),))
            return chat_service_pb2.CountTokensResponse(input_tokens=tokens, model=model)

    async def ListModels(
        self, request: chat_service_pb2.ListModelsRequest, context: Context
    ) -> chat_service_pb2.ListModelsResponse:
        exchange = open_exchange(context, "ListModels")
        with Observed(exchange):
            async with CallBoundary(context, exchange):
                self._authenticate(context, exchange)
            context.set_trailing_metadata(((REQUEST_ID_KEY, exchange.request_id),))
            models = self.chat.list_models(exchange.caller)
            return chat_service_pb2.ListModelsResponse(models=[m.to_proto() for m in models])
