"""chatgate.v1 answers -> OpenAI Responses output: the response object and its stream events.

One builder serves both: a streamed answer feeds it chunk by chunk and writes the
events it emits; a whole answer feeds it the same pieces with events switched off and
keeps only the output items. So `output` is the same however the answer came.

Items follow OpenAI's order: a reasoning item per thinking block, a message item for text
(and refusals), a `function_call` or `custom_tool_call` item per tool call. One item is
open at a time; the next kind of content closes it, so every `output_item.added` has its
`output_item.done` before the next item starts.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from chatgate.v1 import chat_pb2
from service.core.chunks import Item, TextDelta

from .fields import Json
from .openai_responses import CUSTOM_INPUT, new_id, reasoning_content

FINISHED = {
    chat_pb2.FINISH_REASON_LENGTH: "max_output_tokens",
    chat_pb2.FINISH_REASON_CONTENT_FILTER: "content_filter",
}


@dataclass(slots=True)
class Envelope:
    """What a response object says besides its output: identity and the request's settings."""

    id: str
    created_at: int
    model: str
    echo: Json

    @classmethod
    def new(cls, model: str, echo: Json) -> Envelope:
        return cls(new_id("resp_"), int(time.time()), model, echo)

    def response(
        self,
        status: str,
        output: list[Json],
        usage: Json | None = None,
        *,
        incomplete: str | None = None,
        error: Json | None = None,
    ) -> Json:
        body: Json = {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": error,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "model": self.model,
            "output": output,
            "usage": usage,
        }
        body.update(self.echo)
        if status in ("completed", "incomplete", "failed"):
            body["completed_at"] = int(time.time())
        return body


def usage_json(usage: chat_pb2.Usage) -> Json:
    details = usage.prompt_tokens_details
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": details.cached_tokens,
            "cache_write_tokens": details.cache_creation_tokens,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.completion_tokens_details.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def event(kind: str, sequence: int, fields: Json) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (
        kind.encode(),
        orjson.dumps({"type": kind, "sequence_number": sequence, **fields}),
    )


@dataclass(slots=True)
class _Open:
    """The output item being written: its JSON and what it has collected so far."""

    index: int
    item: Json
    parts: list[str] = field(default_factory=list)  # text, reasoning summary, arguments or input
    annotations: list[Json] = field(default_factory=list)
    refusal: list[str] | None = None
    tool_index: int = -1
    decoder: CustomInput | None = None


