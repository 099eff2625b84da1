"""The bugs users of Claude gateways reported most in 2026, each driven through the real server
(OpenAI SDK over HTTP, generated stubs over gRPC) against the simulator, which refuses what the
real API refuses. Each test would fail on a gateway with that bug.
"""

from __future__ import annotations

from typing import Any

import grpc
import openai
import pytest

from chatgate.v1 import chat_pb2, chat_service_pb2, chat_service_pb2_grpc
from tests.support import Simulator, grpc_request, marker

Stub = chat_service_pb2_grpc.ChatCompletionServiceStub
NEWEST = "claude-opus-4-7"  # adaptive thinking only, no sampling, thinking text hidden by default


def chat(client: openai.OpenAI, text: str, **fields: Any) -> Any:
    """A request through the SDK; returns the raw response (headers) parsed."""
    return client.chat.completions.with_raw_response.create(
        model=fields.pop("model", NEWEST), messages=[{"role": "user", "content": text}], **fields
    )


def streamed(client: openai.OpenAI, text: str, **fields: Any) -> tuple[Any, Any]:
    """The stream accumulated the SDK's way, and its usage-only last chunk."""
    with client.chat.completions.stream(
        model=fields.pop("model", NEWEST),
        messages=[{"role": "user", "content": text}],
        stream_options={"include_usage": True},
        **fields,
    ) as stream:
        for _ in stream:
            pass
        return stream.get_final_completion(), stream.current_completion_snapshot.usage


def upstream_body(simulator: Simulator, tag: str) -> dict[str, Any]:
    body: dict[str, Any] = simulator.find(tag)["body"]
    return body


def grpc_adjusted(stub: Stub, request: Any) -> tuple[chat_pb2.ChatCompletion, str]:
    reply, call = stub.CreateChatCompletion.with_call(request, timeout=10)
    return reply, dict(call.trailing_metadata()).get("x-chatgate-adjusted", "")


# 1. Sampling parameters forwarded to models that reject them ------------------------------


def test_sampling_is_dropped_and_reported_for_models_that_reject_it(
    client: openai.OpenAI, simulator: Simulator, stub: Stub
) -> None:
    tag = marker()
    raw = chat(client, tag, temperature=0.3, top_p=0.9)
    assert raw.http_response.status_code == 200
    assert raw.headers["x-chatgate-adjusted"] == "temperature=dropped, top_p=dropped"
    assert not {"temperature", "top_p", "top_k"} & set(upstream_body(simulator, tag))
    tag = marker()
    reply, adjusted = grpc_adjusted(stub, grpc_request(tag, model=NEWEST, temperature=0.3, top_k=5))
    assert reply.choices[0].message.content[0].text and adjusted == "temperature=dropped, top_k=dropped"
    # The default values change nothing, so they are left out quietly.
    raw = chat(client, marker(), temperature=1.0)
    assert "x-chatgate-adjusted" not in raw.headers


def test_strict_sampling_on_such_models_is_a_400_naming_the_param(client: openai.OpenAI, stub: Stub) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        chat(client, "x", temperature=0.3, extra_body={"compatibility": "strict"})
    assert caught.value.body["param"] == "temperature"  # type: ignore[index]
    with pytest.raises(grpc.RpcError) as failed:
        stub.CreateChatCompletion(
            grpc_request("x", model=NEWEST, temperature=0.3, compatibility=chat_pb2.COMPATIBILITY_STRICT), timeout=10
        )
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]


# 2. Budget thinking sent to adaptive-only models ---------------------------------------------


def test_adaptive_only_models_get_adaptive_thinking_with_an_effort(
    client: openai.OpenAI, simulator: Simulator, stub: Stub
) -> None:
    tag = marker()
    assert chat(client, tag, reasoning_effort="high").http_response.status_code == 200
    body = upstream_body(simulator, tag)
    assert body["thinking"]["type"] == "adaptive" and body["output_config"] == {"effort": "high"}
    tag = marker()  # Anthropic's own budget setting: adaptive instead, reported
    raw = chat(client, tag, extra_body={"thinking": {"type": "enabled", "budget_tokens": 4000}})
    assert raw.headers["x-chatgate-adjusted"] == "thinking=adjusted"
    assert upstream_body(simulator, tag)["thinking"]["type"] == "adaptive"
    tag = marker()  # a budget model still gets a budget
    chat(client, tag, model="claude-haiku-4-5", reasoning_effort="medium")
    assert upstream_body(simulator, tag)["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    reply, _ = grpc_adjusted(
        stub, grpc_request(marker(), model=NEWEST, reasoning_effort=chat_pb2.REASONING_EFFORT_XHIGH)
    )
    assert reply.choices[0].finish_reason == chat_pb2.FINISH_REASON_STOP


