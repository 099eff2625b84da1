"""Compaction on the Responses API, through the OpenAI SDK: `responses.compact(...)` and
`context_management`, each leaving a conversation that continues with far fewer input tokens, and a
stored chain that continues across a compaction."""

from __future__ import annotations

import warnings
from typing import Any

import httpx
import openai
import pytest

from tests.support import Simulator, marker

MODEL = "claude-haiku-4-5"


def items(output: Any) -> list[dict[str, Any]]:
    with warnings.catch_warnings():  # the SDK types a compaction's user messages as output messages
        warnings.simplefilter("ignore")
        return [item.model_dump(exclude_none=True) for item in output]


def long_conversation(client: openai.OpenAI, turns: int = 3) -> list[dict[str, Any]]:
    """A stateless conversation whose answers are long (the simulator writes 300 words each)."""
    conversation: list[dict[str, Any]] = []
    for turn in range(turns):
        conversation.append({"role": "user", "content": f"Turn {turn}: sim:notool sim:words=300 go on"})
        reply = client.responses.create(model=MODEL, input=conversation, store=False)  # type: ignore[arg-type]
        conversation += items(reply.output)
    return conversation


def test_compact_returns_the_user_messages_and_one_compaction_item(client: openai.OpenAI) -> None:
    conversation = long_conversation(client)
    compacted = client.responses.compact(model=MODEL, input=conversation)  # type: ignore[arg-type]
    assert compacted.object == "response.compaction"
    kept = items(compacted.output)
    assert [i["type"] for i in kept] == ["message", "message", "message", "compaction"]
    assert [i["role"] for i in kept[:3]] == ["user", "user", "user"]
    assert kept[-1]["encrypted_content"].startswith("chatgate.c1.") and compacted.usage.output_tokens > 0
    follow_up = {"role": "user", "content": "sim:notool And now?"}
    whole = client.responses.create(model=MODEL, input=[*conversation, follow_up], store=False)  # type: ignore[arg-type]
    after = client.responses.create(model=MODEL, input=[*kept, follow_up], store=False)  # type: ignore[arg-type]
    assert after.output_text.startswith("[chatgate simulator] You said: And now?")
    assert after.usage is not None and whole.usage is not None
    assert after.usage.input_tokens < whole.usage.input_tokens / 3  # the turns are replaced by a summary


def test_the_summary_is_written_upstream_and_read_back_by_claude(client: openai.OpenAI, simulator: Simulator) -> None:
    tag = marker()
    conversation = [{"role": "user", "content": f"{tag} sim:notool plan the work"}]
    conversation += items(client.responses.create(model=MODEL, input=conversation, store=False).output)  # type: ignore[arg-type]
    kept = items(client.responses.compact(model=MODEL, input=conversation).output)  # type: ignore[arg-type]
    summarized = simulator.find(tag)["body"]
    assert "Summarize this conversation" in str(summarized["messages"][-1]["content"])
    again = marker()
    client.responses.create(model=MODEL, input=[*kept, {"role": "user", "content": again}], store=False)  # type: ignore[arg-type]
    turns = simulator.find(again)["body"]["messages"]
    assert turns[-2]["role"] == "assistant" and "earlier part of this conversation was compacted" in str(turns[-2])


def test_context_management_compacts_past_the_threshold(client: openai.OpenAI) -> None:
    conversation = long_conversation(client)
    follow_up = {"role": "user", "content": "sim:notool And now?"}
    plain = client.responses.create(model=MODEL, input=[*conversation, follow_up], store=False)  # type: ignore[arg-type]
    managed = client.responses.create(
        model=MODEL,
        input=[*conversation, follow_up],  # type: ignore[arg-type]
        store=False,
        context_management=[{"type": "compaction", "compact_threshold": 500}],
    )
    kinds = [item.type for item in managed.output]
    assert kinds[0] == "compaction" and kinds[-1] == "message"
    assert managed.usage is not None and plain.usage is not None
    assert managed.usage.input_tokens < plain.usage.input_tokens / 3
    under = client.responses.create(
        model=MODEL,
        input=[follow_up],  # type: ignore[list-item]
        store=False,
        context_management=[{"type": "compaction", "compact_threshold": 100_000}],
    )
    assert [item.type for item in under.output] == ["message"]  # below the threshold: nothing compacted


def test_a_stored_chain_continues_across_a_compaction(client: openai.OpenAI, http: httpx.Client) -> None:
    first = client.responses.create(model=MODEL, input="sim:notool sim:words=300 start")
    second = client.responses.create(model=MODEL, input="sim:notool sim:words=300 more", previous_response_id=first.id)
    third = client.responses.create(
        model=MODEL,
        input="sim:notool again",
        previous_response_id=second.id,
        context_management=[{"type": "compaction", "compact_threshold": 200}],
    )
    assert third.output[0].type == "compaction"
    fourth = client.responses.create(model=MODEL, input="sim:notool and then?", previous_response_id=third.id)
    assert fourth.output_text.startswith("[chatgate simulator] You said: and then?")
    listed = http.get(f"/v1/responses/{third.id}/input_items", params={"order": "asc"}).json()["data"]
    assert [i["type"] for i in listed][-2:] == ["compaction", "message"]  # the chain restarts at the compaction
    assert fourth.usage is not None and second.usage is not None
    assert fourth.usage.input_tokens < second.usage.input_tokens


def test_compacting_a_stored_chain_by_its_id(client: openai.OpenAI) -> None:
    first = client.responses.create(model=MODEL, input="sim:notool sim:words=300 start")
    compacted = client.responses.compact(model=MODEL, previous_response_id=first.id)
    assert [item.type for item in compacted.output] == ["message", "compaction"]


@pytest.mark.parametrize(
    ("entry", "param"),
    [
        ({"type": "truncate"}, "context_management[0].type"),
        ({"type": "compaction", "compact_threshold": 0}, "context_management[0].compact_threshold"),
    ],
)
def test_bad_context_management_is_a_400_naming_it(http: httpx.Client, entry: dict[str, Any], param: str) -> None:
    answer = http.post("/v1/responses", json={"model": MODEL, "input": "hi", "context_management": [entry]})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == param


def test_a_damaged_compaction_item_is_a_400_naming_it(http: httpx.Client) -> None:
    damaged = {"type": "compaction", "encrypted_content": "chatgate.c1.not-base64!"}
    answer = http.post("/v1/responses", json={"model": MODEL, "input": [damaged, {"role": "user", "content": "hi"}]})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "input[0].encrypted_content"
