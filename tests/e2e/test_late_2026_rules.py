"""Claude's late-2026 rules, each lenient (adjusted and reported) and strict (400 naming the param,
or INVALID_ARGUMENT) over both protocols, against the simulator, which refuses what the real API
refuses: forced tool use on models that reject it, thinking that cannot be turned off, refusals
with their category, and the rules of the `anthropic-version` the gateway is set to send.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import openai
import pytest

from chatgate.v1 import chat_pb2, chat_service_pb2, chat_service_pb2_grpc
from tests.support import MAPPING_ONLY, UPSTREAM_KEY, Gateway, Simulator, grpc_request, marker, start_gateway

Stub = chat_service_pb2_grpc.ChatCompletionServiceStub
OPUS = "claude-opus-5-5"  # always thinks; refuses forced tool use
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
GRPC_TOOL = chat_pb2.Tool(function=chat_pb2.FunctionDefinition(name="lookup"))
STRICT = {"compatibility": "strict"}


def chat(client: openai.OpenAI, text: str, **fields: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model=fields.pop("model", OPUS), messages=[{"role": "user", "content": text}], **fields
    )


def adjusted(stub: Stub, request: chat_service_pb2.ChatCompletionRequest) -> tuple[chat_pb2.ChatCompletion, str]:
    reply, call = stub.CreateChatCompletion.with_call(request, timeout=10)
    return reply, dict(call.trailing_metadata()).get("x-chatgate-adjusted", "")


def refused(stub: Stub, request: chat_service_pb2.ChatCompletionRequest) -> grpc.RpcError:
    request.compatibility = chat_pb2.COMPATIBILITY_STRICT
    with pytest.raises(grpc.RpcError) as failed:
        stub.CreateChatCompletion(request, timeout=10)
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    return failed.value


# --- forced tool use ------------------------------------------------------------------------------


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "lookup"}}])
def test_forced_tool_choice_becomes_auto_and_is_reported(
    choice: Any, client: openai.OpenAI, simulator: Simulator, stub: Stub
) -> None:
    tag = marker()
    raw = chat(client, tag, tools=[TOOL], tool_choice=choice)
    assert raw.http_response.status_code == 200
    assert raw.headers["x-chatgate-adjusted"] == "tool_choice=adjusted"
    assert simulator.find(tag)["body"]["tool_choice"] == {"type": "auto"}
    request = grpc_request(marker(), model=OPUS, tools=[GRPC_TOOL])
    request.tool_choice.mode = chat_pb2.TOOL_CHOICE_MODE_REQUIRED
    reply, report = adjusted(stub, request)
    assert reply.choices and report == "tool_choice=adjusted"


def test_strict_forced_tool_choice_is_refused_naming_tool_choice(client: openai.OpenAI, stub: Stub) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        chat(client, "x", tools=[TOOL], tool_choice="required", extra_body=STRICT)
    assert caught.value.body["param"] == "tool_choice"  # type: ignore[index]
    request = grpc_request("x", model=OPUS, tools=[GRPC_TOOL])
    request.tool_choice.function_name = "lookup"
    assert "tool_choice" in refused(stub, request).details()  # type: ignore[attr-defined]


def test_a_model_that_accepts_forced_tools_still_gets_them(client: openai.OpenAI, simulator: Simulator) -> None:
    tag = marker()
    raw = chat(client, tag, model="claude-haiku-4-5", tools=[TOOL], tool_choice="required")
    assert "x-chatgate-adjusted" not in raw.headers
    assert simulator.find(tag)["body"]["tool_choice"] == {"type": "any"}


# --- thinking that cannot be turned off ---------------------------------------------------------------


def test_turning_thinking_off_on_a_model_that_always_thinks_is_reported(
    client: openai.OpenAI, simulator: Simulator, stub: Stub
) -> None:
    tag = marker()
    raw = chat(client, tag, reasoning_effort="none")
    assert raw.http_response.status_code == 200
    assert raw.headers["x-chatgate-adjusted"] == "reasoning_effort=adjusted"
    assert "thinking" not in simulator.find(tag)["body"]  # never `disabled`, which the model refuses
    _, report = adjusted(stub, grpc_request(marker(), model=OPUS, reasoning_effort=chat_pb2.REASONING_EFFORT_NONE))
    assert report == "reasoning_effort=adjusted"


def test_strict_turning_thinking_off_is_refused(client: openai.OpenAI, stub: Stub) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        chat(client, "x", reasoning_effort="none", extra_body=STRICT)
    assert caught.value.body["param"] == "reasoning_effort"  # type: ignore[index]
    refused(stub, grpc_request("x", model=OPUS, reasoning_effort=chat_pb2.REASONING_EFFORT_NONE))


# --- refusals carry their category ----------------------------------------------------------------------


def test_a_refusal_is_content_filter_with_its_category(client: openai.OpenAI, http: httpx.Client, stub: Stub) -> None:
    reply = chat(client, "sim:refusal").parse()
    choice = reply.choices[0]
    assert choice.finish_reason == "content_filter" and "(category: general_harms)" in (choice.message.refusal or "")
    response = http.post("/v1/responses", json={"model": OPUS, "input": "sim:refusal"}).json()
    assert response["status"] == "incomplete" and response["incomplete_details"] == {"reason": "content_filter"}
    parts = [p for item in response["output"] if item["type"] == "message" for p in item["content"]]
    assert any(p["type"] == "refusal" and "general_harms" in p["refusal"] for p in parts)
    over_grpc = stub.CreateChatCompletion(grpc_request("sim:refusal", model=OPUS), timeout=10).choices[0]
    assert over_grpc.finish_reason == chat_pb2.FINISH_REASON_CONTENT_FILTER
    assert over_grpc.message.refusal == choice.message.refusal


# --- the anthropic-version the gateway sends ------------------------------------------------------------


@pytest.fixture(scope="module")
def newer(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    env = {
        **MAPPING_ONLY,
        "ANTHROPIC_API_KEY": UPSTREAM_KEY,
        "ANTHROPIC_BASE_URL": simulator.url,
        "CHATGATE_ANTHROPIC_VERSION": "2026-10-21",
    }
    gateway = start_gateway(tmp_path_factory.mktemp("newer"), env=env)
    yield gateway
    gateway.stop()


def test_api_version_2026_10_21_drops_sampling_on_every_model(newer: Gateway, simulator: Simulator) -> None:
    with openai.OpenAI(base_url=newer.http_url + "/v1", api_key="unused", max_retries=0) as client:
        tag = marker()
        raw = chat(client, tag, model="claude-haiku-4-5", temperature=0.4, top_p=0.9)
        assert raw.http_response.status_code == 200
        assert raw.headers["x-chatgate-adjusted"] == "temperature=dropped, top_p=dropped"
        sent = simulator.find(tag)
        assert sent["headers"]["anthropic-version"] == "2026-10-21"
        assert "temperature" not in sent["body"] and "top_p" not in sent["body"]
        with pytest.raises(openai.BadRequestError) as caught:
            chat(client, "x", model="claude-haiku-4-5", temperature=0.4, extra_body=STRICT)
        assert caught.value.body["param"] == "temperature"  # type: ignore[index]
    with grpc.insecure_channel(newer.grpc_target) as channel:
        stub = chat_service_pb2_grpc.ChatCompletionServiceStub(channel)
        _, report = adjusted(stub, grpc_request(marker(), model="claude-haiku-4-5", top_k=5))
        assert report == "top_k=dropped"
        refused(stub, grpc_request("x", model="claude-haiku-4-5", temperature=0.4))


def test_the_default_api_version_still_sends_sampling(client: openai.OpenAI, simulator: Simulator) -> None:
    tag = marker()
    raw = chat(client, tag, model="claude-haiku-4-5", temperature=0.4)
    assert "x-chatgate-adjusted" not in raw.headers
    sent = simulator.find(tag)
    assert sent["headers"]["anthropic-version"] == "2023-06-01" and sent["body"]["temperature"] == 0.4