def test_efforts_a_model_lacks_go_to_the_nearest_level_reported(client: openai.OpenAI, simulator: Simulator) -> None:
    tag = marker()
    raw = chat(client, tag, model="claude-sonnet-4-6", reasoning_effort="max")
    assert raw.headers["x-chatgate-adjusted"] == "reasoning_effort=adjusted"
    assert upstream_body(simulator, tag)["output_config"] == {"effort": "high"}


# 3. Reasoning that looks missing -------------------------------------------------------------


def test_reasoning_text_comes_back_from_models_that_hide_it_by_default(
    client: openai.OpenAI, simulator: Simulator, stub: Stub
) -> None:
    tag = marker()
    reply = chat(client, tag, reasoning_effort="low").parse()
    assert reply.choices[0].message.model_extra["reasoning_content"]
    assert upstream_body(simulator, tag)["thinking"]["display"] == "summarized"
    whole, _ = streamed(client, marker(), reasoning_effort="low")
    assert whole.choices[0].message.model_extra["reasoning_content"]
    reply_pb, _ = grpc_adjusted(
        stub, grpc_request(marker(), model=NEWEST, reasoning_effort=chat_pb2.REASONING_EFFORT_LOW)
    )
    assert reply_pb.choices[0].message.reasoning_content
    # Asked to hide it, it stays hidden: the signature still comes back for the round trip.
    hidden = chat(client, marker(), extra_body={"thinking": {"type": "adaptive", "display": "omitted"}}).parse()
    blocks = hidden.choices[0].message.model_extra["thinking_blocks"]
    assert blocks[0]["thinking"] == "" and blocks[0]["signature"]


# 4. Stream cache accounting ------------------------------------------------------------------


def cached_request(tag: str) -> dict[str, Any]:
    return {
        "model": "claude-haiku-4-5",
        "messages": [
            {
                "role": "system",
                "content": [
                    {
                        "type": "text",
                        "text": "Long rules.",
                        "prompt_cache_breakpoint": {"mode": "explicit", "ttl": "30m"},
                    }
                ],
            },
            {"role": "user", "content": f"sim:cache {tag}"},
        ],
    }


def test_cache_reads_and_hour_long_writes_are_counted_the_same_streamed_and_not(
    client: openai.OpenAI, stub: Stub
) -> None:
    tag = marker()
    whole = client.chat.completions.create(**cached_request(tag))
    with client.chat.completions.stream(**cached_request(tag), stream_options={"include_usage": True}) as stream:
        for _ in stream:
            pass
        usage = stream.current_completion_snapshot.usage
    assert whole.usage is not None and usage == whole.usage
    details = whole.usage.prompt_tokens_details
    assert details is not None and details.cached_tokens and details.model_extra is not None
    assert details.cache_write_tokens and details.model_extra["cache_write_1h_tokens"] == details.cache_write_tokens
    assert details.model_extra["cache_write_5m_tokens"] == 0
    assert whole.usage.prompt_tokens == whole.usage.total_tokens - whole.usage.completion_tokens
    request = grpc_request(f"sim:cache {tag}", stream_options=chat_pb2.StreamOptions(include_usage=True))
    chunks = list(stub.StreamChatCompletion(request, timeout=10))
    reply = stub.CreateChatCompletion(grpc_request(f"sim:cache {tag}"), timeout=10)
    assert chunks[-1].usage == reply.usage and reply.usage.prompt_tokens_details.cached_tokens > 0


# 5. cache_control stripped on the way through -------------------------------------------------


