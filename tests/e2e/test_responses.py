"""`/v1/responses` through real processes, driven by the official `openai` SDK (`client.responses`).

The simulator answers as Anthropic would and checks what it is sent: thinking blocks coming back
must carry the signatures it issued, and tool results must answer the calls it made.
"""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.store.test_battery import POSTGRES, drop_schema, postgres_answers
from tests.support import MODEL, UPSTREAM_KEY, Gateway, Simulator, eventually, marker, missing_service, start_gateway
from tests.tcp_proxy import Proxy

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
APPLY_PATCH = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files with a patch",
    "format": {"type": "grammar", "syntax": "lark", "definition": 'start: "*** Begin Patch" /(.|\\n)*/'},
}
PNG = base64.b64encode(bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108020000009077")).decode()


def events_of(stream: Any) -> list[Any]:
    events = list(stream)
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(numbers[0], numbers[0] + len(events))), "sequence numbers run without gaps"
    return events


def test_text_whole_and_streamed_agree(client: openai.OpenAI, simulator: Simulator) -> None:
    tag = marker()
    whole = client.responses.create(model=MODEL, instructions="Be brief", input=f"Say hello {tag}")
    assert whole.status == "completed" and whole.object == "response" and whole.id.startswith("resp_")
    assert tag in whole.output_text and whole.instructions == "Be brief"
    assert whole.usage is not None and whole.usage.total_tokens == whole.usage.input_tokens + whole.usage.output_tokens
    assert simulator.find(tag)["body"]["system"] in ("Be brief", [{"type": "text", "text": "Be brief"}])
    with client.responses.stream(model=MODEL, instructions="Be brief", input=f"Say hello {tag}") as stream:
        events = events_of(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == final.output_text
    assert final.output_text == whole.output_text and final.usage == whole.usage


def test_function_tools_multi_turn_stateless(client: openai.OpenAI, simulator: Simulator) -> None:
    tag = marker()
    history: list[Any] = [{"role": "user", "content": f"Weather in Rome? {tag}"}]
    first = client.responses.create(model=MODEL, input=history, tools=[WEATHER], store=False)
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and call.arguments == '{"city":"sample"}' and call.call_id
    history += [item.model_dump(exclude_none=True) for item in first.output]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 24 C"})
    with client.responses.stream(model=MODEL, input=history, tools=[WEATHER], store=False) as stream:
        final = stream.get_final_response()
    assert final.status == "completed" and f"{call.call_id} -> sunny, 24 C" in final.output_text
    sent = simulator.find(tag)["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[2]["content"][0] == {"type": "tool_result", "tool_use_id": call.call_id, "content": "sunny, 24 C"}
    with pytest.raises(openai.NotFoundError):  # store: false keeps nothing
        client.responses.retrieve(first.id)


def test_function_tools_continued_with_previous_response_id(client: openai.OpenAI, simulator: Simulator) -> None:
    tag = marker()
    first = client.responses.create(model=MODEL, input=f"Weather in Rome? {tag}", tools=[WEATHER])
    [call] = [item for item in first.output if item.type == "function_call"]
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "rainy"}],
        tools=[WEATHER],
    )
    assert f"{call.call_id} -> rainy" in second.output_text and second.previous_response_id == first.id
    assert [m["role"] for m in simulator.find(tag)["body"]["messages"]] == ["user", "assistant", "user"]
    assert client.responses.retrieve(second.id).output_text == second.output_text
    items = client.responses.input_items.list(second.id)
    assert [i.type for i in items.data] == ["function_call_output"]  # its own input only
    assert [i.type for i in client.responses.input_items.list(first.id, order="asc").data] == ["message"]


