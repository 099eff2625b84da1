"""The OpenAI Responses surface: `POST /v1/responses` (JSON and streamed events) and the stored
responses' routes (`GET` / `DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`).

What Codex and the OpenAI Agents SDK speak. Requests become core chat requests (the same mapping,
limits, retries and ledger as Chat Completions); answers become output items and, streamed, OpenAI's
typed events with their `sequence_number` (``codecs.responses_output``). `store: true` keeps the
response in the shared store (``core.responses.ResponseArchive``) so that `previous_response_id`
continues it on any replica. The request lifecycle is ``lifecycle.ChatEndpoint``'s, as for every surface.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.codecs.openai_responses import (
    ResponsesRequest,
    compact_request_from_json,
    request_from_json,
    responses_message,
)
from service.codecs.responses_output import Envelope, OutputBuilder, event
from service.core import ChatResult, ChatService, ChatStream
from service.core.chunks import as_chunk
from service.core.compat import Adjustment
from service.core.errors import GatewayError, InvalidRequest, NotFound
from service.core.exchange import Caller, Exchange
from service.core.provider import UpstreamInfo
from service.core.responses import Json, ResponseArchive

from .asgi import Scope, header
from .errors import http_status
from .lifecycle import ChatCall
from .openai_chat import COMPATIBILITY_MODES, error_json
from .responses_compaction import (
    Compaction,
    add_usage,
    compact_if_due,
    compacted_response,
    conversation,
    summarize,
)

PATH = "/v1/responses"
COUNT_PATH = "/v1/responses/input_tokens"
KEEP_ALIVE = b": keep-alive\n\n"


class ResponsesResult:
    """A whole response: the JSON the client gets and what the lifecycle reports beside it."""

    __slots__ = ("adjustments", "body", "overhead_ms", "upstream")

    def __init__(
        self, body: bytes, adjustments: list[Adjustment], upstream: UpstreamInfo, overhead_ms: Callable[[], float]
    ) -> None:
        self.body, self.adjustments, self.upstream, self.overhead_ms = body, adjustments, upstream, overhead_ms


class OpenAIResponses:
    """The dialect of OpenAI's Responses API, over the chat use case."""

    stream_headers: ClassVar[list[tuple[bytes, bytes]]] = [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no"),
    ]
    request_id_header = None
    keep_alive = KEEP_ALIVE
    generates = True  # False: the request is only read (token counting): nothing streams or is stored
    read = staticmethod(request_from_json)

    def __init__(self, archive: ResponseArchive | None) -> None:
        self.archive = archive

    def parse(self, body: bytes, scope: Scope) -> ChatCall:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise InvalidRequest("The request body is not valid JSON.", code="invalid_json") from None
        mode = COMPATIBILITY_MODES.get((header(scope, b"x-chatgate-compatibility") or "").lower())
        request = self.read(parsed, mode=mode)
        if not self.generates:
            request.store = request.stream = False
        if self.archive is None:
            if request.previous_response_id:
                raise InvalidRequest(
                    "`previous_response_id` needs stored responses, and this gateway keeps none (responses.url = off).",
                    param="previous_response_id",
                    code="unsupported_parameter",
                )
            if request.store:
                request.store = False
                request.echo["store"] = False
                request.report.drop("store", "this gateway keeps no responses (responses.url = off)")
        return ChatCall(request, request.stream, request.ignored)

    async def run(self, chat: ChatService, call: ChatCall, exchange: Exchange) -> ResponsesResult:
        request = responses_request(call)

        def render(result: ChatResult) -> Json:
            envelope = Envelope.new(result.completion.model or request.model, request.echo)
            builder = OutputBuilder(
                envelope, request.custom_tools, request.summaries, events=False, namespaces=request.namespaces
            )
            builder.whole(result.completion)
            return builder.finished()

        try:
            compaction = await compact_if_due(chat, request, exchange, call.deadline)
            result, response = await chat.respond(
                request, with_compaction(render, compaction), deadline=call.deadline, exchange=exchange
            )
        except GatewayError as error:
            raise renamed(error, request) from None
        add_usage(exchange, compaction)
        adjustments = request.report.items + responses_adjustments(request, result.adjustments)
        return ResponsesResult(orjson.dumps(response), adjustments, result.upstream, result.overhead_ms)

    def open(self, chat: ChatService, call: ChatCall, exchange: Exchange) -> ResponsesStream:
        return ResponsesStream(self, chat, call, exchange)

    def completion(self, result: ResponsesResult) -> bytes:
        return result.body

    def frames(self, batch: bytes) -> bytes:
        return batch  # already events

    def end_of_stream(self, stream: ResponsesStream) -> bytes:
        return b""  # `response.completed` was the last batch; Responses streams have no `[DONE]`

    def error_status(self, error: GatewayError) -> int:
        return http_status(error)

    def error_body(self, error: GatewayError) -> bytes:
        return error_json(error)

    def error_frame(self, error: GatewayError, stream: Any = None) -> bytes:
        """`error`, then `response.failed` with what was written so far, numbered after the stream's events."""
        if isinstance(stream, ResponsesStream):
            return stream.failed(error)
        return event("error", 0, {"code": error.code, "message": error.message, "param": error.param})


