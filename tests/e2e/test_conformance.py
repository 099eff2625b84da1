"""Recorded Anthropic streams and replies, replayed through both protocols and checked against golden files.

Over HTTP the exact SSE transcript is compared (with `created` normalised) and
the OpenAI SDK's own accumulation is summarised; over gRPC the stubs' chunks
are accumulated the same way. Both summaries must equal one golden summary.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import httpx
import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState

from chatgate.v1 import chat_pb2, chat_service_pb2_grpc
from service.codecs.openai_chat import FINISH_REASONS, annotations_json, thinking_blocks_json, usage_json
from tests.support import FIXTURES, GOLDEN, MODEL, grpc_request

STREAMS = sorted(p.stem for p in FIXTURES.glob("*.sse"))
REPLIES = sorted(p.stem for p in FIXTURES.glob("*.json"))
FAILING = {"cut_stream": "incomplete_stream", "error_midstream": "server_overloaded"}


def check_golden(path: Any, actual: str, update: bool) -> None:
    if update or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
        if not update:
            pytest.fail(f"{path.name} did not exist and was written; check it and commit it")
    assert actual == path.read_text()


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def normalised(transcript: str) -> str:
    """Time-dependent values zeroed: `created` and the gateway's own time."""
    transcript = re.sub(r'"created":\d+', '"created":0', transcript)
    return re.sub(r"x-chatgate-overhead-ms [\d.]+", "x-chatgate-overhead-ms 0", transcript)


def summary(
    content: str | None,
    reasoning: str | None,
    calls: list[Any],
    blocks: list[Any],
    finish: str | None,
    usage: dict[str, Any] | None,
    error: str | None,
    annotations: list[Any] | None = None,
    refusal: str | None = None,
) -> dict[str, Any]:
    return {
        "content": content,
        "reasoning_content": reasoning,
        "tool_calls": calls,
        "thinking_blocks": blocks,
        "annotations": annotations or [],
        "refusal": refusal,
        "finish_reason": finish,
        "usage": usage,
        "error": error,
    }


def sdk_stream_summary(client: openai.OpenAI, name: str) -> dict[str, Any]:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": f"sim:replay={name}"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    state, error = ChatCompletionStreamState(), None
    try:
        for chunk in stream:
            # The SDK's parse helpers refuse these reasons; the snapshot is complete all the same.
            with contextlib.suppress(openai.LengthFinishReasonError, openai.ContentFilterFinishReasonError):
                state.handle_chunk(chunk)
    except openai.APIError as exc:
        error = (exc.body or {}).get("code") if isinstance(exc.body, dict) else str(exc.body)
    final = state.current_completion_snapshot
    message = final.choices[0].message
    extra = message.model_extra or {}
    reasoning = extra.get("reasoning_content") or None
    blocks = [{k: v for k, v in b.items() if k != "index"} for b in extra.get("thinking_blocks") or []]
    if error is not None:
        return summary(None, reasoning, [], blocks, None, None, error)
    calls = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments} for c in message.tool_calls or []]
    usage = final.usage.model_dump(exclude_none=True) if final.usage else None
    annotations = [a.model_dump(exclude={"index"}) for a in message.annotations or []]
    finish = final.choices[0].finish_reason
    return summary(message.content, reasoning, calls, blocks, finish, usage, None, annotations, message.refusal)


