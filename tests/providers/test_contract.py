"""One contract battery for every provider: the ``ChatProvider`` promises, checked on each.

Each harness plays the same scenarios its own way: the scripted provider from
chunks given up front, the Anthropic provider from recorded wire data through a
fake upstream client. A new provider adds a harness here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol

import pytest

from chatgate.v1 import chat_pb2
from service.core import ChatProvider, CompatReport, ModelCatalog, ProviderCall
from service.core.chunks import as_chunks
from service.core.errors import GatewayError, IncompleteStream, UpstreamOverloaded
from service.providers.anthropic import CLAUDE_MODELS
from service.providers.scripted import ScriptedProvider
from tests.inprocess import FakeUpstreamClient, anthropic_provider, text_chunks, text_completion
from tests.support import grpc_request

TEXT = "Hello! How can I help you today?"
MODEL = ModelCatalog(CLAUDE_MODELS).resolve("claude-haiku-4-5")
OVERLOADED = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'


class Harness(Protocol):
    def provider(self, scenario: str) -> ChatProvider: ...

    def released(self) -> bool:
        """Whether the last upstream request was let go (finished or closed)."""
        ...


class Scripted:
    def __init__(self) -> None:
        self.last = ScriptedProvider()

    def provider(self, scenario: str) -> ChatProvider:
        chunks = text_chunks(TEXT)
        self.last = {
            "text": ScriptedProvider(completion=text_completion(TEXT), steps=[chunks[:2], *chunks[2:]]),
            "overloaded": ScriptedProvider(
                completion=UpstreamOverloaded("Overloaded"), steps=[UpstreamOverloaded("Overloaded")]
            ),
            "cut": ScriptedProvider(steps=[*chunks[:3], IncompleteStream("cut")]),
        }[scenario]
        return self.last

    def released(self) -> bool:
        return self.last.closed_streams == self.last.opened_streams


class Anthropic:
    def __init__(self) -> None:
        self.client = FakeUpstreamClient()

    def provider(self, scenario: str) -> ChatProvider:
        self.client = FakeUpstreamClient()
        if scenario == "text":
            self.client.reply_fixture("text.json")
            self.client.reply_fixture("text.sse", reads=5)
        elif scenario == "overloaded":
            for _ in range(2):
                self.client.reply(529, OVERLOADED)
        else:
            self.client.reply_fixture("cut_stream.sse", reads=3)
        return anthropic_provider(self.client)

    def released(self) -> bool:
        return all(r.closed for r in self.client.responses)


@pytest.fixture(params=[Scripted, Anthropic], ids=["scripted", "anthropic"])
def harness(request: pytest.FixtureRequest) -> Harness:
    result: Harness = request.param()
    return result


def call() -> ProviderCall:
    return ProviderCall(grpc_request("Hi"), MODEL, CompatReport(strict=False))


async def drain(batches: AsyncIterator[list[chat_pb2.ChatCompletionChunk]]) -> list[list[chat_pb2.ChatCompletionChunk]]:
    return [batch async for batch in batches]


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_complete_returns_one_choice_at_index_0(harness: Harness) -> None:
    reply = run(harness.provider("text").complete(call()))
    assert [c.index for c in reply.choices] == [0]
    assert reply.choices[0].message.content[0].text == TEXT
    assert reply.choices[0].finish_reason == chat_pb2.FINISH_REASON_STOP
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens > 0


def test_stream_yields_nonempty_batches_from_role_to_finish_with_usage(harness: Harness) -> None:
    batches = run(drain(harness.provider("text").stream(call())))
    assert batches and all(batches)
    chunks = [c for batch in batches for c in as_chunks(batch) if c.choices or c.HasField("usage")]
    assert chunks[0].choices[0].delta.role == chat_pb2.ROLE_ASSISTANT
    assert all(choice.index == 0 for c in chunks for choice in c.choices)
    assert "".join(c.choices[0].delta.content for c in chunks if c.choices) == TEXT
    last = chunks[-1]
    assert last.choices[0].finish_reason == chat_pb2.FINISH_REASON_STOP and last.usage.total_tokens > 0
    assert len({c.id for c in chunks}) == 1
    assert harness.released()


@pytest.mark.parametrize("mode", ["complete", "stream"])
def test_an_upstream_failure_raises_a_classified_error(harness: Harness, mode: str) -> None:
    provider = harness.provider("overloaded")
    with pytest.raises(UpstreamOverloaded):
        run(provider.complete(call()) if mode == "complete" else drain(provider.stream(call())))
    assert harness.released()


def test_a_cut_stream_raises_rather_than_ending_early(harness: Harness) -> None:
    received: list[chat_pb2.ChatCompletionChunk] = []

    async def scenario() -> None:
        async for batch in harness.provider("cut").stream(call()):
            received.extend(as_chunks(batch))

    with pytest.raises(IncompleteStream) as caught:
        run(scenario())
    assert isinstance(caught.value, GatewayError) and received
    assert not any(choice.finish_reason for c in received for choice in c.choices)
    assert harness.released()


def test_closing_a_stream_early_releases_the_upstream(harness: Harness) -> None:
    async def scenario() -> None:
        batches = harness.provider("text").stream(call())
        first = await anext(batches)
        assert first
        await batches.aclose()  # type: ignore[attr-defined]

    run(scenario())
    assert harness.released()


# --- a malformed upstream event is the upstream's fault; an exception of our own is a bug -----------

MALFORMED = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":"x","usage":{}}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":"not an object"}\n\n'
)


def test_a_malformed_upstream_event_is_a_retryable_upstream_error() -> None:
    client = FakeUpstreamClient()
    client.reply(200, MALFORMED, stream=True)
    with pytest.raises(GatewayError) as caught:
        run(drain(anthropic_provider(client).stream(call())))
    assert caught.value.code == "upstream_error" and caught.value.retryable
    assert "content_block_delta" in caught.value.message


def test_a_bug_in_our_translator_is_not_blamed_on_the_upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    from service.providers.anthropic.stream import StreamTranslator

    def broken(self: StreamTranslator, payload: dict[str, Any]) -> None:
        raise KeyError("a bug of ours")

    # Text deltas are read inline (StreamTranslator.read); every stream starts with `message_start`.
    monkeypatch.setattr(StreamTranslator, "_on_message_start", broken)
    client = FakeUpstreamClient()
    client.reply_fixture("text.sse")
    with pytest.raises(KeyError):
        run(drain(anthropic_provider(client).stream(call())))
    assert all(r.closed for r in client.responses)


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_overload_counts_once_against_the_keys_breaker(stream: bool) -> None:
    client = FakeUpstreamClient()
    client.reply(529, OVERLOADED)
    provider = anthropic_provider(client)
    with pytest.raises(UpstreamOverloaded):
        run(drain(provider.stream(call())) if stream else provider.complete(call()))
    assert [len(key.failures) for key in provider.keys.keys] == [1]


def test_an_overload_inside_a_stream_counts_once_too() -> None:
    client = FakeUpstreamClient()
    client.reply_fixture("error_midstream.sse", reads=3)
    provider = anthropic_provider(client)
    with pytest.raises(UpstreamOverloaded):
        run(drain(provider.stream(call())))
    assert [len(key.failures) for key in provider.keys.keys] == [1]


# --- a half-open probe always leaves with a verdict -------------------------------------------------

FIRST_EVENT_ERROR = b'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"Internal"}}\n\n'


def half_open(provider: Any) -> Any:
    """The provider's only key with its breaker past its cooldown: the next call is the probe."""
    key = provider.keys.keys[0]
    key.open_until = 1.0  # opened long ago
    return key


