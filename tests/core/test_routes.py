"""Routes per model: one catalog entry served by several upstreams in order, failing over before the
first byte (reported as an adjustment), each route priced on its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import date

import pytest

from chatgate.v1 import chat_pb2
from service.core import ChatService, Limits, ModelCatalog, ModelInfo, ProviderCall, RetryPolicy
from service.core.errors import (
    CircuitOpen,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    QuotaExceeded,
    UpstreamAuthFailed,
    UpstreamOverloaded,
    UpstreamUnavailable,
)
from service.core.exchange import internal
from service.core.models import Prices, Route
from tests.support import grpc_request

USAGE = chat_pb2.Usage(prompt_tokens=1000, completion_tokens=100, total_tokens=1100)
LIST = Prices(1.0, 5.0, 0.1, 1.25, 2.0)
ROUTED = ModelInfo(
    "haiku",
    "claude-haiku",
    "Haiku",
    1000,
    provider="anthropic",
    prices=LIST,
    routes=(Route("bedrock", "anthropic.claude-haiku-v1:0", 1.1), Route("vertex", "claude-haiku@1", 1.0)),
)


@dataclass
class Upstream:
    """One route's provider: ``failure`` is raised on every call when set."""

    name: str
    failure: GatewayError | None = None
    served: list[str] = field(default_factory=list)

    async def complete(self, call: ProviderCall) -> chat_pb2.ChatCompletion:
        self.served.append(call.model.upstream_id)
        if self.failure is not None:
            raise self.failure
        message = chat_pb2.ChatMessage(role=chat_pb2.ROLE_ASSISTANT, content=[chat_pb2.ContentPart(text=self.name)])
        reply = chat_pb2.ChatCompletion(id="chatcmpl-x", model=call.model.upstream_id, usage=USAGE)
        reply.choices.add(message=message, finish_reason=chat_pb2.FINISH_REASON_STOP)
        return reply

    async def stream(self, call: ProviderCall) -> AsyncIterator[list[chat_pb2.ChatCompletionChunk]]:
        reply = await self.complete(call)
        chunk = chat_pb2.ChatCompletionChunk(id=reply.id, model=reply.model, usage=USAGE)
        chunk.choices.add(
            delta=chat_pb2.Delta(role=chat_pb2.ROLE_ASSISTANT, content=self.name),
            finish_reason=chat_pb2.FINISH_REASON_STOP,
        )
        yield [chunk]

    async def aclose(self) -> None:
        return None


def routed_chat(*upstreams: Upstream, attempts: int = 3, delay: float = 5.0) -> ChatService:
    # A long retry delay: a handoff between routes must not wait it out.
    retry = RetryPolicy(attempts, delay, delay, 60.0)
    return ChatService(
        ModelCatalog([ROUTED]),
        {u.name: u for u in upstreams},  # type: ignore[misc]
        strict_by_default=False,
        limits=Limits(max_choices=4, request_timeout=60, retry=retry),
    )


def test_a_model_on_routes_lists_each_route_in_order() -> None:
    names = [(m.provider, m.upstream_id, m.price_factor) for m in ROUTED.on_routes()]
    assert names == [
        ("anthropic", "claude-haiku", 1.0),
        ("bedrock", "anthropic.claude-haiku-v1:0", 1.1),
        ("vertex", "claude-haiku@1", 1.0),
    ]
    assert ROUTED.on_routes()[1].route_prices == LIST.scaled(1.1)