class OutputBuilder:
    """Turns an answer's pieces into output items, and (when ``events``) into stream events."""

    def __init__(
        self,
        envelope: Envelope,
        custom: frozenset[str],
        summaries: bool,
        *,
        events: bool = True,
        namespaces: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        self.envelope = envelope
        self.custom = custom
        # Claude's flat tool name -> (namespace, name) for tools the client sent inside a namespace.
        self.namespaces = namespaces or {}
        self.summaries = summaries
        self.events = events
        self.sequence = 0
        self.output: list[Json] = []
        self.usage: Json | None = None
        self.finish = chat_pb2.FINISH_REASON_UNSPECIFIED
        self._open: _Open | None = None
        self._out: list[bytes] = []

    # -- the stream's frame -----------------------------------------------------

    def _emit(self, kind: str, **fields: Any) -> None:
        if self.events:
            self._out.append(event(kind, self.sequence, fields))
            self.sequence += 1

    def take(self) -> bytes:
        """The events emitted since the last call."""
        out, self._out = self._out, []
        return b"".join(out)

    def started(self) -> None:
        snapshot = self.envelope.response("in_progress", [])
        self._emit("response.created", response=snapshot)
        self._emit("response.in_progress", response=snapshot)

    def chunk(self, chunk: Item) -> None:
        if isinstance(chunk, TextDelta):
            self.text(chunk.text)
            return
        if chunk.HasField("usage"):
            self.usage = usage_json(chunk.usage)
        for choice in chunk.choices[:]:  # one choice: Responses has no `n` (a slice: see `whole`)
            if choice.finish_reason:
                self.finish = choice.finish_reason
            for fld, value in choice.delta.ListFields():
                name = fld.name
                if name == "content":
                    self.text(value)
                elif name == "reasoning_content":
                    self.reasoning_text(value)
                elif name == "thinking_blocks":
                    for block in value:
                        self.reasoning_block(block)
                elif name == "tool_calls":
                    for call in value:
                        self.tool_call(call)
                elif name == "annotations":
                    for annotation in value:
                        self.annotation(annotation)
                elif name == "refusal":
                    self.refusal(value)

    def whole(self, completion: chat_pb2.ChatCompletion) -> None:
        """A whole answer through the same steps as a stream (events off)."""
        choice = completion.choices[0]
        message = choice.message
        # slices: a loop over a protobuf repeated field costs an IndexError (docs/performance.md)
        for block in message.thinking_blocks[:]:
            self.reasoning_text(block.thinking)
            self.reasoning_block(block)
        if message.content:
            self.text("".join([p.text for p in message.content[:]]))
        for annotation in message.annotations[:]:
            self.annotation(annotation)
        if message.refusal:
            self.refusal(message.refusal)
        for index, call in enumerate(message.tool_calls[:]):
            self.tool_call(chat_pb2.ToolCall(index=index, id=call.id, function=call.function))
        self.finish = choice.finish_reason
        self.usage = usage_json(completion.usage)

    def status(self) -> tuple[str, str | None]:
        reason = FINISHED.get(self.finish)
        return ("incomplete", reason) if reason else ("completed", None)

    def finished(self) -> Json:
        """Closes the last item; the final response object (events: `response.completed` or `.incomplete`)."""
        self._close()
        status, reason = self.status()
        response = self.envelope.response(status, self.output, self.usage, incomplete=reason)
        self._emit(f"response.{status}", response=response)
        return response

    def failed(self, code: str, message: str, param: str | None) -> None:
        """An `error` event, then `response.failed` with what was written so far."""
        self._emit("error", code=code, message=message, param=param)
        output = [*self.output, self._open.item] if self._open is not None else self.output
        error = {"code": code, "message": message}
        self._emit("response.failed", response=self.envelope.response("failed", output, self.usage, error=error))

    # -- items ---------------------------------------------------------------

    def item(self, item: Json) -> None:
        """A finished item the gateway made itself (a compaction), added and done at once."""
        self._close()
        index = len(self.output)
        self.output.append(item)
        self._emit("response.output_item.added", output_index=index, item=item)
        self._emit("response.output_item.done", output_index=index, item=item)

    def _start(self, item: Json) -> _Open:
        self._close()
        opened = _Open(len(self.output), item)
        self._open = opened
        self._emit("response.output_item.added", output_index=opened.index, item=item)
        return opened

    def _close(self) -> None:
        opened, self._open = self._open, None
        if opened is None:
            return
        kind = opened.item["type"]
        done = {"message": self._close_message, "reasoning": self._close_reasoning}.get(kind, self._close_call)
        done(opened)
        self.output.append(opened.item)
        self._emit("response.output_item.done", output_index=opened.index, item=opened.item)

    def reasoning_text(self, text: str) -> None:
        opened = self._open
        if opened is None or opened.item["type"] != "reasoning":
            opened = self._start({"id": new_id("rs_"), "type": "reasoning", "summary": []})
            if self.summaries and text:
                self._emit("response.reasoning_summary_part.added", **self._at(opened), summary_index=0,
                           part={"type": "summary_text", "text": ""})  # fmt: skip
        if self.summaries and text:
            opened.parts.append(text)
            self._emit("response.reasoning_summary_text.delta", **self._at(opened), summary_index=0, delta=text)

    def reasoning_block(self, block: chat_pb2.ThinkingBlock) -> None:
        """A finished thinking block: it completes the reasoning item, signature and all."""
        opened = self._open
        if opened is None or opened.item["type"] != "reasoning" or "encrypted_content" in opened.item:
            opened = self._start({"id": new_id("rs_"), "type": "reasoning", "summary": []})
        opened.item["encrypted_content"] = reasoning_content(block)
        self._close()

    def _close_reasoning(self, opened: _Open) -> None:
        if not opened.parts:
            return
        text = "".join(opened.parts)
        part = {"type": "summary_text", "text": text}
        self._emit("response.reasoning_summary_text.done", **self._at(opened), summary_index=0, text=text)
        self._emit("response.reasoning_summary_part.done", **self._at(opened), summary_index=0, part=part)
        opened.item["summary"] = [part]

    def text(self, text: str) -> None:
        opened = self._message()
        if not opened.parts:
            self._emit("response.content_part.added", **self._at(opened), content_index=0,
                       part={"type": "output_text", "annotations": [], "logprobs": [], "text": ""})  # fmt: skip
        opened.parts.append(text)
        self._emit("response.output_text.delta", **self._at(opened), content_index=0, delta=text, logprobs=[])

    def annotation(self, annotation: chat_pb2.Annotation) -> None:
        opened = self._message()
        cited = annotation.url_citation
        entry = {"type": "url_citation", "start_index": cited.start_index, "end_index": cited.end_index,
                 "url": cited.url, "title": cited.title}  # fmt: skip
        self._emit("response.output_text.annotation.added", **self._at(opened), content_index=0,
                   annotation_index=len(opened.annotations), annotation=entry)  # fmt: skip
        opened.annotations.append(entry)

    def refusal(self, text: str) -> None:
        opened = self._message()
        index = 1 if opened.parts else 0
        if opened.refusal is None:
            opened.refusal = []
            self._emit("response.content_part.added", **self._at(opened), content_index=index,
                       part={"type": "refusal", "refusal": ""})  # fmt: skip
        opened.refusal.append(text)
        self._emit("response.refusal.delta", **self._at(opened), content_index=index, delta=text)

    def _message(self) -> _Open:
        opened = self._open
        if opened is None or opened.item["type"] != "message":
            item = {
                "id": new_id("msg_"),
                "type": "message",
                "status": "in_progress",
                "content": [],
                "role": "assistant",
            }
            opened = self._start(item)
        return opened

    def _close_message(self, opened: _Open) -> None:
        content: list[Json] = []
        if opened.parts or opened.refusal is None:
            text = "".join(opened.parts)
            part = {"type": "output_text", "annotations": opened.annotations, "logprobs": [], "text": text}
            self._emit("response.output_text.done", **self._at(opened), content_index=0, text=text, logprobs=[])
            self._emit("response.content_part.done", **self._at(opened), content_index=0, part=part)
            content.append(part)
        if opened.refusal is not None:
            refusal = {"type": "refusal", "refusal": "".join(opened.refusal)}
            index = len(content)
            self._emit("response.refusal.done", **self._at(opened), content_index=index, refusal=refusal["refusal"])
            self._emit("response.content_part.done", **self._at(opened), content_index=index, part=refusal)
            content.append(refusal)
        opened.item["content"] = content
        opened.item["status"] = "incomplete" if self.finish in FINISHED else "completed"

    def tool_call(self, call: chat_pb2.ToolCall) -> None:
        opened = self._open
        if call.id or opened is None or opened.tool_index != call.index:
            name = call.function.name
            if name in self.custom:
                item = {"id": new_id("ctc_"), "type": "custom_tool_call", "status": "in_progress",
                        "call_id": call.id, "name": name, "input": ""}  # fmt: skip
            else:
                item = {"id": new_id("fc_"), "type": "function_call", "status": "in_progress",
                        "arguments": "", "call_id": call.id, "name": name}  # fmt: skip
            if (spaced := self.namespaces.get(name)) is not None:  # as the client named it
                item["namespace"], item["name"] = spaced
            opened = self._start(item)
            opened.tool_index = call.index
            if name in self.custom:
                opened.decoder = CustomInput()
        fragment = call.function.arguments
        if not fragment:
            return
        opened.parts.append(fragment)
        if opened.decoder is None:
            self._emit("response.function_call_arguments.delta", **self._at(opened), delta=fragment)
        elif text := opened.decoder.feed(fragment):
            self._emit("response.custom_tool_call_input.delta", **self._at(opened), delta=text)

    def _close_call(self, opened: _Open) -> None:
        arguments = "".join(opened.parts)
        opened.item["status"] = "completed"
        if opened.decoder is None:
            opened.item["arguments"] = arguments
            self._emit("response.function_call_arguments.done", **self._at(opened), arguments=arguments)
            return
        text = custom_input(arguments)
        if self.events and (rest := opened.decoder.rest(text)):
            self._emit("response.custom_tool_call_input.delta", **self._at(opened), delta=rest)
        opened.item["input"] = text
        self._emit("response.custom_tool_call_input.done", **self._at(opened), input=text)

    @staticmethod
    def _at(opened: _Open) -> Json:
        return {"item_id": opened.item["id"], "output_index": opened.index}


def custom_input(arguments: str) -> str:
    """A custom tool call's free-form input, from the arguments Claude wrote for its one property."""
    try:
        value = orjson.loads(arguments) if arguments else {}
    except orjson.JSONDecodeError:
        return arguments
    if isinstance(value, dict) and isinstance(value.get(CUSTOM_INPUT), str):
        return str(value[CUSTOM_INPUT])
    return arguments


class CustomInput:
    """Decodes the string value of ``{"input": "..."}`` as its JSON arrives in fragments, so a
    custom tool's input streams as text. Anything else the model writes is left to ``rest``."""

    __slots__ = ("_closed", "_pos", "_raw", "_start", "sent")

    def __init__(self) -> None:
        self._raw = ""
        self._start = -1  # where the string value begins in ``_raw``
        self._pos = 0  # how far it has been decoded
        self._closed = False
        self.sent: list[str] = []

    def feed(self, fragment: str) -> str:
        self._raw += fragment
        if self._closed:
            return ""
        if self._start < 0:
            start = _value_start(self._raw)
            if start < 0:
                return ""
            self._start = self._pos = start
        end, self._closed = _safe_end(self._raw, self._pos)
        if end <= self._pos:
            return ""
        try:
            text: str = orjson.loads(b'"' + self._raw[self._pos : end].encode() + b'"')
        except orjson.JSONDecodeError:
            self._closed = True  # not the shape we expected: the rest comes at `done`
            return ""
        self._pos = end
        self.sent.append(text)
        return text

    def rest(self, final: str) -> str:
        """What ``final`` adds to what was already sent (nothing when they disagree)."""
        sent = "".join(self.sent)
        return final[len(sent) :] if final.startswith(sent) else ""


def _value_start(raw: str) -> int:
    """Where the string value of the `input` member starts, once ``{"input": "`` has arrived."""
    key = raw.find(f'"{CUSTOM_INPUT}"')
    if key < 0:
        return -1
    i = key + len(CUSTOM_INPUT) + 2
    while i < len(raw) and raw[i] in " \t\r\n:":
        i += 1
    return i + 1 if i < len(raw) and raw[i] == '"' and ":" in raw[key:i] else -1


def _safe_end(raw: str, i: int) -> tuple[int, bool]:
    """The end of the decodable part of a JSON string body from ``i`` (never splitting an escape),
    and whether the closing quote was reached."""
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == '"':
            return i, True
        if c != "\\":
            i += 1
            continue
        if i + 1 >= n:
            return i, False
        if raw[i + 1] != "u":
            i += 2
            continue
        if i + 6 > n:
            return i, False
        high = raw[i + 2 : i + 6]
        if high[0] in "dD" and high[1] in "89abAB":  # a high surrogate: its pair must arrive too
            if i + 12 > n:
                return i, False
            i += 12
            continue
        i += 6
    return n, False
