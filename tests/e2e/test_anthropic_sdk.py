"""The native Messages surface, driven by the official `anthropic` SDK with a gateway key.

The gateway runs as its own process in front of the simulator (which only answers the
upstream key, so every success proves the caller's key was swapped for the gateway's).
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import grpc
import httpx
import orjson
import pytest

from chatgate.v1 import chat_service_pb2_grpc
from tests.support import (
    FIXTURES,
    MAPPING_ONLY,
    UPSTREAM_KEY,
    Gateway,
    Simulator,
    eventually,
    grpc_request,
    marker,
    metric_sum,
    start_gateway,
)

GATEWAY_KEY = "cgk-native-test-key-42"
SESSION = FIXTURES.parent / "sessions" / "claude_code.json"
MODEL = "claude-haiku-4-5"
THINKER = "claude-opus-4-7"
UPSTREAM_MODEL = "claude-haiku-4-5-20251001"  # what MODEL resolves to upstream
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n").decode()
TOOLS: list[dict[str, Any]] = [
    {
        "name": name,
        "description": f"The {name} tool.",
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    }
    for name in ("lookup", "search", "fetch")
]


@pytest.fixture(scope="module")
def native(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = start_gateway(
        tmp_path_factory.mktemp("native"),
        env={
            **MAPPING_ONLY,
            "ANTHROPIC_API_KEY": UPSTREAM_KEY,
            "ANTHROPIC_BASE_URL": simulator.url,
            "CHATGATE_API_KEYS": GATEWAY_KEY,
            "CHATGATE_LOG_LEVEL": "info",
        },
    )
    yield gateway
    gateway.stop()
    assert UPSTREAM_KEY not in gateway.log() and GATEWAY_KEY not in gateway.log()


@pytest.fixture(scope="module")
def claude(native: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=native.http_url, api_key=GATEWAY_KEY, max_retries=0, timeout=30)


def blocks(content: Any) -> list[dict[str, Any]]:
    """Content blocks as data, without the ids the upstream makes anew for each answer (and a
    stream's final message types text blocks as parsed ones)."""
    return [block.model_dump(exclude={"parsed_output", "id", "tool_use_id"}) for block in content]


def ask(text: str, **fields: Any) -> dict[str, Any]:
    return {
        "model": fields.pop("model", MODEL),
        "max_tokens": fields.pop("max_tokens", 1024),
        "messages": [{"role": "user", "content": text}],
        **fields,
    }


def test_text_whole_and_streamed_with_the_callers_key_swapped(
    claude: anthropic.Anthropic, simulator: Simulator
) -> None:
    tag = marker()
    message = claude.messages.create(**ask(tag))
    assert message.content[0].type == "text" and tag in message.content[0].text
    assert message.model == "claude-haiku-4-5-20251001" and message.stop_reason == "end_turn"
    assert message._request_id and message._request_id.startswith("req_sim_")  # the upstream's id, passed on
    received = simulator.find(tag)
    assert received["body"]["model"] == "claude-haiku-4-5-20251001"  # resolved through the catalog
    assert received["has_api_key"] and GATEWAY_KEY not in json.dumps(received)
    with claude.messages.stream(**ask(tag)) as stream:
        streamed = stream.get_final_message()
    assert blocks(streamed.content) == blocks(message.content) and streamed.usage == message.usage


def test_a_wrong_gateway_key_is_refused_in_anthropics_shape(native: Gateway, simulator: Simulator) -> None:
    intruder = anthropic.Anthropic(base_url=native.http_url, api_key="cgk-wrong", max_retries=0)
    before = simulator.stats()["requests"]
    with pytest.raises(anthropic.AuthenticationError) as caught:
        intruder.messages.create(**ask("x"))
    assert caught.value.body["type"] == "error" and caught.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    assert caught.value.response.headers["request-id"] and simulator.stats()["requests"] == before
    assert caught.value.body["request_id"] == caught.value.request_id == caught.value.response.headers["request-id"]  # type: ignore[index]


def test_tools_and_parallel_tools(claude: anthropic.Anthropic) -> None:
    one = claude.messages.create(**ask("sim:tool find it", tools=TOOLS))
    assert [b.type for b in one.content] == ["tool_use"] and one.stop_reason == "tool_use"
    many = claude.messages.create(**ask("sim:parallel sim:preamble all of them", tools=TOOLS))
    assert [b.type for b in many.content] == ["text", "tool_use", "tool_use", "tool_use"]
    with claude.messages.stream(**ask("sim:parallel sim:preamble all of them", tools=TOOLS)) as stream:
        assert blocks(stream.get_final_message().content) == blocks(many.content)


def test_a_signed_thinking_tool_loop(claude: anthropic.Anthropic) -> None:
    first = claude.messages.create(
        **ask(
            "sim:tool look it up",
            model=THINKER,
            max_tokens=4000,
            tools=TOOLS,
            thinking={"type": "adaptive", "display": "summarized"},
        )
    )
    thinking, call = first.content[0], first.content[-1]
    assert thinking.type == "thinking" and thinking.signature and thinking.thinking
    assert call.type == "tool_use"
    follow = {
        "model": THINKER,
        "max_tokens": 4000,
        "tools": TOOLS,
        "thinking": {"type": "adaptive", "display": "summarized"},
        "messages": [
            {"role": "user", "content": "sim:tool look it up"},
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "42"}]},
        ],
    }
    with claude.messages.stream(**follow) as stream:  # the simulator verifies the signature it made
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn" and "42" in final.content[-1].text  # type: ignore[union-attr]