def grpc_stream_summary(stub: chat_service_pb2_grpc.ChatCompletionServiceStub, name: str) -> dict[str, Any]:
    import grpc
    from google.rpc import error_details_pb2, status_pb2

    request = grpc_request(f"sim:replay={name}", stream_options=chat_pb2.StreamOptions(include_usage=True))
    content, reasoning, calls, blocks, finish, usage = "", "", {}, [], None, None
    annotations: list[Any] = []
    refusal = ""
    try:
        for chunk in stub.StreamChatCompletion(request, timeout=10):
            if chunk.HasField("usage"):
                usage = usage_json(chunk.usage)
            for choice in chunk.choices:
                content += choice.delta.content
                reasoning += choice.delta.reasoning_content
                blocks += thinking_blocks_json(choice.delta.thinking_blocks)
                annotations += annotations_json(choice.delta.annotations)
                refusal += choice.delta.refusal
                for call in choice.delta.tool_calls:
                    entry = calls.setdefault(call.index, {"id": call.id, "name": call.function.name, "arguments": ""})
                    entry["arguments"] += call.function.arguments
                finish = FINISH_REASONS[choice.finish_reason] or finish
    except grpc.RpcError as exc:
        status = status_pb2.Status.FromString(dict(exc.trailing_metadata())["grpc-status-details-bin"])  # type: ignore[attr-defined]
        info = error_details_pb2.ErrorInfo()
        status.details[0].Unpack(info)
        return summary(None, reasoning or None, [], blocks, None, None, info.reason)
    return summary(
        content or None,
        reasoning or None,
        list(calls.values()),
        blocks,
        finish,
        usage,
        None,
        annotations,
        refusal or None,
    )


@pytest.mark.parametrize("name", STREAMS)
def test_stream_scenario(
    name: str,
    http: httpx.Client,
    client: openai.OpenAI,
    stub: chat_service_pb2_grpc.ChatCompletionServiceStub,
    update_golden: bool,
) -> None:
    body = {
        "model": MODEL,
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": f"sim:replay={name}"}],
    }
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        transcript = normalised(response.read().decode())
    check_golden(GOLDEN / f"{name}.sse", transcript, update_golden)
    if name in FAILING:
        assert "[DONE]" not in transcript and f'"code":"{FAILING[name]}"' in transcript.splitlines()[-2]
    else:
        assert transcript.endswith("data: [DONE]\n\n")
    over_http = sdk_stream_summary(client, name)
    over_grpc = grpc_stream_summary(stub, name)
    check_golden(GOLDEN / f"{name}.summary.json", as_json(over_http), update_golden)
    assert over_grpc == over_http


@pytest.mark.parametrize("name", REPLIES)
def test_whole_reply_scenario(
    name: str, client: openai.OpenAI, stub: chat_service_pb2_grpc.ChatCompletionServiceStub, update_golden: bool
) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"sim:replay={name}"}])
    body = reply.model_dump(exclude={"created"})
    check_golden(GOLDEN / f"{name}.reply.json", as_json(body), update_golden)
    over_grpc = stub.CreateChatCompletion(grpc_request(f"sim:replay={name}"), timeout=10)
    message = over_grpc.choices[0].message
    assert "".join(p.text for p in message.content) == (body["choices"][0]["message"]["content"] or "")
    assert [c.function.arguments for c in message.tool_calls] == [
        c["function"]["arguments"] for c in body["choices"][0]["message"].get("tool_calls") or []
    ]
    assert usage_json(over_grpc.usage) == reply.usage.model_dump(exclude_none=True)  # type: ignore[union-attr]
    assert FINISH_REASONS[over_grpc.choices[0].finish_reason] == body["choices"][0]["finish_reason"]
    assert annotations_json(message.annotations) == list(body["choices"][0]["message"].get("annotations") or [])
    assert message.refusal == (body["choices"][0]["message"]["refusal"] or "")


# Scenarios recorded both ways whose whole and streamed answers are the same message.
BOTH_WAYS = ("adaptive_thinking", "cache_usage", "refusal_details", "web_search")


@pytest.mark.parametrize("name", BOTH_WAYS)
def test_whole_and_streamed_replies_agree(name: str, client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"sim:replay={name}"}])
    message = whole.choices[0].message
    streamed = sdk_stream_summary(client, name)
    assert streamed["content"] == message.content and streamed["refusal"] == message.refusal
    assert streamed["annotations"] == [a.model_dump() for a in message.annotations or []]
    assert streamed["usage"] == whole.usage.model_dump(exclude_none=True)  # type: ignore[union-attr]
    assert streamed["finish_reason"] == whole.choices[0].finish_reason
