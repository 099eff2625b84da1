"""The official OpenAI Python SDK against the gateway process, as an application uses it."""

from __future__ import annotations

import json

import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState

from tests.support import MODEL, marker

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_unary_text(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hello there"}])
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-msg_sim_")
    assert reply.choices[0].message.content == "[chatgate simulator] You said: Hello there."
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == "claude-haiku-4-5-20251001"
    assert reply.usage is not None and reply.usage.total_tokens == reply.usage.prompt_tokens + 6


def test_streaming_text_matches_unary_and_ends_with_usage(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Stream this please"}]
    whole = client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
    stream = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert len({c.id for c in chunks}) == 1


def test_tool_call_round_trip(client: openai.OpenAI) -> None:
    messages: list[dict[str, object]] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])  # type: ignore[arg-type, list-item]
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "sample"}
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18 C and sunny"},
    ]
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])  # type: ignore[arg-type, list-item]
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == f"Tool results received: {call.id} -> 18 C and sunny."


def test_streamed_parallel_tool_calls_accumulate_in_the_sdk(client: openai.OpenAI) -> None:
    time_tool = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Both please sim:parallel"}],
        tools=[WEATHER_TOOL, time_tool],
        stream=True,
    )  # type: ignore[list-item]
    state = ChatCompletionStreamState()
    for chunk in stream:
        state.handle_chunk(chunk)
    final = state.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "sample"}),
        ("get_time", {}),
    ]
    assert final.choices[0].finish_reason == "tool_calls"


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"claude-sonnet-4-20250514", "claude-opus-4-20250514", "claude-3.5-sonnet", "claude-3.5-haiku"} <= ids
    assert {"claude-haiku-4-5", "claude-haiku-4-5-20251001"} <= ids  # aliases and the upstream's dated ids
    for name in ("claude-haiku-4-5-20251001", "claude-haiku-4-5"):  # retrieve answers under the name asked
        assert client.models.retrieve(name).id == name
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


@pytest.mark.parametrize(
    ("directive", "exception", "status", "code"),
    [
        ("sim:status=529", openai.InternalServerError, 503, "server_overloaded"),
        ("sim:status=500", openai.InternalServerError, 502, "upstream_error"),
        ("sim:status=429 sim:retry_after=2", openai.RateLimitError, 429, "upstream_rate_limited"),
        ("sim:status=400", openai.BadRequestError, 400, "upstream_invalid_request"),
        ("sim:status=403", openai.PermissionDeniedError, 403, "model_access_denied"),
    ],
    ids=["529", "500", "429", "400", "403"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
def test_upstream_errors_arrive_as_openai_errors(
    client: openai.OpenAI, directive: str, exception: type, status: int, code: str, stream: bool
) -> None:
    with pytest.raises(exception) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": directive}], stream=stream)
    error = caught.value
    assert error.status_code == status  # type: ignore[attr-defined]
    assert error.code == code and error.type  # type: ignore[attr-defined]
    if status == 429:
        assert error.response.headers["retry-after"] == "2"  # type: ignore[attr-defined]


def test_unknown_model_is_404_model_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert caught.value.code == "model_not_found" and caught.value.param == "model"


@pytest.mark.parametrize(
    ("directive", "code"), [("sim:error_after=3", "server_overloaded"), ("sim:drop_after=3", "incomplete_stream")]
)
def test_a_failure_mid_stream_raises_in_the_sdk_after_the_delivered_chunks(
    client: openai.OpenAI, directive: str, code: str
) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": f"{directive} sim:words=10"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk)
    assert "".join(c.choices[0].delta.content or "" for c in received if c.choices).split() == [
        "[chatgate",
        "simulator]",
        "You",
    ]
    assert code in str(caught.value.body)


def test_adjustments_are_reported_in_a_header(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": marker()}], temperature=1.5, seed=7
    )
    assert raw.headers["x-chatgate-adjusted"] == "temperature=adjusted, seed=dropped"
    assert (
        float(raw.headers["x-chatgate-overhead-ms"]) > 0
    )  # clamped at 0, so only a positive value shows it was measured
    assert raw.headers["x-upstream-request-id"].startswith("req_sim_")
    assert raw.headers["x-request-id"] != raw.headers["x-upstream-request-id"]


def test_strict_compatibility_rejects_what_lenient_adjusts(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "x"}],
            temperature=1.5,
            extra_headers={"x-chatgate-compatibility": "strict"},
        )
    assert caught.value.param == "temperature" and caught.value.code == "unsupported_parameter"


def test_n_fans_out_into_indexed_choices(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Three"}], n=3)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert len({c.message.content for c in reply.choices}) == 1