def test_images_and_pdfs(claude: anthropic.Anthropic) -> None:
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
        {"type": "text", "text": "What are these?"},
    ]
    message = claude.messages.create(model=MODEL, max_tokens=200, messages=[{"role": "user", "content": content}])
    text = message.content[0].text  # type: ignore[union-attr]
    assert "image (image/png)" in text and "document (application/pdf)" in text


def test_web_search_citations_and_unknown_blocks_survive(claude: anthropic.Anthropic) -> None:
    search = [{"type": "web_search_20250305", "name": "web_search"}]
    message = claude.messages.create(**ask("what do gateways do", tools=search))
    kinds = [b.type for b in message.content]
    assert kinds == ["server_tool_use", "web_search_tool_result", "text", "text"]
    assert message.content[3].citations[0].url.startswith("https://")  # type: ignore[union-attr]
    with claude.messages.stream(**ask("what do gateways do", tools=search)) as stream:
        assert blocks(stream.get_final_message().content) == blocks(message.content)
    future = claude.messages.create(**ask("sim:future_block hello"))
    assert future.content[0].type == "future_block"  # a block type no SDK knows yet, passed on


def test_cache_control_with_both_ttls(claude: anthropic.Anthropic, simulator: Simulator) -> None:
    tag = marker()
    system = [{"type": "text", "text": "Long rules.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    user = [{"type": "text", "text": f"sim:cache {tag}", "cache_control": {"type": "ephemeral", "ttl": "5m"}}]
    message = claude.messages.create(
        model=MODEL, max_tokens=100, system=system, messages=[{"role": "user", "content": user}]
    )  # type: ignore[arg-type]
    body = simulator.find(tag)["body"]
    assert body["system"] == system and body["messages"][0]["content"] == user
    usage = message.usage
    assert usage.cache_read_input_tokens and usage.cache_creation is not None
    assert usage.cache_creation.ephemeral_1h_input_tokens == usage.cache_creation_input_tokens


def test_a_beta_body_field_goes_with_its_header(claude: anthropic.Anthropic, simulator: Simulator) -> None:
    tag = marker()
    edits = {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}
    message = claude.beta.messages.create(**ask(tag), betas=["context-management-2025-06-27"], context_management=edits)  # type: ignore[arg-type]
    assert message.content
    received = simulator.find(tag)
    assert received["headers"]["anthropic-beta"] == "context-management-2025-06-27"
    assert received["body"]["context_management"] == edits
    with pytest.raises(anthropic.BadRequestError) as caught:  # without it, the upstream refuses the field
        claude.messages.create(**ask(marker()), extra_body={"context_management": edits})
    assert "Extra inputs" in caught.value.message


def test_count_tokens(claude: anthropic.Anthropic) -> None:
    tag = marker()
    counted = claude.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": tag}])
    message = claude.messages.create(**ask(tag))
    assert counted.input_tokens == message.usage.input_tokens > 0


def test_models_list_with_paging(claude: anthropic.Anthropic, native: Gateway) -> None:
    first = claude.models.list(limit=2)
    assert len(first.data) == 2 and first.has_more
    ids = [m.id for m in claude.models.list(limit=2)]  # the SDK follows the pages
    openai_shaped = httpx.get(native.http_url + "/v1/models", headers={"authorization": f"Bearer {GATEWAY_KEY}"}).json()
    assert ids == [m["id"] for m in openai_shaped["data"]]
    one = claude.models.retrieve(THINKER)
    assert (one.id, one.max_tokens, one.type) == (THINKER, 128_000, "model")


# The upstream's own error answers pass through, status and body (Claude Code's retry logic reads them).
ERRORS = [
    (400, anthropic.BadRequestError, 400, "invalid_request_error"),
    (402, anthropic.APIStatusError, 402, "billing_error"),
    (403, anthropic.PermissionDeniedError, 403, "permission_error"),
    (404, anthropic.NotFoundError, 404, "not_found_error"),
    (413, anthropic.RequestTooLargeError, 413, "request_too_large"),
    (429, anthropic.RateLimitError, 429, "rate_limit_error"),
    (500, anthropic.InternalServerError, 500, "api_error"),
    (529, anthropic.OverloadedError, 529, "overloaded_error"),
]


@pytest.mark.parametrize(("upstream", "cls", "status", "kind"), ERRORS, ids=[str(e[0]) for e in ERRORS])
def test_every_upstream_error_class(
    upstream: int, cls: type[anthropic.APIStatusError], status: int, kind: str, claude: anthropic.Anthropic
) -> None:
    for stream in (False, True):
        with pytest.raises(cls) as caught:
            if stream:
                with claude.messages.stream(**ask(f"sim:status={upstream} {marker()}")) as s:
                    s.get_final_message()
            else:
                claude.messages.create(**ask(f"sim:status={upstream} {marker()}"))
        assert caught.value.status_code == status
        assert caught.value.body["error"]["type"] == kind  # type: ignore[index]
        assert caught.value.body["request_id"] == caught.value.response.headers["request-id"]  # type: ignore[index]
        assert UPSTREAM_KEY not in json.dumps(caught.value.body)


PASSED_THROUGH = [400, 401, 403, 404, 413, 429, 500, 529]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("status", PASSED_THROUGH)
def test_upstream_error_answers_pass_through_byte_for_byte(
    status: int, stream: bool, native: Gateway, simulator: Simulator
) -> None:
    """The body the gateway answers is the one the upstream gives for the same request, to the byte,
    with the upstream's status (the request names the upstream's model id, so the bytes sent upstream
    are the client's own and a direct call is the same request)."""
    body = orjson.dumps(ask(f"sim:status={status} {marker()}", model=UPSTREAM_MODEL, stream=stream))
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    through = httpx.post(
        native.http_url + "/v1/messages?beta=true",
        content=body,
        headers={**headers, "x-api-key": GATEWAY_KEY},
        timeout=30,
    )
    direct = httpx.post(
        simulator.url + "/v1/messages", content=body, headers={**headers, "x-api-key": UPSTREAM_KEY}, timeout=30
    )
    assert (through.status_code, through.content) == (direct.status_code, direct.content)
    assert through.headers["request-id"] == direct.headers["request-id"]  # the SDKs' `_request_id`


def test_a_mid_stream_error_event_passes_through_byte_for_byte(native: Gateway, simulator: Simulator) -> None:
    body = orjson.dumps(ask(f"sim:error_after=2 {marker()}", model=UPSTREAM_MODEL, stream=True))
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    through = httpx.post(
        native.http_url + "/v1/messages", content=body, headers={**headers, "x-api-key": GATEWAY_KEY}, timeout=30
    )
    direct = httpx.post(
        simulator.url + "/v1/messages", content=body, headers={**headers, "x-api-key": UPSTREAM_KEY}, timeout=30
    )
    last = direct.content.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
    assert last.startswith(b"event: error") and through.content.rstrip(b"\n").endswith(last)


def test_a_query_string_is_forwarded(native: Gateway, simulator: Simulator) -> None:
    """Claude Code posts to `/v1/messages?beta=true`: accepted, and the upstream gets it too."""
    tag = marker()
    reply = httpx.post(
        native.http_url + "/v1/messages?beta=true",
        json=ask(tag),
        headers={"x-api-key": GATEWAY_KEY, "anthropic-version": "2023-06-01"},
        timeout=30,
    )
    assert reply.status_code == 200
    seen = [r for r in httpx.get(simulator.url + "/_sim/requests").json() if tag in json.dumps(r["body"])]
    assert seen and seen[-1]["query"] == "beta=true"


def test_an_upstream_401_is_passed_through_and_the_key_quarantined(simulator: Simulator, tmp_path: Path) -> None:
    """The upstream's 401 answer reaches the caller as sent; the gateway's key is quarantined and verified."""
    gateway = start_gateway(
        tmp_path, env={**MAPPING_ONLY, "ANTHROPIC_API_KEY": UPSTREAM_KEY, "ANTHROPIC_BASE_URL": simulator.url}
    )
    try:
        client = anthropic.Anthropic(base_url=gateway.http_url, api_key="unused", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError) as caught:
            client.messages.create(**ask(f"sim:status=401 {marker()}"))
        assert caught.value.status_code == 401 and caught.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
        assert UPSTREAM_KEY not in json.dumps(caught.value.body)
    finally:
        gateway.stop()


def test_a_mid_stream_error_ends_the_stream_with_an_error_event(claude: anthropic.Anthropic) -> None:
    seen: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        claude.messages.stream(**ask("sim:error_after=3 sim:words=10")) as stream,
    ):
        for text in stream.text_stream:
            seen.append(text)
    assert len(seen) == 3
    assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


def test_a_cancelled_stream_stops_the_upstream_within_a_second(
    claude: anthropic.Anthropic, simulator: Simulator
) -> None:
    before = simulator.stats()["aborted"]
    with claude.messages.stream(**ask("sim:words=60 sim:pace_ms=200")) as stream:
        next(iter(stream.text_stream))
    assert eventually(lambda: simulator.stats()["aborted"] > before, timeout=1.0)


def test_retired_names_are_served_by_their_successor(claude: anthropic.Anthropic, simulator: Simulator) -> None:
    tag = marker()
    with pytest.warns(DeprecationWarning):  # the SDK knows the name is retired; the gateway serves it anyway
        raw = claude.messages.with_raw_response.create(**ask(tag, model="claude-sonnet-4-20250514"))
    assert raw.headers["x-chatgate-adjusted"] == "model=claude-sonnet-4-20250514->claude-sonnet-5-5"
    assert simulator.find(tag)["body"]["model"] == "claude-sonnet-5-5"
    with pytest.raises(anthropic.NotFoundError) as caught:
        claude.messages.create(
            **ask("x", model="claude-3.5-haiku"), extra_headers={"x-chatgate-compatibility": "strict"}
        )
    assert "claude-haiku-5-5" in caught.value.body["error"]["message"]  # type: ignore[index]


def test_a_claude_code_session_streams_the_simulators_bytes(
    claude: anthropic.Anthropic, native: Gateway, simulator: Simulator
) -> None:
    session = json.loads(SESSION.read_text())
    request = copy.deepcopy(session["request"])
    headers = {**session["headers"], "content-type": "application/json"}
    turns = list(session["turns"])
    for _ in range(6):
        body = json.dumps(request).encode()
        via_gateway = httpx.post(
            native.http_url + "/v1/messages", content=body, headers={**headers, "x-api-key": GATEWAY_KEY}, timeout=30
        )
        direct = httpx.post(
            simulator.url + "/v1/messages", content=body, headers={**headers, "x-api-key": UPSTREAM_KEY}, timeout=30
        )
        assert via_gateway.status_code == direct.status_code == 200
        assert via_gateway.content == direct.content and via_gateway.headers["content-type"].startswith(
            "text/event-stream"
        )
        reply = rebuild(direct.content)
        request["messages"].append({"role": "assistant", "content": reply["content"]})
        if reply["stop_reason"] == "tool_use":
            results = [
                {"type": "tool_result", "tool_use_id": b["id"], "content": "done"}
                for b in reply["content"]
                if b["type"] == "tool_use"
            ]
            request["messages"].append({"role": "user", "content": results})
        elif turns:
            request["messages"].append({"role": "user", "content": turns.pop(0)})
        else:
            break
    assert sum(1 for m in request["messages"] if m["role"] == "assistant") >= 4  # two tool loops and answers


def rebuild(stream: bytes) -> dict[str, Any]:
    """A streamed message put back together (what a client appends to the conversation)."""
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, str] = {}
    stop = ""
    for event in stream.decode().split("\n\n"):
        data = next((line[6:] for line in event.splitlines() if line.startswith("data: ")), None)
        if data is None:
            continue
        payload = json.loads(data)
        kind = payload["type"]
        if kind == "content_block_start":
            blocks[payload["index"]] = dict(payload["content_block"])
        elif kind == "content_block_delta":
            delta, block = payload["delta"], blocks[payload["index"]]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "input_json_delta":
                partial[payload["index"]] = partial.get(payload["index"], "") + delta["partial_json"]
        elif kind == "message_delta":
            stop = payload["delta"]["stop_reason"]
    for index, raw in partial.items():
        blocks[index]["input"] = json.loads(raw)
    return {"content": [blocks[i] for i in sorted(blocks)], "stop_reason": stop}


