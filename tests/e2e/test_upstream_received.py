"""What the upstream really received, read back from the simulator's request log."""

from __future__ import annotations

from typing import Any

import openai

from tests.support import MODEL, UPSTREAM_KEY, Simulator, marker


def send(client: openai.OpenAI, simulator: Simulator, tag: str = "", **fields: Any) -> dict[str, Any]:
    """Sends a request that mentions ``tag`` and returns what the upstream received for it."""
    tag = tag or marker()
    messages = fields.pop("messages", [{"role": "user", "content": tag}])
    client.chat.completions.create(model=fields.pop("model", MODEL), messages=messages, **fields)
    return simulator.find(tag)


def test_protocol_headers_and_key(client: openai.OpenAI, simulator: Simulator) -> None:
    entry = send(
        client, simulator, extra_headers={"anthropic-beta": "context-1m-2025-08-07", "x-request-id": "trace-me-1"}
    )
    assert entry["headers"] == {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "context-1m-2025-08-07",
        "content-type": "application/json",
        "x-request-id": "trace-me-1",  # the caller's id, kept end to end for correlation
    }
    assert entry["has_api_key"]  # the simulator only answers UPSTREAM_KEY, so this is the configured key
    assert UPSTREAM_KEY not in str(entry)


def test_seed_parameter_rows(client: openai.OpenAI, simulator: Simulator) -> None:
    tag = marker()
    body = send(
        client,
        simulator,
        tag,
        messages=[
            {"role": "system", "content": "Rule one."},
            {"role": "developer", "content": "Rule two."},
            {"role": "user", "content": tag},
        ],
        max_tokens=300,
        temperature=0.4,
        stop=["END", "STOP"],
        user="u-1",
    )["body"]
    assert body["model"] == "claude-haiku-4-5-20251001"
    assert body["system"] == [{"type": "text", "text": "Rule one."}, {"type": "text", "text": "Rule two."}]
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": tag}]}]
    assert (body["max_tokens"], body["temperature"]) == (300, 0.4)
    assert body["stop_sequences"] == ["END", "STOP"]
    assert body["metadata"] == {"user_id": "u-1"}
    assert "stream" not in body


def test_stream_flag(client: openai.OpenAI, simulator: Simulator) -> None:
    tag = marker()
    list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": tag}], stream=True))
    assert simulator.find(tag)["body"]["stream"] is True


def test_tool_definitions_and_tool_results(client: openai.OpenAI, simulator: Simulator) -> None:
    tag = marker()
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Find things",
                "parameters": {"type": "object", "properties": {"q": {"type": "string", "maxLength": 50}}},
            },
        }
    ]
    body = send(
        client,
        simulator,
        tag,
        tools=tools,
        tool_choice="required",
        messages=[
            {"role": "user", "content": tag},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}},
                    {"id": "call_b", "type": "function", "function": {"name": "lookup", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": "result a"},
            {"role": "tool", "tool_call_id": "call_b", "content": "result b"},
            {"role": "user", "content": tag},
        ],
    )["body"]
    assert body["tools"] == [
        {
            "name": "lookup",
            "description": "Find things",
            "input_schema": {"type": "object", "properties": {"q": {"type": "string", "maxLength": 50}}},
        }
    ]
    assert body["tool_choice"] == {"type": "any"}
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_a", "name": "lookup", "input": {"q": "x"}},
                {"type": "tool_use", "id": "call_b", "name": "lookup", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_a", "content": "result a"},
                {"type": "tool_result", "tool_use_id": "call_b", "content": "result b"},
                {"type": "text", "text": tag},
            ],
        },
    ]
