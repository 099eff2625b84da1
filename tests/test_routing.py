"""A second provider, registered under another name beside the Anthropic one, with a model routed to it.

Nothing in the core or either edge knows about it: the catalog names the
provider, the use case routes by that name, and the same request over HTTP and
gRPC reaches the right upstream.
"""

from __future__ import annotations

import asyncio

import grpc
import orjson
import pytest

from chatgate.v1 import chat_service_pb2_grpc
from service.core.auth import KeyChecker
from service.grpc_api import GrpcSettings, build_grpc_server
from service.providers.scripted import ScriptedProvider
from tests.inprocess import (
    MAX_BODY,
    FakeUpstreamClient,
    anthropic_provider,
    asgi_client,
    routed_chat,
    text_chunks,
    text_completion,
)
from tests.support import grpc_request

CASES = [("house-model", "house"), ("claude-haiku-4-5", "anthropic")]


def setup() -> tuple[FakeUpstreamClient, ScriptedProvider]:
    upstream = FakeUpstreamClient()
    house = ScriptedProvider(
        completion=text_completion("from the house", model="house-model-v1"),
        steps=text_chunks("from the house", model="house-model-v1"),
    )
    return upstream, house


def expect_route(upstream: FakeUpstreamClient, house: ScriptedProvider, served_by: str, calls: int) -> None:
    if served_by == "house":
        assert len(house.calls) == calls and not upstream.sent
        assert {c.model.upstream_id for c in house.calls} == {"house-model-v1"}
    else:
        assert len(upstream.sent) == calls and not house.calls
        assert {orjson.loads(body)["model"] for _, body, _ in upstream.sent} == {"claude-haiku-4-5-20251001"}


@pytest.mark.parametrize(("model", "served_by"), CASES)
def test_http_routes_each_model_to_its_provider(model: str, served_by: str) -> None:
    upstream, house = setup()
    upstream.reply_fixture("text.json")
    upstream.reply_fixture("text.sse", reads=4)
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}]}

    async def scenario() -> tuple[dict[str, object], str]:
        async with asgi_client(routed_chat(anthropic_provider(upstream), house)) as client:
            whole = await client.post("/v1/chat/completions", json=body)
            streamed = await client.post("/v1/chat/completions", json={**body, "stream": True})
        assert whole.status_code == 200 and streamed.status_code == 200
        return whole.json(), streamed.text

    whole, streamed = asyncio.run(scenario())
    expected = "from the house" if served_by == "house" else "Hello! How can I help you today?"
    assert whole["choices"][0]["message"]["content"] == expected  # type: ignore[index]
    text = "".join(
        orjson.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in streamed.splitlines()
        if line.startswith("data: {") and '"choices":[{' in line
    )
    assert text == expected and streamed.endswith("data: [DONE]\n\n")
    expect_route(upstream, house, served_by, calls=2)


@pytest.mark.parametrize(("model", "served_by"), CASES)
def test_grpc_routes_each_model_to_its_provider(model: str, served_by: str) -> None:
    upstream, house = setup()
    upstream.reply_fixture("text.json")
    upstream.reply_fixture("text.sse", reads=4)

    async def scenario() -> tuple[str, str]:
        chat = routed_chat(anthropic_provider(upstream), house)
        settings = GrpcSettings(reflection=False, max_message_bytes=MAX_BODY, reuse_port=False)
        server = build_grpc_server(chat, KeyChecker(()), "127.0.0.1:0", settings)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                stub = chat_service_pb2_grpc.ChatCompletionServiceStub(channel)
                reply = await stub.CreateChatCompletion(grpc_request("Hi", model=model), timeout=10)
                chunks = [c async for c in stub.StreamChatCompletion(grpc_request("Hi", model=model), timeout=10)]
        finally:
            await server.stop(0)
        streamed = "".join(c.choices[0].delta.content for c in chunks if c.choices)
        return reply.choices[0].message.content[0].text, streamed

    whole, streamed = asyncio.run(scenario())
    expected = "from the house" if served_by == "house" else "Hello! How can I help you today?"
    assert whole == expected and streamed == expected
    expect_route(upstream, house, served_by, calls=2)


def test_a_model_naming_an_unconfigured_provider_is_refused_at_construction() -> None:
    from service.core import ChatService, ModelCatalog
    from tests.inprocess import HOUSE_MODEL, NO_RETRIES

    with pytest.raises(ValueError, match="house"):
        ChatService(
            ModelCatalog([HOUSE_MODEL]), {"anthropic": ScriptedProvider()}, strict_by_default=False, limits=NO_RETRIES
        )
