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


USAGE_CASES = {
    "plain": ({"input_tokens": 19, "output_tokens": 6}, (19, 6, 25, 0, 0, 0, 0, 0)),
    "cache read and write": (
        {"input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 40},
        (145, 2, 147, 100, 40, 0, 0, 0),
    ),
    "write split and thinking": (
        {
            "input_tokens": 1,
            "output_tokens": 9,
            "cache_creation_input_tokens": 30,
            "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20},
            "output_tokens_details": {"thinking_tokens": 7},
        },
        (31, 9, 40, 0, 30, 10, 20, 7),
    ),
    "nulls and empty objects read as zero": (
        {
            "input_tokens": 3,
            "output_tokens": None,
            "cache_read_input_tokens": None,
            "cache_creation": None,
            "output_tokens_details": {},
        },
        (3, 0, 3, 0, 0, 0, 0, 0),
    ),
    "nothing at all": ({}, (0, 0, 0, 0, 0, 0, 0, 0)),
}


@pytest.mark.parametrize("usage, expected", USAGE_CASES.values(), ids=USAGE_CASES.keys())
def test_usage_fields_table(usage: dict[str, object], expected: tuple[int, ...]) -> None:
    from service.providers.anthropic.response import usage_from

    out = usage_from(usage)
    details = out.prompt_tokens_details
    assert (
        out.prompt_tokens,
        out.completion_tokens,
        out.total_tokens,
        details.cached_tokens,
        details.cache_creation_tokens,
        details.cache_write_5m_tokens,
        details.cache_write_1h_tokens,
        out.completion_tokens_details.reasoning_tokens,
    ) == expected
    # both detail messages are always present, as clients of the gRPC API read them
    assert out.HasField("prompt_tokens_details") and out.HasField("completion_tokens_details")


MALFORMED_USAGE = {
    "a count that is text": ({"input_tokens": "19", "output_tokens": 6}, "usage `input_tokens` is not an integer"),
    "the first bad count is named": (
        {"cache_read_input_tokens": 1.5, "output_tokens": "x"},
        "usage `cache_read_input_tokens` is not an integer",
    ),
    "a split that is not an object": ({"cache_creation": [1]}, "usage `cache_creation` is not an object"),
    "objects are checked before their counts": (
        {"cache_creation": {"ephemeral_5m_input_tokens": "x"}, "output_tokens_details": 3},
        "usage `output_tokens_details` is not an object",
    ),
    "a count inside the split": (
        {"cache_creation": {"ephemeral_1h_input_tokens": "x"}},
        "usage `ephemeral_1h_input_tokens` is not an integer",
    ),
    "thinking tokens that are text": (
        {"output_tokens_details": {"thinking_tokens": "7"}},
        "usage `thinking_tokens` is not an integer",
    ),
}


@pytest.mark.parametrize("usage, message", MALFORMED_USAGE.values(), ids=MALFORMED_USAGE.keys())
def test_malformed_usage_is_named(usage: dict[str, object], message: str) -> None:
    from service.providers.anthropic.response import usage_from
    from service.transport import Malformed

    with pytest.raises(Malformed) as raised:
        usage_from(usage)
    assert str(raised.value) == message