def access_lines(gateway: Gateway, request_id: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in gateway.log().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "chatgate.access" and line.get("request_id") == request_id]


def test_usage_is_the_same_over_both_surfaces_and_zero_when_refused(native: Gateway) -> None:
    auth = {"authorization": f"Bearer {GATEWAY_KEY}"}
    tag = f"sim:cache {marker()}"
    native_id, chat_id, refused_id = marker(), marker(), marker()
    # The same logical request: the user turn as the chat path sends it upstream (a list of text blocks).
    same = {
        "model": MODEL,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": [{"type": "text", "text": tag}]}],
    }
    httpx.post(
        native.http_url + "/v1/messages", json=same, headers={**auth, "x-request-id": native_id}, timeout=30
    ).raise_for_status()
    chat = {"model": MODEL, "max_tokens": 1024, "messages": [{"role": "user", "content": tag}]}
    httpx.post(
        native.http_url + "/v1/chat/completions", json=chat, headers={**auth, "x-request-id": chat_id}, timeout=30
    ).raise_for_status()
    assert eventually(lambda: access_lines(native, native_id) and access_lines(native, chat_id))
    [over_native], [over_chat] = access_lines(native, native_id), access_lines(native, chat_id)
    keys = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    assert [over_native[k] for k in keys] == [over_chat[k] for k in keys] and over_native["input_tokens"] > 0
    assert over_native["route"] == "/v1/messages" and over_native["finish_reasons"] == ["stop"]
    refused = httpx.post(
        native.http_url + "/v1/messages",
        json=ask("sim:status=429"),
        headers={**auth, "x-request-id": refused_id},
        timeout=30,
    )
    assert refused.status_code == 429
    assert eventually(lambda: access_lines(native, refused_id))
    [line] = access_lines(native, refused_id)
    assert line.get("input_tokens", 0) == 0 and line.get("output_tokens", 0) == 0 and line["outcome"] != "ok"
    metrics = httpx.get(native.http_url + "/metrics").text
    assert metric_sum(metrics, "chatgate_tokens_total", kind="cache_read") > 0
    assert metric_sum(metrics, "chatgate_requests_total", route="/v1/messages", outcome="ok") > 0


