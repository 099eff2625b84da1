"""Whole replies: text blocks, tool calls, thinking, finish reasons and usage."""

from __future__ import annotations

import json

import pytest

from chatgate.v1 import chat_pb2
from service.providers.anthropic.response import completion_from_message, finish_reason
from tests.support import FIXTURES


def load(name: str) -> chat_pb2.ChatCompletion:
    return completion_from_message(json.loads((FIXTURES / f"{name}.json").read_text()))


def test_every_text_block_is_concatenated() -> None:
    reply = load("several_text_blocks")
    assert reply.choices[0].message.content[0].text == "First block. Second block. Third block."
    assert reply.id == "chatcmpl-msg_01Blocks"


def test_tool_use_blocks_become_tool_calls_with_json_arguments() -> None:
    message = load("parallel_tools").choices[0].message
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls] == [
        ("toolu_01P", "get_weather", {"location": "Paris"}),
        ("toolu_01Q", "get_time", {}),
    ]
    assert message.content[0].text == "Checking both."
    assert load("parallel_tools").choices[0].finish_reason == chat_pb2.FINISH_REASON_TOOL_CALLS


def test_thinking_blocks_come_back_verbatim_with_reasoning_text() -> None:
    message = load("thinking_text").choices[0].message
    assert message.reasoning_content == "Let me think. 2 + 2 is 4."
    assert [(b.type, b.signature or b.data) for b in message.thinking_blocks] == [
        (chat_pb2.THINKING_BLOCK_TYPE_THINKING, "c2lnbmF0dXJlLW9uZQ=="),
        (chat_pb2.THINKING_BLOCK_TYPE_REDACTED, "EmwKAhgB"),
    ]


def test_usage_includes_cache_reads_and_writes() -> None:
    usage = load("cache_usage").usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (2010, 5, 2015)
    assert usage.prompt_tokens_details.cached_tokens == 1800


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "FINISH_REASON_STOP"),
        ("stop_sequence", "FINISH_REASON_STOP"),
        ("max_tokens", "FINISH_REASON_LENGTH"),
        ("tool_use", "FINISH_REASON_TOOL_CALLS"),
        ("refusal", "FINISH_REASON_CONTENT_FILTER"),
        ("model_context_window_exceeded", "FINISH_REASON_LENGTH"),
        ("pause_turn", "FINISH_REASON_STOP"),
        ("a_reason_from_the_future", "FINISH_REASON_STOP"),
    ],
)
def test_finish_reason_table(stop_reason: str, expected: str) -> None:
    assert chat_pb2.FinishReason.Name(finish_reason(stop_reason)) == expected


def test_json_mode_tool_reply_is_plain_content_with_stop() -> None:
    message = {
        "id": "m",
        "model": "x",
        "stop_reason": "tool_use",
        "usage": {},
        "content": [{"type": "tool_use", "id": "t", "name": "chatgate_json_response", "input": {"a": 1}}],
    }
    reply = completion_from_message(message, json_tool="chatgate_json_response")
    assert reply.choices[0].message.content[0].text == '{"a":1}'
    assert not reply.choices[0].message.tool_calls
    assert reply.choices[0].finish_reason == chat_pb2.FINISH_REASON_STOP
