"""Anthropic Messages API reply -> chatgate.v1 completion. Pure functions."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from chatgate.v1 import chat_pb2
from service.transport import Malformed, object_field, required_str

log = logging.getLogger("chatgate.anthropic")

STOP = chat_pb2.FINISH_REASON_STOP
FINISH_REASONS = {
    "end_turn": STOP,
    "stop_sequence": STOP,
    "pause_turn": STOP,
    "max_tokens": chat_pb2.FINISH_REASON_LENGTH,
    "model_context_window_exceeded": chat_pb2.FINISH_REASON_LENGTH,
    "tool_use": chat_pb2.FINISH_REASON_TOOL_CALLS,
    "refusal": chat_pb2.FINISH_REASON_CONTENT_FILTER,
}
_unknown_logged: set[str] = set()


def finish_reason(stop_reason: str | None, *, json_tool_used: bool = False) -> chat_pb2.FinishReason:
    """Maps ``stop_reason``; a JSON-mode tool call is an ordinary stop, and a
    reason newer than this table degrades to ``stop`` with one log line."""
    if stop_reason == "tool_use" and json_tool_used:
        return STOP
    reason = FINISH_REASONS.get(stop_reason or "end_turn")
    if reason is None:
        if stop_reason not in _unknown_logged:
            _unknown_logged.add(str(stop_reason))
            log.warning("unknown Anthropic stop_reason %r mapped to stop", stop_reason)
        return STOP
    return reason


def usage_from(usage: dict[str, Any]) -> chat_pb2.Usage:
    """OpenAI counts cached input inside ``prompt_tokens``; Anthropic reports it beside.

    Cache writes keep their 5-minute / 1-hour split (they are priced differently) and
    thinking tokens become ``reasoning_tokens`` when Anthropic reports them."""
    return fill_usage(chat_pb2.Usage(), usage)


def fill_usage(out: chat_pb2.Usage, usage: dict[str, Any]) -> chat_pb2.Usage:
    """``usage_from`` written into ``out``, a completion's own usage, say."""
    # Read here and checked in one test (a checked read per field cost more than the rest, on every
    # answer); anything else goes through the checked readers, in the same order, for the same error.
    get = usage.get
    cache_read, cache_write = get("cache_read_input_tokens") or 0, get("cache_creation_input_tokens") or 0
    input_tokens, completion = get("input_tokens") or 0, get("output_tokens") or 0
    if not (
        isinstance(cache_read, int)
        and isinstance(cache_write, int)
        and isinstance(input_tokens, int)
        and isinstance(completion, int)
    ):
        cache_read = _count(usage, "cache_read_input_tokens")
        cache_write = _count(usage, "cache_creation_input_tokens")
        input_tokens, completion = _count(usage, "input_tokens"), _count(usage, "output_tokens")
    prompt = input_tokens + cache_read + cache_write
    split = _object(usage, "cache_creation") if get("cache_creation") else _EMPTY
    details = _object(usage, "output_tokens_details") if get("output_tokens_details") else _EMPTY
    # Filled in place: messages passed to a constructor are each built, then copied in
    # (3.2 us a call against 1.2; it runs on every answer, and twice on a relayed stream).
    out.prompt_tokens, out.completion_tokens, out.total_tokens = prompt, completion, prompt + completion
    prompt_details = out.prompt_tokens_details
    prompt_details.cached_tokens = cache_read
    prompt_details.cache_creation_tokens = cache_write
    if split is not _EMPTY:  # plain proto3 ints: zero is what an unwritten one reads
        prompt_details.cache_write_5m_tokens = _count(split, "ephemeral_5m_input_tokens")
        prompt_details.cache_write_1h_tokens = _count(split, "ephemeral_1h_input_tokens")
    # Written even when zero: it makes `completion_tokens_details` present, as gRPC clients read it.
    out.completion_tokens_details.reasoning_tokens = _count(details, "thinking_tokens") if details is not _EMPTY else 0
    return out


_EMPTY: dict[str, Any] = {}  # an absent object, read only


def _object(usage: dict[str, Any], key: str) -> dict[str, Any]:
    value = usage.get(key) or {}
    if not isinstance(value, dict):
        raise Malformed(f"usage `{key}` is not an object")
    return value