class ResponsesCompact(OpenAIResponses):
    """`POST /v1/responses/compact`: a conversation (its input, its stored chain, or both) as the user's
    messages and one compaction item (``responses_compaction``). Nothing streams or is stored; the
    client sends the items back, in place of the turns, to continue."""

    generates = False
    read = staticmethod(compact_request_from_json)

    async def run(self, chat: ChatService, call: ChatCall, exchange: Exchange) -> ResponsesResult:
        request = responses_request(call)
        try:
            items = await conversation(chat, request, exchange.caller)
            compaction = await summarize(chat, request, items, exchange, call.deadline)
        except GatewayError as error:
            raise renamed(error, request) from None
        return ResponsesResult(compacted_response(compaction), request.report.items, compaction.upstream, lambda: 0.0)


class ResponsesInputTokens(OpenAIResponses):
    """`POST /v1/responses/input_tokens`: the input tokens of a Responses request as it would be sent
    (stored conversation included), counted by the upstream; nothing is generated or stored."""

    generates = False

    async def run(self, chat: ChatService, call: ChatCall, exchange: Exchange) -> ResponsesResult:
        request = responses_request(call)
        core_request = await chat.recall(request, exchange.caller)
        tokens, _ = await chat.count_tokens(core_request, deadline=call.deadline, exchange=exchange)
        body = orjson.dumps({"object": "response.input_tokens", "input_tokens": tokens})
        return ResponsesResult(body, request.report.items, UpstreamInfo(), lambda: 0.0)


class ResponsesStream:
    """A streamed response: the core's chunk stream as Responses events, one batch per upstream read.

    The first batch starts with `response.created` and `response.in_progress`; the last is the
    closing of the open item and `response.completed` (or `.incomplete`), sent only after the
    response is stored, so a client that continues it at once finds it."""

    def __init__(self, surface: OpenAIResponses, chat: ChatService, call: ChatCall, exchange: Exchange) -> None:
        self._surface, self._chat, self._call, self._exchange = surface, chat, call, exchange
        self._request = responses_request(call)
        self._inner: ChatStream | None = None
        self._builder: OutputBuilder | None = None
        self._ended = False
        self._idle = UpstreamInfo()
        self._compaction: Compaction | None = None
        self.response: Json | None = None  # the finished response, once the stream ended

    @property
    def started(self) -> bool:
        """Whether `response.created` went out (a failure then ends with `response.failed`)."""
        return self._builder is not None

    @property
    def adjustments(self) -> list[Adjustment]:
        inner = self._inner.adjustments if self._inner is not None else []
        return self._request.report.items + responses_adjustments(self._request, inner)

    @property
    def upstream(self) -> UpstreamInfo:
        return self._inner.upstream if self._inner is not None else self._idle

    def overhead_ms(self) -> float:
        return self._inner.overhead_ms() if self._inner is not None else 0.0

    def __aiter__(self) -> ResponsesStream:
        return self

    async def __anext__(self) -> bytes:
        if self._ended:
            raise StopAsyncIteration
        try:
            inner = self._inner or await self._open()
            batch = await anext(inner)
        except GatewayError as error:
            raise renamed(error, self._request) from None
        except StopAsyncIteration:
            builder = self._builder
            self._ended = True
            if builder is None:  # an upstream that sent nothing at all
                builder = self._begin("")
            response = self.response = builder.finished()
            add_usage(self._exchange, self._compaction)
            await self._chat.keep(self._request, self._exchange.caller, response)
            return builder.take()
        builder = self._builder
        if builder is None:
            builder = self._begin(as_chunk(batch[0]).model if batch else "")
        for chunk in batch:
            builder.chunk(chunk)
        return builder.take() or KEEP_ALIVE  # an upstream keep-alive stays one

    async def _open(self) -> ChatStream:
        self._compaction = await compact_if_due(self._chat, self._request, self._exchange, self._call.deadline)
        request = await self._chat.recall(self._request, self._exchange.caller)
        self._inner = self._chat.stream(request, deadline=self._call.deadline, exchange=self._exchange)
        return self._inner

    def _begin(self, model: str) -> OutputBuilder:
        envelope = Envelope.new(model or self._request.model, self._request.echo)
        request = self._request
        self._builder = OutputBuilder(envelope, request.custom_tools, request.summaries, namespaces=request.namespaces)
        self._builder.started()
        if self._compaction is not None:  # the compaction comes first, as the conversation now begins with it
            self._builder.item(self._compaction.item)
        return self._builder

    def failed(self, error: GatewayError) -> bytes:
        builder = self._builder or self._begin("")
        builder.failed(error.code, error.message, error.param)
        return builder.take()

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()


