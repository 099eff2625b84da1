"""``chatgate.v1.ChatCompletionService``: receive, delegate to the core, send.

Translation only. What every call needs before and after (its exchange, the caller, the
deadline, the one boundary where a failure becomes a status) is ``boundary.CallPrologue``'s,
the server interceptor that wraps each method; a method reads it with ``current(context)``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence

from chatgate.v1 import chat_pb2, chat_service_pb2, chat_service_pb2_grpc
from service.core import Adjustment, ChatService
from service.core.chunks import as_chunk
from service.core.compat import describe
from service.core.validation import check_enums

from .boundary import REQUEST_ID_KEY, Context, Metadata, current

ADJUSTED_KEY = "x-chatgate-adjusted"
OVERHEAD_KEY = "x-chatgate-overhead-ms"
ACTIONS = {"dropped": chat_pb2.ADJUSTMENT_ACTION_DROPPED, "adjusted": chat_pb2.ADJUSTMENT_ACTION_ADJUSTED}


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


class ChatCompletionServicer(chat_service_pb2_grpc.ChatCompletionServiceServicer):
    def __init__(self, chat: ChatService) -> None:
        self.chat = chat

    async def CreateChatCompletion(
        self, request: chat_service_pb2.ChatCompletionRequest, context: Context
    ) -> chat_pb2.ChatCompletion:
        call = current(context)
        exchange = call.exchange
        exchange.bytes_in = request.ByteSize()
        check_enums(request)
        result = await self.chat.complete(request, deadline=call.deadline, exchange=exchange)
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
        call = current(context)
        exchange, boundary = call.exchange, call.boundary
        exchange.bytes_in = request.ByteSize()
        check_enums(request)
        stream = self.chat.stream(request, deadline=call.deadline, exchange=exchange)
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
        call = current(context)
        call.exchange.bytes_in = request.ByteSize()
        check_enums(request)
        tokens, model = await self.chat.count_tokens(request, deadline=call.deadline, exchange=call.exchange)
        context.set_trailing_metadata(((REQUEST_ID_KEY, call.exchange.request_id),))
        return chat_service_pb2.CountTokensResponse(input_tokens=tokens, model=model)

    async def ListModels(
        self, request: chat_service_pb2.ListModelsRequest, context: Context
    ) -> chat_service_pb2.ListModelsResponse:
        exchange = current(context).exchange
        context.set_trailing_metadata(((REQUEST_ID_KEY, exchange.request_id),))
        models = self.chat.list_models(exchange.caller)
        return chat_service_pb2.ListModelsResponse(models=models)
