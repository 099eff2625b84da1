"""A recorded Codex-shaped session, turn by turn through chatgate, checked event by event on the wire.

Each turn sends what Codex sends: the whole history (its earlier output items as the stream's
`response.output_item.done` gave them, encrypted reasoning included) plus the new items. The
simulator verifies every thinking signature that comes back, and answers each tool output."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pydantic
from openai.types.responses import ResponseStreamEvent

from tests.support import ROOT, Gateway, Simulator

SESSION = json.loads((ROOT / "tests" / "fixtures" / "sessions" / "codex.json").read_text())
EVENT = pydantic.TypeAdapter(ResponseStreamEvent)
ITEM_EVENTS = ("response.output_text", "response.content_part", "response.function_call_arguments",
               "response.custom_tool_call_input", "response.reasoning_summary")  # fmt: skip


def sse_events(body: str) -> list[dict[str, Any]]:
    events = []
    for frame in body.split("\n\n"):
        lines = [line for line in frame.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), frame
        event = json.loads(lines[1].removeprefix("data: "))
        assert lines[0] == "event: " + event["type"]
        EVENT.validate_python(event)  # every field OpenAI's own types require, with the right types
        events.append(event)
    return events


def check_order(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI's stream grammar; returns the finished items."""
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    assert events[-1]["type"] == "response.completed"
    open_item: dict[str, Any] | None = None
    done: list[dict[str, Any]] = []
    for event in events[2:-1]:
        kind = event["type"]
        if kind == "response.output_item.added":
            assert open_item is None and event["output_index"] == len(done)
            open_item = event["item"]
        elif kind == "response.output_item.done":
            assert open_item is not None and event["item"]["id"] == open_item["id"]
            done.append(event["item"])
            open_item = None
        elif kind.startswith(ITEM_EVENTS):
            assert open_item is not None and event["item_id"] == open_item["id"]
            assert event["output_index"] == len(done)
        else:
            raise AssertionError(f"unexpected event {kind}")
    assert open_item is None and events[-1]["response"]["output"] == done
    return done


def resolve(items: list[dict[str, Any]], call_id: str | None) -> list[dict[str, Any]]:
    return [{**item, "call_id": call_id} if item.get("call_id") == "$call" else item for item in copy.deepcopy(items)]


def test_a_codex_session_runs_turn_by_turn(gateway: Gateway, simulator: Simulator) -> None:
    history: list[dict[str, Any]] = []
    call_id: str | None = None
    with httpx.Client(base_url=gateway.http_url, timeout=30) as http:
        for number, turn in enumerate(SESSION["turns"]):
            history += resolve(turn["append"], call_id)
            body = {**SESSION["base"], "input": history}
            answer = http.post("/v1/responses", json=body, headers={"authorization": "Bearer codex"})
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"].startswith("text/event-stream")
            items = check_order(sse_events(answer.text))
            assert [i["type"] for i in items] == turn["expect"], f"turn {number}"
            reasoning = items[0]
            assert reasoning["encrypted_content"] and reasoning["summary"][0]["text"]
            calls = [i for i in items if i["type"] in ("function_call", "custom_tool_call")]
            call_id = calls[0]["call_id"] if calls else call_id
            history += items  # as Codex keeps them
    patch = [i for i in history if i.get("type") == "custom_tool_call"]
    assert [p["name"] for p in patch] == ["apply_patch"] and isinstance(patch[0]["input"], str)
    last = simulator.received()[-1]["body"]
    assert (
        sum(1 for m in last["messages"] for b in m["content"] if isinstance(b, dict) and b.get("type") == "thinking")
        == 3
    )