@pytest.mark.parametrize(
    "failure",
    [
        UpstreamOverloaded("Overloaded"),
        UpstreamUnavailable("connection refused"),
        CircuitOpen("open"),
        UpstreamAuthFailed("bad signature", upstream_status=403),
        QuotaExceeded("spend limit"),
        ModelNotFound("not enabled in this region", upstream_status=404),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_failing_route_hands_the_request_to_the_next_at_once(failure: GatewayError) -> None:
    first, second, third = (
        Upstream("anthropic", failure),
        Upstream("bedrock", UpstreamOverloaded("busy")),
        Upstream("vertex"),
    )
    chat = routed_chat(first, second, third)
    exchange = internal()
    started = time.monotonic()
    result = asyncio.run(chat.complete(grpc_request("Hi", model="haiku"), exchange=exchange))
    assert time.monotonic() - started < 1.0  # no retry delay between routes
    assert result.completion.choices[0].message.content[0].text == "vertex"
    assert (first.served, second.served, third.served) == (
        ["claude-haiku"],
        ["anthropic.claude-haiku-v1:0"],
        ["claude-haiku@1"],
    )
    shown = [f"{a.param}={a.shown}" for a in result.adjustments]
    assert shown == ["route=anthropic->bedrock", "route=bedrock->vertex"]
    assert exchange.model_served == "haiku" and exchange.upstream == "vertex"
    assert exchange.prices == LIST


def test_the_route_that_answers_prices_the_request() -> None:
    chat = routed_chat(Upstream("anthropic", UpstreamOverloaded("busy")), Upstream("bedrock"), Upstream("vertex"))
    exchange = internal()
    asyncio.run(chat.complete(grpc_request("Hi", model="haiku"), exchange=exchange))
    assert exchange.upstream == "bedrock"
    assert exchange.prices is not None and exchange.prices.cost(USAGE) == pytest.approx(LIST.cost(USAGE) * 1.1)


def test_a_request_the_upstream_found_invalid_is_not_sent_down_other_routes() -> None:
    first = Upstream("anthropic", InvalidRequest("messages: bad", upstream_status=400))
    second = Upstream("bedrock")
    chat = routed_chat(first, second, Upstream("vertex"))
    with pytest.raises(InvalidRequest):
        asyncio.run(chat.complete(grpc_request("Hi", model="haiku")))
    assert second.served == []


def test_the_last_route_keeps_the_usual_retries() -> None:
    last = Upstream("vertex", UpstreamOverloaded("busy"))
    chat = routed_chat(
        Upstream("anthropic", UpstreamOverloaded("busy")),
        Upstream("bedrock", CircuitOpen("open")),
        last,
        attempts=2,
        delay=0.01,
    )
    with pytest.raises(UpstreamOverloaded) as failed:
        asyncio.run(chat.complete(grpc_request("Hi", model="haiku")))
    assert len(last.served) == 2  # retried on the last route, with the retry budget
    assert failed.value.retries_spent


def test_a_stream_fails_over_between_routes_before_its_first_byte() -> None:
    chat = routed_chat(Upstream("anthropic", UpstreamUnavailable("refused")), Upstream("bedrock"), Upstream("vertex"))

    async def run() -> list[str]:
        stream = chat.stream(grpc_request("Hi", model="haiku"))
        try:
            batches = [batch async for batch in stream]
        finally:
            await stream.aclose()
        return [c.choices[0].delta.content for batch in batches for c in batch if c.choices]  # type: ignore[union-attr]

    assert asyncio.run(run()) == ["bedrock"]


# --- routes and retirement --------------------------------------------------------------------------


def two_route(model: ModelInfo, upstream_id: str) -> ModelInfo:
    return replace(model, routes=(Route("bedrock", upstream_id, 1.0),))


def test_a_successor_answering_on_its_second_route_is_reported_as_standing_in() -> None:
    old = ModelInfo("old", "old-v1", "Old", 1000, provider="anthropic", retired=date(2025, 1, 1), successor="haiku")
    anthropic, bedrock = Upstream("anthropic", UpstreamOverloaded("busy")), Upstream("bedrock")
    chat = ChatService(
        ModelCatalog([old, ROUTED]),
        {"anthropic": anthropic, "bedrock": bedrock, "vertex": Upstream("vertex")},  # type: ignore[dict-item]
        strict_by_default=False,
        limits=Limits(max_choices=4, request_timeout=60, retry=RetryPolicy(1, 0.0, 0.0, 0.0)),
    )
    result = asyncio.run(chat.complete(grpc_request("Hi", model="old")))
    assert [a.shown or a.action for a in result.adjustments] == ["anthropic->bedrock", "old->haiku"]


@dataclass
class Gone(Upstream):
    """Lists the model but answers 404 for it."""

    async def complete(self, call: ProviderCall) -> chat_pb2.ChatCompletion:
        self.served.append(call.model.upstream_id)
        if call.model.id == "old":
            raise ModelNotFound("model: gone", param="model", upstream_status=404)
        return await super().complete(call)


def test_a_model_gone_on_one_route_is_tried_on_the_others_before_its_successor() -> None:
    listed_old = ModelInfo(
        "old", "old-v1", "Old", 1000, provider="anthropic", listed=True, table_retired=date(2025, 1, 1), successor="new"
    )
    new = ModelInfo("new", "new-v1", "New", 1000, provider="anthropic", listed=True, created=2)
    anthropic, bedrock = Gone("anthropic"), Upstream("bedrock")
    chat = ChatService(
        ModelCatalog([two_route(listed_old, "anthropic.old-v1"), new]),
        {"anthropic": anthropic, "bedrock": bedrock},  # type: ignore[dict-item]
        strict_by_default=False,
        limits=Limits(max_choices=4, request_timeout=60, retry=RetryPolicy(1, 0.0, 0.0, 0.0)),
    )
    result = asyncio.run(chat.complete(grpc_request("Hi", model="old")))
    assert result.completion.choices[0].message.content[0].text == "bedrock"  # the cloud still serves it
    assert anthropic.served == ["old-v1"] and bedrock.served == ["anthropic.old-v1"]
    # Gone on every route: then its successor answers.
    bedrock_gone = Gone("bedrock")
    chat.providers["bedrock"] = bedrock_gone  # type: ignore[assignment]
    chat.pipeline.providers["bedrock"] = bedrock_gone  # type: ignore[assignment]
    result = asyncio.run(chat.complete(grpc_request("Hi", model="old")))
    assert result.completion.choices[0].message.content[0].text == "anthropic"
    assert [a.shown for a in result.adjustments][-1] == "old->new"