def with_compaction(
    render: Callable[[ChatResult], Json], compaction: Compaction | None
) -> Callable[[ChatResult], Json]:
    """The whole response, led by the compaction item when the turn compacted its conversation."""
    if compaction is None:
        return render

    def rendered(result: ChatResult) -> Json:
        response = render(result)
        response["output"] = [compaction.item, *response["output"]]
        return response

    return rendered


def renamed(error: GatewayError, request: ResponsesRequest) -> GatewayError:
    """The error with the request's params in the Responses API's names (`input[3]`, `max_output_tokens`)."""
    error.param = request.param(error.param)
    error.message = responses_message(error.message)
    return error


def responses_adjustments(request: ResponsesRequest, adjustments: list[Adjustment]) -> list[Adjustment]:
    """The core's report (``adjustments``) in the Responses API's names, as its errors have them (what
    the codec itself reported is named so already)."""
    if not adjustments:
        return adjustments
    return [replace(a, param=request.param(a.param) or a.param) for a in adjustments]


def responses_request(call: ChatCall) -> ResponsesRequest:
    assert isinstance(call.request, ResponsesRequest)  # parsed by this surface
    return call.request


# --- stored responses: read, list input items, delete ------------------------------------


def stored_routes(archive: ResponseArchive | None, caller: Callable[[Request], Caller]) -> list[Route]:
    """`GET` / `DELETE /v1/responses/{id}` and `GET /v1/responses/{id}/input_items`, per caller."""

    def store() -> ResponseArchive:
        if archive is None:
            raise NotFound("This gateway keeps no responses (responses.url = off).")
        return archive

    async def get(request: Request) -> Response:
        body = await store().get(request.path_params["response_id"], caller(request).name)
        return json_response(body)

    async def delete(request: Request) -> Response:
        response_id = request.path_params["response_id"]
        await store().delete(response_id, caller(request).name)
        return json_response({"id": response_id, "object": "response", "deleted": True})

    async def input_items(request: Request) -> Response:
        items = await store().input_items(request.path_params["response_id"], caller(request).name)
        return json_response(items_page(items, request.query_params))

    return [
        Route(PATH + "/{response_id}", get, methods=["GET"]),
        Route(PATH + "/{response_id}", delete, methods=["DELETE"]),
        Route(PATH + "/{response_id}/input_items", input_items, methods=["GET"]),
    ]


def items_page(items: list[Json], query: Any) -> Json:
    """A page of input items as OpenAI lists them: `order` (default `desc`), `limit` (1-100, 20), `after`."""
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("`order` must be `asc` or `desc`.", param="order", code="invalid_value")
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise InvalidRequest("`limit` must be a whole number from 1 to 100.", param="limit", code="invalid_value")
    ordered = items if order == "asc" else items[::-1]
    start = 0
    if after := query.get("after"):
        ids = [item.get("id") for item in ordered]
        start = ids.index(after) + 1 if after in ids else len(ordered)
    data = ordered[start : start + limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0].get("id") if data else None,
        "last_id": data[-1].get("id") if data else None,
        "has_more": start + limit < len(ordered),
    }


def json_response(content: Any) -> Response:
    return Response(orjson.dumps(content), media_type="application/json")