def test_a_probe_ended_by_a_first_event_error_is_released() -> None:
    client = FakeUpstreamClient()
    client.reply(200, FIRST_EVENT_ERROR, stream=True)
    provider = anthropic_provider(client)
    key = half_open(provider)
    with pytest.raises(GatewayError):
        run(drain(provider.stream(call())))
    assert not key.probing, "the key would report open (and refuse every call) until a restart"


def test_a_probe_cancelled_before_its_first_byte_is_released() -> None:
    client = FakeUpstreamClient()
    client.reply_fixture("text.sse")
    answered = client.post

    async def slow_post(*args: Any) -> Any:
        response = await answered(*args)
        reads = response.chunks

        async def slow_reads() -> Any:
            await asyncio.sleep(10)  # the status line came; the first event takes its time
            async for read in reads():
                yield read

        response.chunks = slow_reads
        return response

    client.post = slow_post  # type: ignore[method-assign]
    provider = anthropic_provider(client)
    key = half_open(provider)

    async def scenario() -> None:
        stream = provider.stream(call())
        task = asyncio.ensure_future(anext(stream))
        for _ in range(3):
            await asyncio.sleep(0)  # the request is out, the probe taken
        assert key.probing
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await stream.aclose()  # type: ignore[attr-defined]

    run(scenario())
    assert not key.probing
