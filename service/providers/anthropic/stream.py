"""Anthropic SSE events -> chatgate.v1 chunks: one small state machine, fed one event at a time.

Per event it does one JSON parse and builds at most one chunk; that is the whole
per-chunk cost, so keep it that way. A text delta becomes a ``TextDelta`` (the chunk
it stands for, built only by an edge that needs protobuf: see ``service.core.chunks``).
Upstream JSON is read through the checked helpers of ``service.transport``, so a
malformed event raises ``Malformed`` and anything else raised here is a bug of ours.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from chatgate.v1 import chat_pb2
from service.core.chunks import Item, TextDelta
from service.core.errors import IncompleteStream
from service.transport import Malformed, json_object, object_field, required_str

from .errors import error_from_event
from .response import SERVER_BLOCKS, finish_reason, log_once, refusal_text, url_citation, usage_from

log = logging.getLogger("chatgate.anthropic")

Chunk = chat_pb2.ChatCompletionChunk
Delta = chat_pb2.Delta
ChunkChoice = chat_pb2.ChunkChoice
ToolCall = chat_pb2.ToolCall
FunctionCall = chat_pb2.FunctionCall
ASSISTANT = chat_pb2.ROLE_ASSISTANT
_unknown_logged: set[str] = set()


@dataclass(slots=True)
class _Block:
    kind: str
    tool_index: int = -1
    has_arguments: bool = False
    text: list[str] = field(default_factory=list)
    signature: str = ""
    data: str = ""
    start: int = 0  # text blocks: where the block begins in the reply's content
    citations: list[Any] = field(default_factory=list)


class StreamTranslator:
    """Keeps what an OpenAI stream needs across events: the ids, our own tool-call
    counter (never Anthropic's block index), open blocks, usage and stop reason."""

    __slots__ = (
        "_annotation_count",
        "_blocks",
        "_chars",
        "_identity",
        "_json_tool",
        "_thinking_count",
        "_tool_count",
        "_usage",
        "created",
        "event",
        "finished",
        "id",
        "model",
        "request_id",
        "secrets",
    )

    def __init__(
        self, *, json_tool: str | None = None, request_id: str | None = None, secrets: tuple[str, ...] = ()
    ) -> None:
        self.secrets = secrets  # scrubbed from in-stream error text
        self.id = ""
        self.model = ""
        self.created = int(time.time())
        self.finished = False
        self.event = ""  # the latest event read, named in a malformed stream's error
        self.request_id = request_id
        self._json_tool = json_tool
        self._tool_count = 0
        self._thinking_count = 0
        self._annotation_count = 0
        self._chars = 0  # characters of content sent so far, where citations' spans are counted
        self._blocks: dict[int, _Block] = {}
        self._usage: dict[str, Any] = {}
        self._identity: Chunk | None = None  # what every text delta of the stream shares

    def read(self, events: Iterable[tuple[str, bytes]], batch: list[Item]) -> None:
        """Translates ``events`` (name, data) in order, appending the chunks to send to ``batch``, and
        stops at the end of the answer. On an error, ``batch`` holds what came before it.

        Per event, this loop is most of a stream's cost: a text delta is read inline (parsed and
        checked as ``json_object`` does, then made as ``_text`` makes it), because the calls ``feed``
        makes for it (four) cost more than the rest of its work. Every other event, and every other
        delta, goes through ``feed``'s methods."""
        append, loads = batch.append, orjson.loads
        for name, data in events:
            if self.finished:
                return  # nothing after `message_stop` can change a complete answer
            self.event = name
            if name != "content_block_delta":
                chunk = self.feed(name, data)
                if chunk is not None:
                    append(chunk)
                continue
            try:
                payload = loads(data)
            except orjson.JSONDecodeError:
                raise Malformed("not JSON") from None
            if payload.__class__ is not dict:
                raise Malformed("not a JSON object")
            delta = payload.get("delta")
            if delta.__class__ is dict and delta.get("type") == "text_delta":
                text = delta.get("text")
                if text.__class__ is str:
                    self._chars += len(text)
                    identity = self._identity
                    if identity is None:
                        identity = self._identity = self._chunk(Delta())
                    append(TextDelta(identity, text))
                    continue
            chunk = self._on_delta(payload)
            if chunk is not None:
                append(chunk)

    def feed(self, event: str, data: bytes) -> Item | None:
        """Translates one SSE event; returns the chunk to send, if any."""
        if event == "content_block_delta":
            return self._on_delta(json_object(data))
        if event == "ping":
            # A chunk with no choices and no usage: the edges turn it into a keep-alive
            # (an SSE comment) or skip it (gRPC). A new one each time: chunks get mutated.
            return Chunk()
        if event == "content_block_start":
            return self._on_block_start(json_object(data))
        if event == "content_block_stop":
            return self._on_block_stop(json_object(data))
        if event == "message_start":
            return self._on_message_start(json_object(data))
        if event == "message_delta":
            return self._on_message_delta(json_object(data))
        if event == "message_stop":
            self.finished = True
            return None
        if event == "error":
            raise error_from_event(data, self.request_id, self.secrets)
        if event not in _unknown_logged:  # forward compatibility: new event types are skipped
            _unknown_logged.add(event)
            log.info("skipping unknown Anthropic stream event %r", event)
        return None

    def _text(self, text: str) -> TextDelta:
        """A content delta, the chunk most of a stream is."""
        identity = self._identity
        if identity is None:  # the stream's chunk with one empty choice, as every other chunk is made
            identity = self._identity = self._chunk(Delta())
        return TextDelta(identity, text)

    def _chunk(self, delta: Delta, reason: chat_pb2.FinishReason = chat_pb2.FINISH_REASON_UNSPECIFIED) -> Chunk:
        return Chunk(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[ChunkChoice(index=0, delta=delta, finish_reason=reason)],
        )

    def _on_message_start(self, payload: dict[str, Any]) -> Chunk:
        message = object_field(payload, "message")
        self.id = "chatcmpl-" + str(message.get("id", ""))
        self.model = str(message.get("model", ""))
        self._identity = None
        self._usage = dict(object_field(message, "usage"))
        # No `content` yet: a reply that turns out to be tool calls only must
        # accumulate to `content: null`, as the whole reply reports it.
        return self._chunk(Delta(role=ASSISTANT))

    def _on_block_start(self, payload: dict[str, Any]) -> Item | None:
        block = object_field(payload, "content_block")
        kind = block.get("type", "")
        state = _Block(kind)
        self._blocks[payload.get("index", 0)] = state
        if kind == "text":
            state.start = self._chars
            state.citations.extend(block.get("citations") or ())
            text = block.get("text")
            if not text:
                return None
            self._chars += len(text)
            return self._text(text)
        if kind == "tool_use":
            if self._json_tool is not None and block.get("name") == self._json_tool:
                state.kind = "json"
                return None
            state.tool_index = self._tool_count
            self._tool_count += 1
            call = ToolCall(
                index=state.tool_index,
                id=block.get("id", ""),
                type=chat_pb2.TOOL_TYPE_FUNCTION,
                function=FunctionCall(name=block.get("name", ""), arguments=""),
            )
            return self._chunk(Delta(tool_calls=[call]))
        if kind == "redacted_thinking":
            state.data = block.get("data", "")
        elif kind != "thinking" and kind not in SERVER_BLOCKS and not kind.endswith("_tool_result"):
            log_once(f"block:{kind}", "skipping Anthropic content block of type %r")
        # Server-tool calls and their results stay upstream: they are not the client's tool calls.
        return None

    def _on_delta(self, payload: dict[str, Any]) -> Item | None:
        delta = object_field(payload, "delta")  # a stream's text deltas are read inline by `read`
        kind = delta.get("type")
        if kind == "text_delta":
            text = required_str(delta, "text")
            self._chars += len(text)
            return self._text(text)
        state = self._blocks.get(payload.get("index", 0))
        if kind == "input_json_delta":
            fragment = delta.get("partial_json", "")
            if not fragment or state is None or state.kind not in ("tool_use", "json"):
                return None  # a server tool's input is not the client's
            state.has_arguments = True
            if state.kind == "json":  # JSON mode: the tool's input is the message text
                self._chars += len(fragment)
                return self._text(fragment)
            call = ToolCall(index=state.tool_index, function=FunctionCall(arguments=fragment))
            return self._chunk(Delta(tool_calls=[call]))
        if kind == "thinking_delta":
            text = delta.get("thinking", "")
            if state is not None:
                state.text.append(text)
            return self._chunk(Delta(reasoning_content=text))
        if kind == "signature_delta" and state is not None:
            state.signature += delta.get("signature", "")
        elif kind == "citations_delta" and state is not None:
            state.citations.append(delta.get("citation"))
        return None

    def _on_block_stop(self, payload: dict[str, Any]) -> Chunk | None:
        state = self._blocks.pop(payload.get("index", 0), None)
        if state is None:
            return None
        if state.kind == "tool_use" and not state.has_arguments:
            # A call with no argument bytes still needs parseable arguments.
            return self._chunk(
                Delta(tool_calls=[ToolCall(index=state.tool_index, function=FunctionCall(arguments="{}"))])
            )
        if state.kind == "json" and not state.has_arguments:
            self._chars += 2
            return self._chunk(Delta(content="{}"))
        if state.citations:  # sent once the cited text is whole, so its span is known
            return self._annotations(state)
        if state.kind in ("thinking", "redacted_thinking"):
            redacted = state.kind == "redacted_thinking"
            kind = chat_pb2.THINKING_BLOCK_TYPE_REDACTED if redacted else chat_pb2.THINKING_BLOCK_TYPE_THINKING
            block = chat_pb2.ThinkingBlock(type=kind, index=self._thinking_count)
            if not redacted:
                block.thinking, block.signature = "".join(state.text), state.signature
            else:
                block.data = state.data
            self._thinking_count += 1
            return self._chunk(Delta(thinking_blocks=[block]))
        return None

    def _annotations(self, state: _Block) -> Chunk | None:
        delta = Delta()
        for citation in state.citations:
            annotation = url_citation(citation, state.start, self._chars)
            if annotation is not None:
                annotation.index = self._annotation_count
                self._annotation_count += 1
                delta.annotations.append(annotation)
        return self._chunk(delta) if delta.annotations else None

    def _on_message_delta(self, payload: dict[str, Any]) -> Chunk:
        # Output usage here is cumulative: set it, never add it.
        self._usage.update({k: v for k, v in object_field(payload, "usage").items() if v is not None})
        change = object_field(payload, "delta")
        stop_reason = change.get("stop_reason")
        reason = finish_reason(stop_reason, json_tool_used=self._json_tool_used(stop_reason))
        refusal = refusal_text(change.get("stop_details"))
        chunk = self._chunk(Delta(refusal=refusal) if refusal else Delta(), reason)
        chunk.usage.CopyFrom(usage_from(self._usage))
        return chunk

    def _json_tool_used(self, stop_reason: str | None) -> bool:
        return self._json_tool is not None and stop_reason == "tool_use" and self._tool_count == 0

    def check_complete(self) -> None:
        """Raises unless the stream reached ``message_stop``."""
        if not self.finished:
            raise IncompleteStream(
                "The upstream stream ended before `message_stop`.", upstream_request_id=self.request_id
            )
