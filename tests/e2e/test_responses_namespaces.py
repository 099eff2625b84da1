"""The Responses API as Codex uses it in late 2026: namespaced tools round-trip under the namespace and
name the client sent, and every 400 names its param in the Responses API's own terms."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import Simulator, marker

MODEL = "claude-haiku-4-5"
SPAWN = {
    "type": "function",
    "name": "spawn_agent",
    "description": "Start a sub-agent.",
    "parameters": {"type": "object", "properties": {"task": {"type": "string"}}, "required": ["task"]},
}
NAMESPACE = {
    "type": "namespace",
    "name": "multi_agent_v1",
    "description": "Agents that work beside you.",
    "tools": [SPAWN],
}


def respond(http: httpx.Client, **body: Any) -> httpx.Response:
    return http.post("/v1/responses", json={"model": MODEL, "store": False, **body})


def test_a_namespaced_tool_call_comes_back_under_its_namespace(http: httpx.Client, simulator: Simulator) -> None:
    tag = marker()
    first = respond(http, input=f"sim:tool {tag}", tools=[NAMESPACE])
    assert first.status_code == 200, first.text
    (call,) = [item for item in first.json()["output"] if item["type"] == "function_call"]
    assert (call["namespace"], call["name"], call["arguments"]) == (
        "multi_agent_v1",
        "spawn_agent",
        '{"task":"sample"}',
    )
    sent = simulator.find(tag)["body"]
    (tool,) = sent["tools"]
    assert tool["name"] == "multi_agent_v1__spawn_agent"  # within Claude's tool-name rules
    assert tool["description"].startswith("[multi_agent_v1: Agents that work beside you.]")
    # The client sends the call back as it got it, with its output; Claude sees its own flat name.
    again = marker()
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "agent started"}
    second = respond(http, input=[{"role": "user", "content": f"{again}"}, call, output], tools=[NAMESPACE])
    assert second.status_code == 200, second.text
    assert "agent started" in second.json()["output"][-1]["content"][0]["text"]
    turn = simulator.find(again)["body"]["messages"][1]["content"]
    assert [b["name"] for b in turn if b["type"] == "tool_use"] == ["multi_agent_v1__spawn_agent"]


def test_a_namespaced_call_streams_under_its_namespace(http: httpx.Client) -> None:
    with http.stream(
        "POST", "/v1/responses", json={"model": MODEL, "input": "sim:tool go", "tools": [NAMESPACE], "stream": True}
    ) as answer:
        text = answer.read().decode()
    assert answer.status_code == 200
    assert '"namespace":"multi_agent_v1"' in text.replace(" ", "") and '"name":"spawn_agent"' in text.replace(" ", "")


def test_very_long_namespaced_names_stay_distinct_and_valid(http: httpx.Client, simulator: Simulator) -> None:
    long = "x" * 70
    tools = [{**NAMESPACE, "name": long, "tools": [{**SPAWN, "name": f"{long}_a"}, {**SPAWN, "name": f"{long}_b"}]}]
    tag = marker()
    assert respond(http, input=tag, tools=tools).status_code == 200
    names = [t["name"] for t in simulator.find(tag)["body"]["tools"]]
    assert len(set(names)) == 2 and all(len(n) <= 64 for n in names)


STRICT = {"x-chatgate-compatibility": "strict"}
BAD = [
    ("negative output limit", {"input": "hi", "max_output_tokens": -1}, {}, "max_output_tokens"),
    ("output limit above the model's", {"input": "hi", "max_output_tokens": 10_000_000}, STRICT, "max_output_tokens"),
    ("empty message", {"input": [{"role": "user", "content": []}]}, {}, "input[0]"),
    (
        "empty message after the instructions",
        {"instructions": "Be brief.", "input": [{"role": "user", "content": "hi"}, {"role": "user", "content": []}]},
        {},
        "input[1]",
    ),
    (
        "unknown forced function",
        {"input": "hi", "tools": [SPAWN], "tool_choice": {"type": "function", "name": "nope"}},
        {},
        "tool_choice",
    ),
    ("temperature out of range", {"input": "hi", "temperature": 3}, {}, "temperature"),
    (
        "strict reasoning effort",
        {"model": "claude-sonnet-5-5", "input": "hi", "reasoning": {"effort": "minimal"}},
        STRICT,
        "reasoning.effort",
    ),
    (
        "strict forced tool on a model that refuses it",
        {"model": "claude-opus-5-5", "input": "hi", "tools": [SPAWN], "tool_choice": "required"},
        STRICT,
        "tool_choice",
    ),
    (
        "strict unsupported setting",
        {"input": "hi", "truncation": "auto"},
        STRICT,
        "truncation",
    ),
]


@pytest.mark.parametrize(("body", "headers", "param"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_every_400_names_its_param_in_responses_terms(
    http: httpx.Client, body: dict[str, Any], headers: dict[str, str], param: str, stream: bool
) -> None:
    answer = http.post("/v1/responses", json={"model": MODEL, "stream": stream, **body}, headers=headers)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param
    assert "max_completion_tokens" not in error["message"] and "`messages`" not in error["message"]