def test_a_custom_tool_streams_its_free_form_input(client: openai.OpenAI, simulator: Simulator) -> None:
    tag = marker()
    raw = client.responses.with_raw_response.create(
        model=MODEL, input=f"Fix the bug {tag}", tools=[APPLY_PATCH], tool_choice="required", stream=True
    )
    assert "tools[0].format=adjusted" in raw.headers["x-chatgate-adjusted"]
    events = events_of(raw.parse())
    kinds = [e.type for e in events]
    assert "response.custom_tool_call_input.delta" in kinds and "response.custom_tool_call_input.done" in kinds
    [done] = [e for e in events if e.type == "response.output_item.done"]
    item = done.item
    assert (item.type, item.name, item.input) == ("custom_tool_call", "apply_patch", "sample")
    deltas = "".join(e.delta for e in events if e.type == "response.custom_tool_call_input.delta")
    assert deltas == item.input
    tool = simulator.find(tag)["body"]["tools"][0]
    assert tool["input_schema"]["properties"]["input"]["type"] == "string" and "lark" in tool["description"]
    final = events[-1].response
    after = client.responses.create(
        model=MODEL,
        previous_response_id=final.id,
        input=[{"type": "custom_tool_call_output", "call_id": item.call_id, "output": "patched"}],
        tools=[APPLY_PATCH],
    )
    assert f"{item.call_id} -> patched" in after.output_text


