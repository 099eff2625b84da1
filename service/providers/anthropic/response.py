"""Anthropic Messages API reply -> chatgate.v1 completion. Pure functions."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from chatgate.v1 import chat_pb2
from service.upstream import Malformed, object_field, required_str

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
    """OpenAI counts cached input inside ``prompt_tokens``; Anthropic reports it beside."""
    cache_read = _count(usage, "cache_read_input_tokens")
    cache_write = _count(usage, "cache_creation_input_tokens")
    prompt = _count(usage, "input_tokens") + cache_read + cache_write
    completion = _count(usage, "output_tokens")
    return chat_pb2.Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=chat_pb2.PromptTokensDetails(cached_tokens=cache_read, cache_creation_tokens=cache_write),
        # Always present, as OpenAI sends it; reasoning tokens are not reported separately by Anthropic yet.
        completion_tokens_details=chat_pb2.CompletionTokensDetails(),
    )


def _count(usage: dict[str, Any], key: str) -> int:
    value = usage.get(key) or 0
    if not isinstance(value, int):
        raise Malformed(f"usage `{key}` is not an integer")
    return value


def completion_from_message(message: dict[str, Any], *, json_tool: str | None = None) -> chat_pb2.ChatCompletion:
    reply = chat_pb2.ChatMessage(role=chat_pb2.ROLE_ASSISTANT)
    texts: list[str] = []
    reasoning: list[str] = []
    json_tool_used = False
    content = message.get("content") or ()
    if not isinstance(content, list):
        raise Malformed("`content` is not a list")
    for block in content:
        if not isinstance(block, dict):
            raise Malformed("a content block is not an object")
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            if json_tool is not None and block.get("name") == json_tool:
                json_tool_used = True
                texts.append(arguments)
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
    if texts or not reply.tool_calls:
        reply.content.add(text="".join(texts))  # every text block, never only the first or last
    if reasoning:
        reply.reasoning_content = "".join(reasoning)
    return chat_pb2.ChatCompletion(
        id="chatcmpl-" + str(message.get("id", "")),
        created=int(time.time()),
        model=str(message.get("model", "")),
        choices=[
            chat_pb2.Choice(
                index=0,
                message=reply,
                finish_reason=finish_reason(message.get("stop_reason"), json_tool_used=json_tool_used),
            )
        ],
        usage=usage_from(object_field(message, "usage")),
    )