def test_cache_breakpoints_reach_the_upstream(client: openai.OpenAI, simulator: Simulator, stub: Stub) -> None:
    tag = marker()
    client.chat.completions.create(
        model="claude-haiku-4-5",
        messages=[
            {
                "role": "system",
                "content": [{"type": "text", "text": "Rules.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
            },
            {
                "role": "user",
                "content": [{"type": "text", "text": tag, "prompt_cache_breakpoint": {"mode": "explicit"}}],
            },
        ],
        extra_body={"prompt_cache_options": {"mode": "implicit"}},
    )
    body = upstream_body(simulator, tag)
    assert body["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert body["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert body["cache_control"] == {"type": "ephemeral"}  # implicit mode: Anthropic's automatic caching
    tag = marker()
    part = chat_pb2.ContentPart(text=tag, cache_control=chat_pb2.CacheControl(ttl=chat_pb2.CACHE_TTL_FIVE_MINUTES))
    request = grpc_request("unused")
    request.messages[0].ClearField("content")
    request.messages[0].content.append(part)
    stub.CreateChatCompletion(request, timeout=10)
    assert upstream_body(simulator, tag)["messages"][0]["content"][0]["cache_control"] == {
        "type": "ephemeral",
        "ttl": "5m",
    }


# 6. Output limits wrong for the model ---------------------------------------------------------


def test_output_limits_follow_the_model(client: openai.OpenAI, simulator: Simulator, stub: Stub) -> None:
    tag = marker()
    raw = chat(client, tag, model="claude-haiku-4-5", max_completion_tokens=200_000)
    assert raw.headers["x-chatgate-adjusted"] == "max_completion_tokens=adjusted"
    assert upstream_body(simulator, tag)["max_tokens"] == 64_000
    tag = marker()  # no limit asked: the model's whole output, never a small default that truncates
    chat(client, tag)
    assert upstream_body(simulator, tag)["max_tokens"] == 128_000
    with pytest.raises(grpc.RpcError) as failed:
        stub.CreateChatCompletion(
            grpc_request("x", max_tokens=100_000, compatibility=chat_pb2.COMPATIBILITY_STRICT), timeout=10
        )
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]


# 7. Tool-call streams with gaps or out of order, and server-tool blocks -----------------------

TOOLS = [
    {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}
    for name in ("first", "second", "third")
]


def test_tool_call_indices_count_tool_calls_only_in_order(client: openai.OpenAI, stub: Stub) -> None:
    indices: list[int] = []
    stream = client.chat.completions.create(
        model="claude-haiku-4-5",
        messages=[{"role": "user", "content": "sim:parallel sim:preamble go"}],
        tools=TOOLS,  # type: ignore[arg-type]
        reasoning_effort="low",
        stream=True,
    )
    for chunk in stream:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            if call.id:
                indices.append(call.index)
    assert indices == [0, 1, 2]
    request = grpc_request(
        "sim:parallel sim:preamble go",
        tools=[chat_pb2.Tool(function=chat_pb2.FunctionDefinition(name=n)) for n in ("a", "b")],
    )
    started = [
        c.index
        for chunk in stub.StreamChatCompletion(request, timeout=10)
        for choice in chunk.choices
        for c in choice.delta.tool_calls
        if c.id
    ]
    assert started == [0, 1]


def test_web_search_results_come_back_as_citations_not_tool_calls(
    client: openai.OpenAI, simulator: Simulator, stub: Stub
) -> None:
    tag = marker()
    options = {"user_location": {"type": "approximate", "approximate": {"city": "Lyon", "country": "FR"}}}
    whole = chat(client, tag, model="claude-haiku-4-5", web_search_options=options).parse()
    tool = upstream_body(simulator, tag)["tools"][0]
    assert tool["type"].startswith("web_search_") and tool["user_location"]["city"] == "Lyon"
    message = whole.choices[0].message
    assert message.tool_calls is None and whole.choices[0].finish_reason == "stop"
    assert message.content == "I searched the web. Gateways translate between APIs."
    [annotation] = message.annotations or []
    cited = annotation.url_citation
    assert message.content[cited.start_index : cited.end_index] == "Gateways translate between APIs."
    assert cited.url.startswith("https://") and cited.title
    final, _ = streamed(client, tag, model="claude-haiku-4-5", web_search_options=options)
    streamed_message = final.choices[0].message
    assert streamed_message.tool_calls in (None, []) and streamed_message.content == message.content
    assert [a.model_dump(exclude={"index"}) for a in streamed_message.annotations or []] == [annotation.model_dump()]
    request = grpc_request(tag, web_search_options=chat_pb2.WebSearchOptions())
    reply = stub.CreateChatCompletion(request, timeout=10)
    assert reply.choices[0].message.annotations[0].url_citation.end_index == cited.end_index
    chunks = list(stub.StreamChatCompletion(request, timeout=10))
    assert not [c for chunk in chunks for choice in chunk.choices for c in choice.delta.tool_calls]
    assert [a.url_citation.url for chunk in chunks for ch in chunk.choices for a in ch.delta.annotations] == [cited.url]


# 8. reasoning_tokens always 0 -------------------------------------------------------------------


def test_reasoning_tokens_are_reported_streamed_and_not(client: openai.OpenAI, stub: Stub) -> None:
    tag = marker()
    whole = chat(client, tag, reasoning_effort="medium").parse()
    _, usage = streamed(client, tag, reasoning_effort="medium")
    details = whole.usage.completion_tokens_details
    assert details is not None and details.reasoning_tokens and details.reasoning_tokens < whole.usage.completion_tokens
    assert usage == whole.usage
    request = grpc_request(tag, model=NEWEST, reasoning_effort=chat_pb2.REASONING_EFFORT_MEDIUM)
    reply = stub.CreateChatCompletion(request, timeout=10)
    assert reply.usage.completion_tokens_details.reasoning_tokens == details.reasoning_tokens


# Refusals carry the upstream's reason -------------------------------------------------------------


def test_a_refusal_says_why(client: openai.OpenAI, stub: Stub) -> None:
    whole = chat(client, "sim:refusal", model="claude-haiku-4-5").parse()
    assert whole.choices[0].finish_reason == "content_filter" and whole.choices[0].message.refusal
    stream = client.chat.completions.create(
        model="claude-haiku-4-5", messages=[{"role": "user", "content": "sim:refusal"}], stream=True
    )
    refusal = "".join(c.choices[0].delta.refusal or "" for c in stream if c.choices)
    assert refusal == whole.choices[0].message.refusal
    reply = stub.CreateChatCompletion(grpc_request("sim:refusal"), timeout=10)
    assert reply.choices[0].message.refusal == whole.choices[0].message.refusal


# The seed's four names --------------------------------------------------------------------------

SEED_NAMES = {
    "claude-sonnet-4-20250514": "claude-sonnet-5-5",
    "claude-opus-4-20250514": "claude-opus-5-5",
    "claude-3.5-sonnet": "claude-sonnet-5-5",
    "claude-3.5-haiku": "claude-haiku-5-5",
}


@pytest.mark.parametrize("retired", SEED_NAMES)
def test_retired_names_are_served_by_their_successor_and_reported(
    retired: str, client: openai.OpenAI, simulator: Simulator, stub: Stub
) -> None:
    successor = SEED_NAMES[retired]
    tag = marker()
    raw = chat(client, tag, model=retired)
    assert raw.headers["x-chatgate-adjusted"] == f"model={retired}->{successor}"
    reply = raw.parse()
    assert reply.choices[0].message.content and upstream_body(simulator, tag)["model"].startswith(successor)
    _, adjusted = grpc_adjusted(stub, grpc_request(marker(), model=retired))
    assert adjusted == f"model={retired}->{successor}"


@pytest.mark.parametrize("retired", SEED_NAMES)
def test_strict_retired_names_are_404_model_retired_naming_the_successor(
    retired: str, client: openai.OpenAI, stub: Stub
) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        chat(client, "x", model=retired, extra_body={"compatibility": "strict"})
    error: dict[str, Any] = caught.value.body  # type: ignore[assignment]
    assert error["code"] == "model_retired" and SEED_NAMES[retired] in error["message"]
    with pytest.raises(grpc.RpcError) as failed:
        stub.CreateChatCompletion(
            grpc_request("x", model=retired, compatibility=chat_pb2.COMPATIBILITY_STRICT), timeout=10
        )
    assert failed.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    assert SEED_NAMES[retired] in failed.value.details()  # type: ignore[attr-defined]


def test_the_models_list_shows_what_the_gateway_does_with_each_model(client: openai.OpenAI, stub: Stub) -> None:
    models = {m.id: m.model_extra for m in client.models.list()}
    assert models[NEWEST] is not None and models[NEWEST]["thinking"] == "adaptive_only"
    assert models[NEWEST]["sampling"] is False and "xhigh" in models[NEWEST]["efforts"]
    seed = models["claude-3.5-haiku"]
    assert seed is not None and seed["retired"] and seed["successor"] == "claude-haiku-5-5"
    listed = {m.id: m for m in stub.ListModels(chat_service_pb2.ListModelsRequest(), timeout=10).models}
    assert listed[NEWEST].thinking == chat_pb2.MODEL_THINKING_ADAPTIVE_ONLY and not listed[NEWEST].sampling
    assert listed["claude-sonnet-4-20250514"].successor == "claude-sonnet-5-5"