def test_images_and_files_reach_claude(client: openai.OpenAI, simulator: Simulator) -> None:
    tag = marker()
    content = [
        {"type": "input_text", "text": f"What is this? {tag}"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"},
        {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQK"},
    ]
    reply = client.responses.create(model=MODEL, input=[{"role": "user", "content": content}])
    assert reply.status == "completed"
    blocks = simulator.find(tag)["body"]["messages"][0]["content"]
    assert [b["type"] for b in blocks] == ["text", "image", "document"]
    assert blocks[1]["source"] == {"type": "base64", "media_type": "image/png", "data": PNG}


def test_json_schema_output(client: openai.OpenAI, simulator: Simulator) -> None:
    tag = marker()
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    reply = client.responses.create(
        model=MODEL,
        input=f"Where? {tag}",
        text={"format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}},
    )
    assert reply.output_text and isinstance(__import__("json").loads(reply.output_text)["city"], str)
    sent = simulator.find(tag)["body"]
    assert sent["output_config"]["format"]["schema"]["properties"] == schema["properties"]


def test_reasoning_round_trips_statelessly_through_encrypted_content(
    client: openai.OpenAI, simulator: Simulator
) -> None:
    """What Codex does: store false, encrypted reasoning included, items sent back each turn."""
    tag = marker()
    history: list[Any] = [{"role": "user", "content": f"Weather? {tag}"}]
    settings: dict[str, Any] = {
        "model": MODEL,
        "tools": [WEATHER],
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "reasoning": {"effort": "high", "summary": "auto"},
    }
    with client.responses.stream(input=history, **settings) as stream:
        events = events_of(stream)
        first = stream.get_final_response()
    reasoning = [i for i in first.output if i.type == "reasoning"]
    assert len(reasoning) == 1 and reasoning[0].encrypted_content and reasoning[0].summary
    assert "response.reasoning_summary_text.delta" in [e.type for e in events]
    [call] = [i for i in first.output if i.type == "function_call"]
    history += [i.model_dump(exclude_none=True) for i in first.output]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "sunny"})
    second = client.responses.create(input=history, **settings)  # the simulator checks the signature
    assert second.status == "completed" and "sunny" in second.output_text
    thinking = simulator.find(tag)["body"]["messages"][1]["content"][0]
    assert thinking["type"] == "thinking" and thinking["signature"]
    forged = [dict(i) for i in history]
    forged[1]["encrypted_content"] = forged[1]["encrypted_content"][:-8] + "AAAAAAA="
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(input=forged, **settings)
    assert caught.value.code in ("invalid_encrypted_content", "invalid_request_error")


def test_reasoning_without_summaries_keeps_only_the_encrypted_block(client: openai.OpenAI) -> None:
    reply = client.responses.create(model=MODEL, input="Think first", reasoning={"effort": "low"})
    [item] = [i for i in reply.output if i.type == "reasoning"]
    assert item.summary == [] and item.encrypted_content and reply.usage.output_tokens_details.reasoning_tokens > 0


def test_retrieve_list_and_delete(client: openai.OpenAI) -> None:
    reply = client.responses.create(
        model=MODEL, input=[{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]
    )
    assert client.responses.retrieve(reply.id).model_dump() == reply.model_dump()
    newest_first = client.responses.input_items.list(reply.id)
    assert [i.content[0].text for i in newest_first.data] == ["two", "one"]
    page = client.responses.input_items.list(reply.id, order="asc", limit=1)
    assert [i.content[0].text for i in page.data] == ["one"] and page.has_more
    client.responses.delete(reply.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(reply.id)
    with pytest.raises(openai.BadRequestError) as caught:  # OpenAI's answer: 400, naming the field
        client.responses.create(model=MODEL, input="again", previous_response_id=reply.id)
    assert caught.value.param == "previous_response_id" and caught.value.code == "previous_response_not_found"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, openai.BadRequestError),
        (403, openai.PermissionDeniedError),
        (404, openai.NotFoundError),
        (409, openai.ConflictError),
        (413, openai.APIStatusError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (529, openai.InternalServerError),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_errors_keep_their_class(
    client: openai.OpenAI, status: int, error: type[Exception], stream: bool
) -> None:
    with pytest.raises(error) as caught:
        reply = client.responses.create(model=MODEL, input=f"sim:status={status}", stream=stream)
        list(reply) if stream else None  # type: ignore[call-overload]
    assert isinstance(caught.value, openai.APIStatusError) and caught.value.status_code >= 400
    assert UPSTREAM_KEY not in str(caught.value.body)


def test_a_mid_stream_failure_ends_with_error_then_response_failed(client: openai.OpenAI) -> None:
    events = events_of(client.responses.create(model=MODEL, input="sim:words=20 sim:error_after=3", stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and "response.output_text.delta" in kinds
    assert kinds[-2:] == ["error", "response.failed"] and "response.completed" not in kinds
    failed = events[-1].response
    assert failed.status == "failed" and failed.error.code == "server_overloaded" and failed.error.message
    assert events[-2].code == "server_overloaded"


def test_input_tokens_are_counted_as_the_request_would_be_sent(client: openai.OpenAI) -> None:
    settings: dict[str, Any] = {"model": MODEL, "instructions": "Be brief", "tools": [WEATHER]}
    counted = client.responses.input_tokens.count(input="How many tokens is this?", **settings)
    assert counted.object == "response.input_tokens" and counted.input_tokens > 0
    reply = client.responses.create(input="How many tokens is this?", tool_choice="none", store=False, **settings)
    assert reply.usage is not None and counted.input_tokens == reply.usage.input_tokens
    first = client.responses.create(input="Remember this.", model=MODEL)
    longer = client.responses.input_tokens.count(model=MODEL, input="And this.", previous_response_id=first.id)
    alone = client.responses.input_tokens.count(model=MODEL, input="And this.")
    assert longer.input_tokens > alone.input_tokens  # the stored conversation is counted too


def test_a_client_that_leaves_cancels_the_upstream(client: openai.OpenAI, simulator: Simulator) -> None:
    before = simulator.stats()["aborted"]
    with client.responses.stream(model=MODEL, input="sim:words=60 sim:pace_ms=200", store=False) as stream:
        next(e for e in stream if e.type == "response.output_text.delta")
    assert eventually(lambda: simulator.stats()["aborted"] > before, timeout=1.0)


def test_usage_lands_in_the_ledger_under_the_responses_route(gateway: Gateway, client: openai.OpenAI) -> None:
    tag = marker()
    client.responses.create(model=MODEL, input=f"count me {tag}", store=False)
    ledger = sqlite3.connect(gateway.log_path.parent / "ledger.sqlite3")
    try:
        found = lambda: ledger.execute(  # noqa: E731
            "SELECT COUNT(*) FROM usage_ledger WHERE route = '/v1/responses' AND output_tokens > 0"
        ).fetchone()[0]
        assert eventually(lambda: found() > 0, timeout=5)
    finally:
        ledger.close()


def test_bad_input_is_a_400_naming_the_param(http: httpx.Client) -> None:
    cases = [
        ({"input": "hi"}, "model"),
        ({"model": MODEL, "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"model": MODEL, "input": "x", "conversation": "conv_1"}, "conversation"),
        ({"model": MODEL, "input": "x", "previous_response_id": "resp_does_not_exist"}, "previous_response_id"),
    ]
    for body, param in cases:
        answer = http.post("/v1/responses", json=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["param"] == param
    strict = http.post(
        "/v1/responses",
        json={"model": MODEL, "input": "x", "truncation": "auto"},
        headers={"x-chatgate-compatibility": "strict"},
    )
    assert strict.status_code == 400 and strict.json()["error"]["param"] == "truncation"
    lenient = http.post("/v1/responses", json={"model": MODEL, "input": "x", "truncation": "auto", "top_logprobs": 3})
    assert lenient.status_code == 200
    assert lenient.headers["x-chatgate-adjusted"] == "truncation=dropped, top_logprobs=dropped"


@pytest.fixture
def keyed_gateway(simulator: Simulator, tmp_path: Path) -> Iterator[Gateway]:
    gateway = start_gateway(
        tmp_path,
        env={
            "ANTHROPIC_API_KEY": UPSTREAM_KEY,
            "ANTHROPIC_BASE_URL": simulator.url,
            "CHATGATE_API_KEYS": "key-a,key-b",
        },
    )
    yield gateway
    gateway.stop()


def test_a_caller_sees_only_its_own_responses(keyed_gateway: Gateway) -> None:
    a, b = (
        openai.OpenAI(base_url=keyed_gateway.http_url + "/v1", api_key=k, max_retries=0) for k in ("key-a", "key-b")
    )
    mine = a.responses.create(model=MODEL, input="private")
    assert a.responses.retrieve(mine.id).id == mine.id
    for attempt in (
        lambda: b.responses.retrieve(mine.id),
        lambda: b.responses.input_items.list(mine.id),
        lambda: b.responses.delete(mine.id),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    with pytest.raises(openai.BadRequestError) as caught:  # as if it did not exist
        b.responses.create(model=MODEL, input="x", previous_response_id=mine.id)
    assert caught.value.code == "previous_response_not_found"
    assert a.responses.retrieve(mine.id).id == mine.id  # b's delete did nothing


def test_replicas_sharing_postgresql_continue_each_others_responses(simulator: Simulator, tmp_path: Path) -> None:
    if not postgres_answers():
        missing_service(
            "PostgreSQL is not answering on 127.0.0.1:5432: stored responses across replicas were not tested"
        )
    schema = f"t_{uuid.uuid4().hex[:12]}"
    env = {
        "ANTHROPIC_API_KEY": UPSTREAM_KEY,
        "ANTHROPIC_BASE_URL": simulator.url,
        "CHATGATE_RESPONSES_URL": f"{POSTGRES}?schema={schema}",
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = start_gateway(tmp_path / "a", env=env), start_gateway(tmp_path / "b", env=env)
    try:
        with (
            openai.OpenAI(base_url=first.http_url + "/v1", api_key="x", max_retries=0) as on_a,
            openai.OpenAI(base_url=second.http_url + "/v1", api_key="x", max_retries=0) as on_b,
        ):
            continue_across(on_a, on_b)
    finally:
        first.stop()
        second.stop()
        asyncio.run(drop_schema(schema))


def continue_across(on_a: openai.OpenAI, on_b: openai.OpenAI) -> None:
    tag = marker()
    started = on_a.responses.create(model=MODEL, input=f"Weather? {tag}", tools=[WEATHER])
    [call] = [i for i in started.output if i.type == "function_call"]
    with on_b.responses.stream(
        model=MODEL,
        previous_response_id=started.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "foggy"}],
        tools=[WEATHER],
    ) as stream:
        continued = stream.get_final_response()
    assert f"{call.call_id} -> foggy" in continued.output_text
    assert on_a.responses.retrieve(continued.id).output_text == continued.output_text
    on_b.responses.delete(started.id)
    with pytest.raises(openai.NotFoundError):
        on_a.responses.retrieve(started.id)
    with pytest.raises(openai.BadRequestError) as caught:  # its continuation lost its start
        on_a.responses.create(model=MODEL, input="more", previous_response_id=continued.id)
    assert caught.value.code == "previous_response_not_found"


def test_responses_can_be_switched_off(simulator: Simulator, tmp_path: Path) -> None:
    env = {"ANTHROPIC_API_KEY": UPSTREAM_KEY, "ANTHROPIC_BASE_URL": simulator.url, "CHATGATE_RESPONSES_URL": "off"}
    gateway = start_gateway(tmp_path, env=env)
    try:
        with openai.OpenAI(base_url=gateway.http_url + "/v1", api_key="x", max_retries=0) as client:
            check_off(client)
    finally:
        gateway.stop()


def check_off(client: openai.OpenAI) -> None:
    raw = client.responses.with_raw_response.create(model=MODEL, input="hi")
    assert "store=dropped" in raw.headers["x-chatgate-adjusted"] and raw.parse().store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(raw.parse().id)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=MODEL, input="x", previous_response_id="resp_1")


def test_a_store_outage_never_fails_an_answer_and_says_so_on_reads(simulator: Simulator, tmp_path: Path) -> None:
    """Stored responses on PostgreSQL behind a proxy the test cuts: answers keep coming (the store is not
    on their path to the client), a continuation that needs the store is a 503 `store_unavailable`, and
    everything works again once the database is back."""
    if not postgres_answers():
        missing_service("PostgreSQL is not answering on 127.0.0.1:5432: a stored-responses outage was not tested")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    proxy = Proxy(("127.0.0.1", 5432))
    env = {
        "ANTHROPIC_API_KEY": UPSTREAM_KEY,
        "ANTHROPIC_BASE_URL": simulator.url,
        "CHATGATE_RESPONSES_URL": f"postgresql://postgres@127.0.0.1:{proxy.port}/test?schema={schema}",
    }
    gateway = start_gateway(tmp_path, env=env)
    try:
        with openai.OpenAI(base_url=gateway.http_url + "/v1", api_key="x", max_retries=0) as client:
            kept = client.responses.create(model=MODEL, input="before the outage")
            proxy.cut()
            during = client.responses.create(model=MODEL, input="during the outage")
            assert during.status == "completed" and during.output_text
            with client.responses.stream(model=MODEL, input="streamed during the outage") as stream:
                assert stream.get_final_response().status == "completed"
            assert eventually(lambda: "could not be stored" in gateway.log(), timeout=10)
            with pytest.raises(openai.InternalServerError) as caught:
                client.responses.create(model=MODEL, input="more", previous_response_id=kept.id)
            assert caught.value.status_code == 503 and caught.value.code == "store_unavailable"
            proxy.restore()

            def continues() -> bool:
                try:
                    client.responses.create(model=MODEL, input="after", previous_response_id=kept.id)
                except openai.InternalServerError:
                    return False
                return True

            assert eventually(continues, timeout=15)
            with pytest.raises(openai.NotFoundError):  # answered, but never stored: honest about it
                client.responses.retrieve(during.id)
    finally:
        gateway.stop()
        proxy.close()
        asyncio.run(drop_schema(schema))
