"""The one pipeline: what every operation shares, checked where the old hand-composed paths differed.

Each test here failed on the five separate paths the use case had before the pipeline:
a fallback served without the caller's allow-list, fan-out siblings left running and
unrecorded, caller limits charged for work the process refused, token counting without
limits or a timeout, and a request reading two catalogs across a refresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import date

import grpc
import httpx
import pytest

from chatgate.v1 import chat_pb2, chat_service_pb2, chat_service_pb2_grpc
from service.core import ChatService, Limits, ModelCatalog, ModelInfo, ProviderCall, RetryPolicy
from service.core.admission import Admission
from service.core.auth import CallerKey, KeyChecker, hash_key
from service.core.errors import (
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    RateLimited,
    ShuttingDown,
    UpstreamError,
    UpstreamOverloaded,
    UpstreamTimeout,
)
from service.core.exchange import Caller, internal
from service.core.lifecycle import Lifecycle
from service.core.limits import LocalLimiter, Quota, Ticket
from service.core.models import Prices
from service.grpc_api import GrpcSettings, build_grpc_server
from service.http_api import HttpSettings, create_app
from tests.inprocess import MAX_BODY, FakeUpstreamClient, anthropic_provider
from tests.support import grpc_request

USAGE = chat_pb2.Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15)
CHEAP = ModelInfo("cheap", "cheap-v1", "Cheap", 1000, provider="house", owned_by="us", fallback=("dear",))
DEAR = ModelInfo("dear", "dear-v1", "Dear", 1000, provider="house", owned_by="us")
KEY = "sk-gw-cheap-only"


def completion(text: str, model: str) -> chat_pb2.ChatCompletion:
    message = chat_pb2.ChatMessage(role=chat_pb2.ROLE_ASSISTANT, content=[chat_pb2.ContentPart(text=text)])
    reply = chat_pb2.ChatCompletion(id="chatcmpl-x", model=model, usage=USAGE)
    reply.choices.add(message=message, finish_reason=chat_pb2.FINISH_REASON_STOP)
    return reply


@dataclass
class ByModel:
    """A provider whose answer depends on the upstream model: ``failing`` ones are overloaded."""

    failing: set[str] = field(default_factory=set)
    served: list[str] = field(default_factory=list)

    async def complete(self, call: ProviderCall) -> chat_pb2.ChatCompletion:
        self.served.append(call.model.upstream_id)
        if call.model.upstream_id in self.failing:
            raise UpstreamOverloaded("Overloaded", retry_after=1.0)
        return completion(f"from {call.model.upstream_id}", call.model.upstream_id)

    async def stream(self, call: ProviderCall) -> AsyncIterator[list[chat_pb2.ChatCompletionChunk]]:
        reply = await self.complete(call)
        chunk = chat_pb2.ChatCompletionChunk(id=reply.id, model=reply.model, usage=USAGE)
        chunk.choices.add(
            delta=chat_pb2.Delta(role=chat_pb2.ROLE_ASSISTANT, content=reply.choices[0].message.content[0].text),
            finish_reason=chat_pb2.FINISH_REASON_STOP,
        )
        yield [chunk]

    async def aclose(self) -> None:
        return None


def limits(timeout: float = 60) -> Limits:
    return Limits(max_choices=4, request_timeout=timeout, retry=RetryPolicy(1, 0.0, 0.0, 0.0))


def house_chat(provider: object, **kwargs: object) -> ChatService:
    return ChatService(
        ModelCatalog([CHEAP, DEAR]),
        {"house": provider},  # type: ignore[dict-item]
        strict_by_default=False,
        limits=limits(),
        **kwargs,  # type: ignore[arg-type]
    )


CHEAP_ONLY = Caller("cheap-only", models=("cheap",))


# --- authorize every model that may serve --------------------------------------------------


def test_a_fallback_the_caller_may_not_use_is_never_served() -> None:
    provider = ByModel(failing={"cheap-v1"})
    chat = house_chat(provider)
    exchange = internal()
    exchange.caller = CHEAP_ONLY
    with pytest.raises(UpstreamOverloaded):
        asyncio.run(chat.complete(grpc_request("Hi", model="cheap"), exchange=exchange))
    assert provider.served == ["cheap-v1"], "the fallback the key may not use was called"


def test_a_fallback_the_caller_may_use_still_answers() -> None:
    provider = ByModel(failing={"cheap-v1"})
    result = asyncio.run(house_chat(provider).complete(grpc_request("Hi", model="cheap")))
    assert provider.served == ["cheap-v1", "dear-v1"]
    assert result.completion.choices[0].message.content[0].text == "from dear-v1"


def test_a_model_the_caller_may_not_use_is_refused_before_any_call() -> None:
    provider = ByModel()
    exchange = internal()
    exchange.caller = CHEAP_ONLY
    with pytest.raises(PermissionDenied):
        asyncio.run(house_chat(provider).complete(grpc_request("Hi", model="dear"), exchange=exchange))
    assert provider.served == []


def restricted_keys() -> KeyChecker:
    return KeyChecker([CallerKey(hash_key(KEY), CHEAP_ONLY)])


def test_http_never_serves_a_forbidden_fallback_whole_or_streamed() -> None:
    provider = ByModel(failing={"cheap-v1"})
    lifecycle = Lifecycle()
    lifecycle.started = True
    app = create_app(house_chat(provider), restricted_keys(), lifecycle, HttpSettings(max_body_bytes=MAX_BODY))
    body = {"model": "cheap", "messages": [{"role": "user", "content": "Hi"}]}

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        headers = {"authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test", headers=headers) as client:
            whole = await client.post("/v1/chat/completions", json=body)
            streamed = await client.post("/v1/chat/completions", json={**body, "stream": True})
        return whole, streamed

    whole, streamed = asyncio.run(scenario())
    assert whole.status_code == 503, whole.text
    assert "dear" not in whole.text and "dear" not in streamed.text
    assert provider.served == ["cheap-v1", "cheap-v1"]


def test_grpc_never_serves_a_forbidden_fallback_unary_or_streamed() -> None:
    provider = ByModel(failing={"cheap-v1"})

    async def scenario() -> list[grpc.StatusCode]:
        settings = GrpcSettings(reflection=False, max_message_bytes=MAX_BODY, reuse_port=False)
        server = build_grpc_server(house_chat(provider), restricted_keys(), "127.0.0.1:0", settings)
        await server.start()
        codes = []
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                stub = chat_service_pb2_grpc.ChatCompletionServiceStub(channel)
                metadata = (("authorization", f"Bearer {KEY}"),)
                for call in (
                    stub.CreateChatCompletion(grpc_request("Hi", model="cheap"), metadata=metadata, timeout=10),
                    stub.StreamChatCompletion(grpc_request("Hi", model="cheap"), metadata=metadata, timeout=10),
                ):
                    with pytest.raises(grpc.aio.AioRpcError) as failed:
                        if isinstance(call, grpc.aio.UnaryStreamCall):
                            [_ async for _ in call]
                        else:
                            await call
                    codes.append(failed.value.code())
        finally:
            await server.stop(0)
        return codes

    assert asyncio.run(scenario()) == [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE]
    assert provider.served == ["cheap-v1", "cheap-v1"]


# --- fan-out in a task group ---------------------------------------------------------------


@dataclass
class FanOut:
    """Choice 1 answers, choice 2 fails a moment later, choice 3 would run for a long time."""

    started: int = 0
    cancelled: int = 0
    running: int = 0

    async def complete(self, call: ProviderCall) -> chat_pb2.ChatCompletion:
        self.started += 1
        index = self.started
        self.running += 1
        try:
            if index == 1:
                return completion("one", "m")
            if index == 2:
                await asyncio.sleep(0.02)
                raise UpstreamError("The upstream failed.")
            await asyncio.sleep(30)
            return completion("three", "m")
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1

    async def aclose(self) -> None:
        return None


def test_a_failed_choice_cancels_its_siblings_and_the_finished_ones_are_recorded() -> None:
    provider = FanOut()
    chat = house_chat(provider)
    exchange = internal()

    async def scenario() -> None:
        with pytest.raises(UpstreamError):
            await chat.complete(grpc_request("Hi", model="dear", n=3), exchange=exchange)
        # When the client gets its error, nothing is still running upstream.
        assert provider.running == 0 and provider.cancelled == 1

    asyncio.run(scenario())
    assert exchange.usage is not None, "the answered choice was billed upstream: it must be recorded"
    assert (exchange.usage.prompt_tokens, exchange.usage.completion_tokens) == (10, 5)
    assert chat.admission.in_flight == 0


# --- admit: the process first, then the caller's limits -------------------------------------


def limited_chat(provider: object, admission: Admission) -> tuple[ChatService, Caller]:
    chat = house_chat(provider, admission=admission, limiter=LocalLimiter())
    return chat, Caller("one-a-minute", quota=Quota(rpm=1))


@pytest.mark.parametrize(
    ("close", "error"), [(True, ShuttingDown), (False, Overloaded)], ids=["shutting_down", "overloaded"]
)
@pytest.mark.parametrize("mode", ["whole", "stream", "count"])
def test_a_request_the_process_refuses_spends_none_of_the_callers_limits(
    close: bool, error: type[Exception], mode: str
) -> None:
    admission = Admission(1)
    provider = CountingProvider()
    chat, caller = limited_chat(provider, admission)

    async def once() -> None:
        exchange = internal()
        exchange.caller = caller
        request = grpc_request("Hi", model="dear")
        if mode == "whole":
            await chat.complete(request, exchange=exchange)
        elif mode == "count":
            await chat.count_tokens(request, exchange=exchange)
        else:
            stream = chat.stream(request, exchange=exchange)
            try:
                [_ async for _ in stream]
            finally:
                await stream.aclose()

    async def scenario() -> None:
        if close:
            admission.closed = True
        else:
            admission.in_flight = 1  # the one slot is taken
        with pytest.raises(error):
            await once()
        admission.closed, admission.in_flight = False, 0
        await once()  # the caller's one request a minute is still there
        with pytest.raises(RateLimited):
            await once()

    asyncio.run(scenario())


# --- token counting: limited and timed out like every call --------------------------------


@dataclass
class CountingProvider(ByModel):
    delay: float = 0.0

    async def count_tokens(self, call: ProviderCall) -> int:
        await asyncio.sleep(self.delay)
        return 7


def test_counting_tokens_is_timed_out_by_the_request_timeout() -> None:
    provider = CountingProvider(delay=5.0)
    chat = ChatService(
        ModelCatalog([CHEAP, DEAR]), {"house": provider}, strict_by_default=False, limits=limits(timeout=0.05)
    )
    with pytest.raises(UpstreamTimeout):
        asyncio.run(asyncio.wait_for(chat.count_tokens(grpc_request("Hi", model="dear")), 3))
    assert chat.admission.in_flight == 0


COUNT_ROUTES = [
    ("/v1/messages/count_tokens", {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "Hi"}]}),
    ("/v1/responses/input_tokens", {"model": "claude-haiku-4-5", "input": "Hi"}),
]


def counted_upstream(replies: int) -> FakeUpstreamClient:
    upstream = FakeUpstreamClient()
    for _ in range(replies):
        upstream.reply(200, b'{"input_tokens": 7}')
    return upstream


def counting_chat(upstream: FakeUpstreamClient) -> ChatService:
    """The Anthropic provider on a fake upstream, under an in-process limiter."""
    from service.providers.anthropic import CLAUDE_MODELS

    return ChatService(
        ModelCatalog(CLAUDE_MODELS),
        {"anthropic": anthropic_provider(upstream)},
        strict_by_default=False,
        limits=limits(),
        limiter=LocalLimiter(),
    )


def limited_keys() -> tuple[KeyChecker, str]:
    caller = Caller("one-a-minute", quota=Quota(rpm=1))
    return KeyChecker([CallerKey(hash_key(KEY), caller)]), KEY


@pytest.mark.parametrize(("path", "body"), COUNT_ROUTES, ids=["native", "responses"])
def test_counting_tokens_over_http_spends_the_callers_limits(path: str, body: dict[str, object]) -> None:
    upstream = counted_upstream(2)
    chat = counting_chat(upstream)
    keys, key = limited_keys()
    lifecycle = Lifecycle()
    lifecycle.started = True
    app = create_app(chat, keys, lifecycle, HttpSettings(max_body_bytes=MAX_BODY))

    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        headers = {"authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test", headers=headers) as client:
            return [(await client.post(path, json=body)).status_code for _ in range(2)]

    assert asyncio.run(scenario()) == [200, 429]
    assert len(upstream.sent) == 1


def test_counting_tokens_over_grpc_spends_the_callers_limits() -> None:
    upstream = counted_upstream(2)
    chat = counting_chat(upstream)
    keys, key = limited_keys()

    async def scenario() -> tuple[int, grpc.StatusCode]:
        settings = GrpcSettings(reflection=False, max_message_bytes=MAX_BODY, reuse_port=False)
        server = build_grpc_server(chat, keys, "127.0.0.1:0", settings)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                stub = chat_service_pb2_grpc.ChatCompletionServiceStub(channel)
                metadata = (("authorization", f"Bearer {key}"),)
                counted = await stub.CountTokens(grpc_request("Hi"), metadata=metadata, timeout=10)
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.CountTokens(grpc_request("Hi"), metadata=metadata, timeout=10)
                return counted.input_tokens, refused.value.code()
        finally:
            await server.stop(0)

    assert asyncio.run(scenario()) == (7, grpc.StatusCode.RESOURCE_EXHAUSTED)


# --- one catalog snapshot per request --------------------------------------------------------


@dataclass
class Settled:
    """A limiter that admits everything and keeps what each request was charged."""

    costs: list[float] = field(default_factory=list)

    async def admit(self, caller: str, quota: Quota, estimate: int, *, stream: bool) -> Ticket:
        return Ticket(caller, quota, estimate, minute=0)

    async def settle(self, ticket: Ticket, tokens: int, cost: float) -> None:
        self.costs.append(cost)

    async def release(self, ticket: Ticket) -> None:
        return None


AFTER_REFRESH = ModelCatalog([replace(CHEAP, fallback=())])
PRICED = replace(DEAR, prices=Prices(1_000_000.0, 1_000_000.0, 0.0, 0.0, 0.0))


@dataclass
class Refreshing(ByModel):
    """Answers while the catalog is replaced by a refresh that no longer lists (or prices) the model."""

    chat: ChatService | None = None

    async def complete(self, call: ProviderCall) -> chat_pb2.ChatCompletion:
        assert self.chat is not None
        self.chat.catalog = AFTER_REFRESH
        return await super().complete(call)


def test_a_request_reads_one_catalog_across_a_refresh() -> None:
    provider = Refreshing()
    limiter = Settled()
    chat = ChatService(
        ModelCatalog([CHEAP, PRICED]),
        {"house": provider},
        strict_by_default=False,
        limits=limits(),
        limiter=limiter,
        default_quota=Quota(budget_usd=100.0),
    )
    provider.chat = chat
    asyncio.run(chat.complete(grpc_request("Hi", model="dear")))
    expected = PRICED.prices.cost(USAGE)  # type: ignore[union-attr]
    assert expected > 0 and limiter.costs == [expected], "priced from the catalog the request started with"


def test_a_stream_falls_back_within_the_catalog_it_was_planned_with() -> None:
    """A stream is planned when it is opened and calls upstream at its first read: a refresh in
    between must not change which models may serve it."""
    provider = ByModel(failing={"cheap-v1"})
    chat = house_chat(provider)

    async def scenario() -> str:
        stream = chat.stream(grpc_request("Hi", model="cheap"))
        chat.catalog = AFTER_REFRESH  # `dear` is gone from the new table
        try:
            batches = [batch async for batch in stream]
        finally:
            await stream.aclose()
        return batches[0][0].model  # type: ignore[union-attr]

    assert asyncio.run(scenario()) == "dear-v1"
    assert provider.served == ["cheap-v1", "dear-v1"]


def test_the_request_type_is_what_a_provider_is_called_with() -> None:
    """Translated calls carry the chat request; the pipeline never hands a provider a placeholder."""
    provider = ByModel()
    captured: list[object] = []

    async def complete(call: ProviderCall) -> chat_pb2.ChatCompletion:
        captured.append(call.request)
        return completion("x", "dear-v1")

    provider.complete = complete  # type: ignore[method-assign]
    asyncio.run(house_chat(provider).complete(grpc_request("Hi", model="dear")))
    assert isinstance(captured[0], chat_service_pb2.ChatCompletionRequest)


# --- a Responses turn: the stored-conversation steps are the core's ---------------------------


@dataclass
class Archive:
    """A ResponseArchive in memory that records the order of its reads and writes."""

    saved: list[tuple[str, str | None, object]] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)

    async def history(self, response_id: str, caller: str) -> list[dict[str, object]]:
        self.asked.append(response_id)
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "earlier"}]}]

    async def save(
        self, caller: str, previous_id: str | None, input_items: list[dict[str, object]], response: dict[str, object]
    ) -> bool:
        self.saved.append((caller, previous_id, response["id"]))
        return True


@pytest.mark.parametrize("store", [True, False])
def test_a_responses_turn_recalls_then_answers_then_keeps(store: bool) -> None:
    from service.codecs.openai_responses import request_from_json

    archive = Archive()
    provider = ByModel()
    chat = house_chat(provider, archive=archive)
    turn = request_from_json({"model": "dear", "input": "now", "store": store, "previous_response_id": "resp_1"})
    seen: list[int] = []

    def render(result: object) -> dict[str, object]:
        seen.append(len(archive.saved))  # rendered before it is kept
        return {"id": "resp_2"}

    exchange = internal()
    exchange.caller = Caller("team")
    _, response = asyncio.run(chat.respond(turn, render, exchange=exchange))
    assert archive.asked == ["resp_1"] and seen == [0] and response == {"id": "resp_2"}
    assert archive.saved == ([("team", "resp_1", "resp_2")] if store else [])


# --- retirement is reported only for an answer the successor gave ---------------------------------

OLD = ModelInfo(
    "old", "old-v1", "Old", 1000, provider="house", owned_by="us", retired=date(2025, 1, 1), successor="dear"
)


def retiring_chat(provider: object) -> ChatService:
    return ChatService(
        ModelCatalog([OLD, CHEAP, DEAR]),
        {"house": provider},
        strict_by_default=False,
        limits=limits(),  # type: ignore[dict-item]
    )


def test_a_retired_model_is_reported_as_served_by_its_successor_once_it_answered() -> None:
    provider = ByModel()
    result = asyncio.run(retiring_chat(provider).complete(grpc_request("Hi", model="old")))
    assert provider.served == ["dear-v1"]
    assert [str(a) for a in result.adjustments] == [
        "model=old->dear: old was retired on 2025-01-01; dear answered instead"
    ]


def test_a_successor_that_failed_is_not_reported_as_having_answered() -> None:
    provider = ByModel(failing={"dear-v1"})
    chat = retiring_chat(provider)
    plan = chat.pipeline.plan(grpc_request("Hi", model="old"), "old", internal(), strict=False, deadline=None)
    (call,) = plan.calls()
    with pytest.raises(UpstreamOverloaded):
        asyncio.run(chat.pipeline.attempt(call, provider.complete))
    assert provider.served == ["dear-v1"] and plan.report.items == []


# --- a listed model the upstream answers 404 for after all ------------------------------------------

LISTED_OLD = ModelInfo(
    "old", "old-v1", "Old", 1000, provider="house", owned_by="us", listed=True, table_retired=date(2025, 1, 1)
)
LISTED_NEW = ModelInfo("new", "new-v1", "New", 1000, provider="house", owned_by="us", listed=True, created=2)


@dataclass
class Gone(ByModel):
    """The upstream lists ``old-v1`` but answers 404 for it."""

    async def complete(self, call: ProviderCall) -> chat_pb2.ChatCompletion:
        if call.model.upstream_id == "old-v1":
            self.served.append("old-v1")
            raise ModelNotFound("model: old-v1", param="model", upstream_status=404)
        return await super().complete(call)


def gone_chat(provider: object, strict: bool = False) -> ChatService:
    catalog = ModelCatalog([replace(LISTED_OLD, successor="new"), LISTED_NEW])
    return ChatService(catalog, {"house": provider}, strict_by_default=strict, limits=limits())  # type: ignore[dict-item]


def test_a_listed_model_the_upstream_answers_404_for_is_served_by_its_successor() -> None:
    provider = Gone()
    result = asyncio.run(gone_chat(provider).complete(grpc_request("Hi", model="old")))
    assert provider.served == ["old-v1", "new-v1"]
    assert [a.shown for a in result.adjustments] == ["old->new"]


def test_strict_a_listed_model_answering_404_is_model_retired_naming_its_successor() -> None:
    with pytest.raises(ModelNotFound) as caught:
        asyncio.run(gone_chat(Gone(), strict=True).complete(grpc_request("Hi", model="old")))
    assert caught.value.code == "model_retired" and "`new`" in caught.value.message


def test_a_404_for_a_model_the_table_never_retired_reaches_the_client() -> None:
    provider = Gone()
    catalog = ModelCatalog([replace(LISTED_OLD, table_retired=None), LISTED_NEW])
    chat = ChatService(catalog, {"house": provider}, strict_by_default=False, limits=limits())  # type: ignore[dict-item]
    with pytest.raises(ModelNotFound):
        asyncio.run(chat.complete(grpc_request("Hi", model="old")))
    assert provider.served == ["old-v1"]


def test_a_turn_that_looks_at_its_conversation_first_reads_the_stored_chain_once() -> None:
    """`context_management` reads the conversation to decide whether to compact; the turn that then
    runs uncompacted reuses that read, and carries the stored message once."""
    from service.codecs.openai_responses import request_from_json
    from service.http_api.responses_compaction import compact_if_due

    archive = Archive()
    provider = ByModel()
    chat = house_chat(provider, archive=archive)
    body = {"model": "dear", "input": "now", "previous_response_id": "resp_1"}
    turn = request_from_json({**body, "context_management": [{"type": "compaction", "compact_threshold": 10_000}]})
    assert turn.compact_threshold == 10_000
    exchange = internal()
    exchange.caller = Caller("team")

    async def scenario() -> chat_service_pb2.ChatCompletionRequest:
        assert await compact_if_due(chat, turn, exchange, None) is None  # far below the threshold
        return await chat.recall(turn, exchange.caller)

    request = asyncio.run(scenario())
    assert archive.asked == ["resp_1"]
    assert [part.text for message in request.messages for part in message.content] == ["earlier", "now"]