def test_grpc_count_tokens_counts_the_request_as_it_would_be_sent(native: Gateway) -> None:
    key = (("authorization", f"Bearer {GATEWAY_KEY}"),)
    tag = marker()
    with grpc.insecure_channel(native.grpc_target) as channel:
        stub = chat_service_pb2_grpc.ChatCompletionServiceStub(channel)
        counted = stub.CountTokens(grpc_request(tag, max_tokens=50), metadata=key, timeout=10)
        reply = stub.CreateChatCompletion(grpc_request(tag, max_tokens=50), metadata=key, timeout=10)
        assert counted.input_tokens == reply.usage.prompt_tokens > 0 and counted.model == MODEL
        retired = stub.CountTokens(grpc_request(tag, model="claude-3.5-haiku"), metadata=key, timeout=10)
        assert retired.model == "claude-haiku-5-5" and retired.input_tokens == counted.input_tokens
        with pytest.raises(grpc.RpcError) as failed:
            stub.CountTokens(grpc_request(tag, model="claude-nope"), metadata=key, timeout=10)
        assert failed.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
        with pytest.raises(grpc.RpcError) as refused:
            stub.CountTokens(grpc_request(tag), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]


def test_silent_streams_get_anthropic_pings(simulator: Simulator, tmp_path: Path) -> None:
    gateway = start_gateway(
        tmp_path,
        env={
            **MAPPING_ONLY,
            "ANTHROPIC_API_KEY": UPSTREAM_KEY,
            "ANTHROPIC_BASE_URL": simulator.url,
            "CHATGATE_HEARTBEAT": "0.2",
        },
    )
    try:
        body = ask("sim:stall_after_start=1 sim:words=3", stream=True)
        with httpx.stream(
            "POST",
            gateway.http_url + "/v1/messages",
            json=body,
            headers={"anthropic-version": "2023-06-01"},
            timeout=30,
        ) as response:
            streamed = response.read()
        assert b'event: ping\ndata: {"type": "ping"}\n\n' in streamed and streamed.rstrip().endswith(
            b'{"type":"message_stop"}'
        )
    finally:
        gateway.stop()


SYSTEM_MID_CONVERSATION = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."},
    {"role": "system", "content": "The user's local time is 09:00."},
    {"role": "user", "content": "What now?"},
]


@pytest.mark.parametrize(("beta", "status"), [("mid-conversation-system-2026-04-07", 200), (None, 400)])
def test_system_messages_inside_messages_follow_the_beta(native: Gateway, beta: str | None, status: int) -> None:
    """Claude Code's current default model sends `system`-role messages inside `messages` with the
    mid-conversation beta; the simulator accepts them then, as the API does, and refuses them without."""
    headers = {"x-api-key": GATEWAY_KEY, "anthropic-version": "2023-06-01"}
    if beta:
        headers["anthropic-beta"] = f"claude-code-20250219,{beta}"
    body = {"model": MODEL, "max_tokens": 64, "messages": SYSTEM_MID_CONVERSATION}
    reply = httpx.post(native.http_url + "/v1/messages?beta=true", json=body, headers=headers, timeout=30)
    assert reply.status_code == status, reply.text
    if status == 200:
        assert reply.json()["content"][0]["text"]
    else:
        assert reply.json()["error"]["message"].startswith("messages.2.role")
