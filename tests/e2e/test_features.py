"""What `make run` users try end to end on the simulator: images, JSON mode, reasoning with tool loops,
finish reasons and cache usage, through the OpenAI SDK."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState

from tests.support import MODEL, Simulator, marker

PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5"
    "ErkJggg=="
)
LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    },
}
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city", "days"],
}


def ask(client: openai.OpenAI, content: Any, **fields: Any) -> Any:
    return client.chat.completions.create(
        model=fields.pop("model", MODEL), messages=[{"role": "user", "content": content}], **fields
    )


def test_images_by_data_url_and_https_url(client: openai.OpenAI, simulator: Simulator) -> None:
    tag = marker()
    reply = ask(
        client,
        [
            {"type": "text", "text": f"Describe {tag}"},
            {"type": "image_url", "image_url": {"url": PNG}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ],
    )
    assert reply.choices[0].message.content.endswith("I received image (image/png), image (url).")
    sources = [b["source"]["type"] for b in simulator.find(tag)["body"]["messages"][0]["content"][1:]]
    assert sources == ["base64", "url"]


def test_unsupported_image_type_is_a_400_naming_the_part(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, [{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,SUkqAA=="}}])
    assert caught.value.param == "messages[0].content[0].image_url"


def test_json_schema_natively(client: openai.OpenAI) -> None:
    reply = ask(
        client,
        "Plan a trip",
        response_format={"type": "json_schema", "json_schema": {"name": "trip", "schema": SCHEMA}},
    )
    assert json.loads(reply.choices[0].message.content) == {"city": "sample", "days": 1}
    assert reply.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
def test_json_mode_through_a_forced_tool_reads_as_plain_content(client: openai.OpenAI, stream: bool) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "trip", "schema": SCHEMA}}
    if not stream:
        reply = ask(client, "Plan a trip", model="claude-3.5-haiku", response_format=fmt)
        message, finish = reply.choices[0].message, reply.choices[0].finish_reason
    else:
        state = ChatCompletionStreamState()
        for chunk in ask(client, "Plan a trip", model="claude-3.5-haiku", response_format=fmt, stream=True):
            state.handle_chunk(chunk)
        final = state.current_completion_snapshot
        message, finish = final.choices[0].message, final.choices[0].finish_reason
    assert json.loads(message.content) == {"city": "sample", "days": 1}
    assert not message.tool_calls and finish == "stop"


def test_reasoning_with_a_tool_loop_round_trips_signed_thinking(client: openai.OpenAI) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Look it up"}]
    first = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        tools=[LOOKUP],  # type: ignore[arg-type, list-item]
        reasoning_effort="low",
    )
    message = first.choices[0].message
    extra = message.model_extra or {}
    assert extra["reasoning_content"].startswith("The user asked: Look it up")
    assert extra["thinking_blocks"][0]["signature"]
    assert first.choices[0].finish_reason == "tool_calls"
    call = message.tool_calls[0]  # type: ignore[index]
    messages += [
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "found it"},
    ]
    second = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        tools=[LOOKUP],  # type: ignore[arg-type, list-item]
        reasoning_effort="low",
    )
    assert second.choices[0].message.content == f"Tool results received: {call.id} -> found it."

    tampered = json.loads(json.dumps(messages))
    tampered[1]["thinking_blocks"][0]["thinking"] += " (edited)"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=tampered, tools=[LOOKUP], reasoning_effort="low")  # type: ignore[arg-type, list-item]
    assert "signature" in caught.value.message


def test_text_then_tool_streams_with_tool_index_zero(client: openai.OpenAI) -> None:
    state = ChatCompletionStreamState()
    for chunk in ask(client, "Go sim:preamble", tools=[LOOKUP], stream=True):
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                assert call.index == 0
        state.handle_chunk(chunk)
    message = state.current_completion_snapshot.choices[0].message
    assert message.content == "Let me call a tool."
    assert [c.function.name for c in message.tool_calls or []] == ["lookup"]


@pytest.mark.parametrize(
    ("text", "fields", "finish"),
    [
        ("sim:refusal", {}, "content_filter"),
        ("sim:words=50", {"max_tokens": 5}, "length"),
        ("one two STOP three", {"stop": ["STOP"]}, "stop"),
        ("sim:context", {}, "length"),
        ("sim:pause", {}, "stop"),
    ],
    ids=["refusal", "max_tokens", "stop_sequence", "context_window", "pause_turn"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
def test_finish_reasons(client: openai.OpenAI, text: str, fields: dict[str, Any], finish: str, stream: bool) -> None:
    if stream:
        chunks = list(ask(client, text, stream=True, **fields))
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == finish
    else:
        assert ask(client, text, **fields).choices[0].finish_reason == finish


def test_cache_usage_is_identical_streaming_and_not(client: openai.OpenAI) -> None:
    whole = ask(client, "sim:cache cached please")
    chunks = list(ask(client, "sim:cache cached please", stream=True, stream_options={"include_usage": True}))
    assert whole.usage is not None and whole.usage.prompt_tokens_details is not None
    assert whole.usage.prompt_tokens_details.cached_tokens > 0
    assert chunks[-1].usage == whole.usage
