"""The OpenAI Chat Completions surface: `POST /v1/chat/completions`, JSON and Server-Sent Events.

Only the dialect lives here: parsing with the neutral codec, OpenAI's error
shape, and SSE framing (`data:` lines, `: ping` comments, `[DONE]`). The
request lifecycle is ``lifecycle.ChatEndpoint``'s.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from chatgate.v1 import chat_pb2, chat_service_pb2
from service.codecs.openai_chat import chunk_json, completion_json, request_from_json
from service.core import ChatResult, ChatService, ChatStream
from service.core.chunks import Batch, Item, TextDelta
from service.core.errors import GatewayError, InvalidRequest
from service.core.exchange import Exchange

from .asgi import Scope, header
from .errors import http_status
from .lifecycle import ChatCall

PATH = "/v1/chat/completions"
DONE_FRAME = b"data: [DONE]\n\n"
PING_FRAME = b": ping\n\n"
COMPATIBILITY_MODES = {"strict": chat_pb2.COMPATIBILITY_STRICT, "lenient": chat_pb2.COMPATIBILITY_LENIENT}


def error_json(error: GatewayError) -> bytes:
    """OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``."""
    return orjson.dumps(
        {"error": {"message": error.message, "type": error.type, "param": error.param, "code": error.code}}
    )


# A text delta, most of what a stream is: the bytes `chunk_json` gives its chunk, written out directly.
TEXT_FRAME_HEAD = b'data: {"id":%b,"object":"chat.completion.chunk","created":%d,"model":%b,"choices":[{"index":%d,"delta":{"content":'  # noqa: E501
TEXT_FRAME_TAIL = b'},"finish_reason":null,"logprobs":null}]}\n\n'
# The head repeats for every delta of a stream: the last one made is kept, with the identity and
# index it was made for (one stream at a time writes, and its deltas come together in batches).
_head: list[Any] = [None, -1, b""]


def text_frame(delta: TextDelta) -> bytes:
    kept, identity, index = _head, delta.identity, delta.index
    if kept[0] is not identity or kept[1] != index:
        dumps = orjson.dumps
        head = TEXT_FRAME_HEAD % (dumps(identity.id), identity.created, dumps(identity.model), index)
        kept[0], kept[1], kept[2] = identity, index, head
    return kept[2] + orjson.dumps(delta.text) + TEXT_FRAME_TAIL  # type: ignore[no-any-return]


def frames(batch: Batch) -> bytes:
    """A batch's frames, in one piece. A text delta whose head is the one kept is written here: the
    two calls ``frame`` makes for it cost more than the rest of its work (a chunk of every token)."""
    if len(batch) == 1:
        return frame(batch[0])
    kept, dumps, out = _head, orjson.dumps, []
    for chunk in batch:
        if isinstance(chunk, TextDelta) and kept[0] is chunk.identity and kept[1] == chunk.index:
            out.append(kept[2] + dumps(chunk.text) + TEXT_FRAME_TAIL)
        else:
            out.append(frame(chunk))
    return b"".join(out)


def frame(chunk: Item) -> bytes:
    if isinstance(chunk, TextDelta):
        return text_frame(chunk)
    if not chunk.choices and not chunk.HasField("usage"):
        return PING_FRAME  # an upstream keep-alive: an SSE comment the SDKs skip
    return b"data: " + orjson.dumps(chunk_json(chunk)) + b"\n\n"


class OpenAIChat:
    """The dialect of OpenAI's Chat Completions API."""

    stream_headers: ClassVar[list[tuple[bytes, bytes]]] = [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no"),  # tells nginx-style proxies not to buffer the stream
    ]

    request_id_header = None

    def parse(self, body: bytes, scope: Scope) -> ChatCall:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise InvalidRequest("The request body is not valid JSON.", code="invalid_json") from None
        request, stream, ignored = request_from_json(parsed)
        if beta := header(scope, b"anthropic-beta"):
            request.anthropic.betas.extend(b.strip() for b in beta.split(",") if b.strip())
        mode = COMPATIBILITY_MODES.get((header(scope, b"x-chatgate-compatibility") or "").lower())
        if mode is not None and not request.compatibility:
            request.compatibility = mode
        return ChatCall(request, stream, ignored)

    async def run(self, chat: ChatService, call: ChatCall, exchange: Exchange) -> ChatResult:
        return await chat.complete(chat_request(call), deadline=call.deadline, exchange=exchange)

    def open(self, chat: ChatService, call: ChatCall, exchange: Exchange) -> ChatStream:
        return chat.stream(chat_request(call), deadline=call.deadline, exchange=exchange)

    def error_status(self, error: GatewayError) -> int:
        return http_status(error)

    def completion(self, result: ChatResult) -> bytes:
        return orjson.dumps(completion_json(result.completion))

    def frames(self, batch: Batch) -> bytes:
        return frames(batch)

    def end_of_stream(self, stream: ChatStream) -> bytes:
        # The gateway's own time, as a comment SDKs skip: the headers left long ago.
        return b": x-chatgate-overhead-ms %.3f\n\n" % stream.overhead_ms() + DONE_FRAME

    keep_alive = b": keep-alive\n\n"

    def error_body(self, error: GatewayError) -> bytes:
        return error_json(error)

    def error_frame(self, error: GatewayError, stream: object = None) -> bytes:
        """One error frame and no ``[DONE]``: OpenAI SDKs raise on it."""
        return b"data: " + error_json(error) + b"\n\n"


def chat_request(call: ChatCall) -> chat_service_pb2.ChatCompletionRequest:
    assert isinstance(call.request, chat_service_pb2.ChatCompletionRequest)  # parsed by this surface
    return call.request
