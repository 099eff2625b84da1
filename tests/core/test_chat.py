"""The use case on the scripted provider: validation, model resolution, fan-out, usage policy."""

from __future__ import annotations

import asyncio
import time

import pytest

from chatgate.v1 import chat_pb2, chat_service_pb2
from service.core import ChatService, Limits, ModelCatalog, RetryPolicy
from service.core.chunks import as_chunk
from service.core.errors import DeadlineExceeded, GatewayError, InvalidRequest, ModelNotFound, UpstreamOverloaded
from service.providers.anthropic import CLAUDE_MODELS
from service.providers.scripted import ScriptedProvider
from tests.support import grpc_request, user

USAGE = chat_pb2.Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15)


def chunk(text: str = "", finish: int = 0, usage: chat_pb2.Usage | None = None) -> chat_pb2.ChatCompletionChunk:
    delta = chat_pb2.Delta(content=text) if text else chat_pb2.Delta()
    out = chat_pb2.ChatCompletionChunk(
        id="chatcmpl-x",
        created=1,
        model="m",
        choices=[chat_pb2.ChunkChoice(index=0, delta=delta, finish_reason=finish)],
    )
    if usage is not None:
        out.usage.CopyFrom(usage)
    return out


STEPS = [chunk("Hel"), chunk("lo"), chunk(finish=chat_pb2.FINISH_REASON_STOP, usage=USAGE)]
COMPLETION = chat_pb2.ChatCompletion(
    id="chatcmpl-x",
    model="m",
    usage=USAGE,
    choices=[
        chat_pb2.Choice(
            message=chat_pb2.ChatMessage(role=chat_pb2.ROLE_ASSISTANT, content=[chat_pb2.ContentPart(text="Hello")])
        )
    ],
)


def service(provider: ScriptedProvider, *, strict_by_default: bool = False, max_choices: int = 8) -> ChatService:
    return ChatService(
        ModelCatalog(CLAUDE_MODELS),
        {"anthropic": provider},
        strict_by_default=strict_by_default,
        limits=Limits(max_choices=max_choices, request_timeout=60, retry=RetryPolicy(1, 0.0, 0.0, 0.0)),
    )


async def collect(stream: object) -> list[chat_pb2.ChatCompletionChunk]:
    return [as_chunk(chunk) async for batch in stream for chunk in batch]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("request_", "param"),
    [
        (chat_service_pb2.ChatCompletionRequest(messages=[user("x")]), "model"),
        (chat_service_pb2.ChatCompletionRequest(model="claude-haiku-4-5"), "messages"),
        (
            chat_service_pb2.ChatCompletionRequest(model="claude-haiku-4-5", messages=[chat_pb2.ChatMessage()]),
            "messages[0].role",
        ),
        (grpc_request("x", n=0), "n"),
        (grpc_request("x", n=99), "n"),
        (grpc_request("x", max_tokens=0), "max_tokens"),
        (grpc_request("x", temperature=2.5), "temperature"),
        (grpc_request("x", top_p=1.5), "top_p"),
    ],
    ids=["no_model", "no_messages", "no_role", "n_zero", "n_too_big", "max_tokens_zero", "temperature", "top_p"],
)
def test_invalid_requests_name_the_field_and_never_reach_the_provider(
    request_: chat_service_pb2.ChatCompletionRequest, param: str
) -> None:
    provider = ScriptedProvider(completion=COMPLETION)
    with pytest.raises(InvalidRequest) as caught:
        asyncio.run(service(provider).complete(request_))
    assert caught.value.param == param
    assert provider.calls == []


def test_unknown_model_is_model_not_found() -> None:
    with pytest.raises(ModelNotFound) as caught:
        asyncio.run(service(ScriptedProvider(completion=COMPLETION)).complete(grpc_request("x", model="gpt-4o")))
    assert caught.value.param == "model" and caught.value.code == "model_not_found"


def test_aliases_resolve_to_one_catalog_entry() -> None:
    provider = ScriptedProvider(completion=COMPLETION)
    asyncio.run(service(provider).complete(grpc_request("x", model="claude-haiku-4-5-20251001")))
    assert provider.calls[0].model.id == "claude-haiku-4-5"


def test_seed_names_are_in_the_default_catalog() -> None:
    names = {m.id for m in ModelCatalog(CLAUDE_MODELS)}
    assert {"claude-sonnet-4-20250514", "claude-opus-4-20250514", "claude-3.5-sonnet", "claude-3.5-haiku"} <= names


@pytest.mark.parametrize("left", [-1.0, 0.0, 0.005])
def test_an_expired_or_too_close_deadline_makes_no_upstream_call(left: float) -> None:
    provider = ScriptedProvider(completion=COMPLETION)
    with pytest.raises(DeadlineExceeded):
        asyncio.run(service(provider).complete(grpc_request("x"), deadline=time.monotonic() + left))
    assert provider.calls == []
    assert asyncio.run(service(provider).complete(grpc_request("x"), deadline=time.monotonic() + 5)).completion


def test_fan_out_merges_choices_and_sums_usage() -> None:
    result = asyncio.run(service(ScriptedProvider(completion=COMPLETION)).complete(grpc_request("x", n=3)))
    assert [c.index for c in result.completion.choices] == [0, 1, 2]
    assert result.completion.usage.total_tokens == 45


def test_stream_moves_usage_into_a_last_usage_only_chunk_when_asked() -> None:
    request = grpc_request("x", stream_options=chat_pb2.StreamOptions(include_usage=True))
    chunks = asyncio.run(collect(service(ScriptedProvider(steps=STEPS)).stream(request)))
    assert [c.HasField("usage") for c in chunks] == [False, False, False, True]
    assert not chunks[-1].choices and chunks[-1].usage.total_tokens == 15


def test_stream_without_include_usage_sends_no_usage() -> None:
    chunks = asyncio.run(collect(service(ScriptedProvider(steps=STEPS)).stream(grpc_request("x"))))
    assert len(chunks) == 3 and not any(c.HasField("usage") for c in chunks)


def test_stream_fan_out_indexes_choices_and_shares_one_id() -> None:
    request = grpc_request("x", n=2, stream_options=chat_pb2.StreamOptions(include_usage=True))
    chunks = asyncio.run(collect(service(ScriptedProvider(steps=STEPS)).stream(request)))
    assert sorted(c.choices[0].index for c in chunks if c.choices) == [0, 0, 0, 1, 1, 1]
    assert chunks[-1].usage.total_tokens == 30


def test_a_failing_fan_out_stream_raises_and_closes_the_others() -> None:
    provider = ScriptedProvider(steps=[chunk("a"), 0.01, UpstreamOverloaded("busy")])
    with pytest.raises(GatewayError):
        asyncio.run(collect(service(provider).stream(grpc_request("x", n=2))))
    assert provider.closed_streams == 2


def test_strict_by_default_can_be_relaxed_per_request() -> None:
    provider = ScriptedProvider(completion=COMPLETION)
    chat = service(provider, strict_by_default=True)
    asyncio.run(chat.complete(grpc_request("x")))
    assert provider.calls[-1].report.strict
    asyncio.run(chat.complete(grpc_request("x", compatibility=chat_pb2.COMPATIBILITY_LENIENT)))
    assert not provider.calls[-1].report.strict
