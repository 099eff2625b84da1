"""``chatgate.v1.ChatCompletionService``: receive, delegate to the core, send or abort."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, NoReturn

import grpc

from chatgate.v1 import chat_pb2, chat_service_pb2, chat_service_pb2_grpc
from service.core import Adjustment, ChatService
from service.core.auth import KeyChecker
from service.core.compat import describe
from service.core.errors import GatewayError, InternalError
from service.observability import Tracked

from .errors import rich_status

log = logging.getLogger("chatgate.grpc")

Context = grpc.aio.ServicerContext[Any, Any]
ADJUSTED_KEY = "x-chatgate-adjusted"
OVERHEAD_KEY = "x-chatgate-overhead-ms"


def deadline_of(context: Context) -> float | None:
    """The client's deadline as a monotonic time: gRPC Python does not pass it on by itself."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def report_metadata(adjustments: Sequence[Adjustment], upstream: dict[str, str]) -> list[tuple[str, str]]:
    metadata = list(upstream.items())
    if adjustments:
        metadata.append((ADJUSTED_KEY, describe(adjustments)))
    return metadata


async def abort(context: Context, error: GatewayError, metadata: Sequence[tuple[str, str]] = ()) -> NoReturn:
    code, message, trailers = rich_status(error)
    await context.abort(code, message, trailing_metadata=tuple(metadata) + trailers)
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


class ChatCompletionServicer(chat_service_pb2_grpc.ChatCompletionServiceServicer):
    def __init__(self, chat: ChatService, keys: KeyChecker) -> None:
        self.chat = chat
        self.keys = keys

    def _authenticate(self, context: Context) -> None:
        if self.keys.enabled:
            metadata = dict(context.invocation_metadata() or ())
            self.keys.check(metadata.get("authorization"))

    async def CreateChatCompletion(
        self, request: chat_service_pb2.ChatCompletionRequest, context: Context
    ) -> chat_pb2.ChatCompletion:
        with Tracked("grpc", "unary") as tracked:
            try:
                self._authenticate(context)
                result = await self.chat.complete(request, deadline=deadline_of(context))
            except GatewayError as error:
                tracked.outcome = error.code
                await abort(context, error)
            except Exception:
                log.exception("unexpected failure in CreateChatCompletion")
                tracked.outcome = "internal_error"
                await abort(context, InternalError("The gateway failed unexpectedly; the error was logged."))
            tracked.upstream_seconds = result.upstream.seconds
            metadata = report_metadata(result.adjustments, result.upstream.headers)
            metadata.append((OVERHEAD_KEY, f"{result.overhead_ms():.3f}"))
            context.set_trailing_metadata(tuple(metadata))
            return result.completion

    async def StreamChatCompletion(
        self, request: chat_service_pb2.ChatCompletionRequest, context: Context
    ) -> AsyncIterator[chat_pb2.ChatCompletionChunk]:
        with Tracked("grpc", "stream") as tracked:
            try:
                self._authenticate(context)
                stream = self.chat.stream(request, deadline=deadline_of(context))
            except GatewayError as error:
                tracked.outcome = error.code
                await abort(context, error)
            try:
                async for batch in stream:
                    for chunk in batch:
                        if chunk.choices or chunk.HasField("usage"):  # upstream pings: HTTP/2 keeps gRPC alive
                            yield chunk
            except GatewayError as error:
                tracked.outcome = error.code
                await abort(context, error, report_metadata(stream.adjustments, stream.upstream.headers))
            except Exception:
                log.exception("unexpected failure in StreamChatCompletion")
                tracked.outcome = "internal_error"
                await abort(context, InternalError("The gateway failed unexpectedly; the error was logged."))
            finally:
                # Also runs when the client cancels (CancelledError propagates, never
                # swallowed): the upstream request is closed at once.
                tracked.upstream_seconds = stream.upstream.seconds
                await stream.aclose()
            metadata = report_metadata(stream.adjustments, stream.upstream.headers)
            metadata.append((OVERHEAD_KEY, f"{stream.overhead_ms():.3f}"))
            context.set_trailing_metadata(tuple(metadata))

    async def ListModels(
        self, request: chat_service_pb2.ListModelsRequest, context: Context
    ) -> chat_service_pb2.ListModelsResponse:
        try:
            self._authenticate(context)
        except GatewayError as error:
            await abort(context, error)
        return chat_service_pb2.ListModelsResponse(models=[m.to_proto() for m in self.chat.list_models()])