def refusal_text(stop_details: Any) -> str:
    """The words for OpenAI's `refusal` from Anthropic's `stop_details` (empty without them): the
    explanation, and the policy category in brackets, so a client that shows or logs the refusal
    can tell why (`cyber`, say) without an Anthropic-only field."""
    if not isinstance(stop_details, dict) or stop_details.get("type") != "refusal":
        return ""
    explanation = stop_details.get("explanation")
    category = stop_details.get("category")
    said = explanation if isinstance(explanation, str) and explanation else "Claude declined to answer."
    return f"{said} (category: {category})" if isinstance(category, str) and category else said


def url_citation(citation: Any, start: int, end: int) -> chat_pb2.Annotation | None:
    """An OpenAI `url_citation` for a web citation; other citation kinds have no place in OpenAI's reply."""
    if not isinstance(citation, dict) or citation.get("type") != "web_search_result_location":
        if isinstance(citation, dict):
            log_once(f"citation:{citation.get('type')}", "Anthropic citations of type %r have no OpenAI equivalent")
        return None
    title = citation.get("title")
    return chat_pb2.Annotation(
        url_citation=chat_pb2.UrlCitation(
            start_index=start,
            end_index=end,
            url=str(citation.get("url", "")),
            title=title if isinstance(title, str) else "",
        )
    )


def log_once(key: str, message: str) -> None:
    if key not in _unknown_logged:
        _unknown_logged.add(key)
        log.info(message, key.partition(":")[2])


SERVER_BLOCKS = ("server_tool_use", "web_search_tool_result", "web_fetch_tool_result", "code_execution_tool_result")


def _count(usage: dict[str, Any], key: str) -> int:
    value = usage.get(key) or 0
    if not isinstance(value, int):
        raise Malformed(f"usage `{key}` is not an integer")
    return value


def completion_from_message(message: dict[str, Any], *, json_tool: str | None = None) -> chat_pb2.ChatCompletion:
    # Built in place, the reply inside its choice inside the completion: a message passed to a
    # constructor is copied in whole (6.6 us for a short text answer against 4.6).
    completion = chat_pb2.ChatCompletion(
        id="chatcmpl-" + str(message.get("id", "")), created=int(time.time()), model=str(message.get("model", ""))
    )
    choice = completion.choices.add(index=0)
    reply = choice.message
    reply.role = chat_pb2.ROLE_ASSISTANT
    texts: list[str] = []
    reasoning: list[str] = []
    json_tool_used = False
    content = message.get("content")
    if content is None:
        content = []  # absent; an empty list is an answer too (an immediate `end_turn`)
    if not isinstance(content, list):
        raise Malformed("`content` is not a list")
    length = 0  # characters of text so far, where each citation's span starts
    for block in content:
        if not isinstance(block, dict):
            raise Malformed("a content block is not an object")
        kind = block.get("type")
        if kind == "text":
            text = block.get("text", "")
            texts.append(text)
            for citation in block.get("citations") or ():
                annotation = url_citation(citation, length, length + len(text))
                if annotation is not None:
                    reply.annotations.append(annotation)
            length += len(text)
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            if json_tool is not None and block.get("name") == json_tool:
                json_tool_used = True
                texts.append(arguments)
                length += len(arguments)
                continue
            reply.tool_calls.add(
                id=required_str(block, "id"),
                type=chat_pb2.TOOL_TYPE_FUNCTION,
                function=chat_pb2.FunctionCall(name=required_str(block, "name"), arguments=arguments),
            )
        elif kind == "thinking":
            reasoning.append(block.get("thinking", ""))
            reply.thinking_blocks.add(
                type=chat_pb2.THINKING_BLOCK_TYPE_THINKING,
                thinking=block.get("thinking", ""),
                signature=block.get("signature", ""),
            )
        elif kind == "redacted_thinking":
            reply.thinking_blocks.add(type=chat_pb2.THINKING_BLOCK_TYPE_REDACTED, data=block.get("data", ""))
        elif kind not in SERVER_BLOCKS and not str(kind).endswith("_tool_result"):
            # Server-side tool calls and their results are the upstream's business: the
            # text around them is the answer. Anything newer is skipped, logged once.
            log_once(f"block:{kind}", "skipping Anthropic content block of type %r")
    refusal = refusal_text(message.get("stop_details"))
    if refusal:  # a plain proto3 string: leaving it unset is the same answer, one field write less
        reply.refusal = refusal
    if texts or not reply.tool_calls:
        reply.content.add(text="".join(texts))  # every text block, never only the first or last
    if reasoning:
        reply.reasoning_content = "".join(reasoning)
    choice.finish_reason = finish_reason(message.get("stop_reason"), json_tool_used=json_tool_used)
    fill_usage(completion.usage, object_field(message, "usage"))
    return completion
