"""A stream that ends at `message_stop` closes its upstream reader itself.

The upstream's reads end before its connection does, so the reader is left suspended. Left to
the event loop's finalizer it is closed later, in a task of its own scheduled through the loop's
wake-up socket: a task and a syscall per stream on the hot path."""

from __future__ import annotations

import asyncio

from service.core import CompatReport, NativeRequest, ProviderCall
from service.providers.anthropic import CLAUDE_MODELS
from tests.inprocess import FakeUpstreamClient, anthropic_provider
from tests.support import FIXTURES, grpc_request

MODEL = CLAUDE_MODELS[0]


def test_a_translated_stream_closes_its_reader_at_message_stop() -> None:
    client = FakeUpstreamClient()
    client.reply(200, (FIXTURES / "text.sse").read_bytes() + b": the connection stays open\n\n", stream=True)
    provider = anthropic_provider(client)

    async def scenario() -> None:
        batches = [
            b async for b in provider.stream(ProviderCall(grpc_request("Hi"), MODEL, CompatReport(strict=False)))
        ]
        assert batches
        reader = client.responses[0].readers[0]
        assert reader.ag_frame is None, "the reader is still suspended"

    asyncio.run(scenario())


def test_a_relayed_stream_closes_its_reader_at_message_stop() -> None:
    client = FakeUpstreamClient()
    client.reply(200, (FIXTURES / "text.sse").read_bytes() + b": the connection stays open\n\n", stream=True)
    provider = anthropic_provider(client)
    body = (
        b'{"model":"%s","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"Hi"}]}' % MODEL.id.encode()
    )
    native = NativeRequest("messages", MODEL.id, body, stream=True)

    async def scenario() -> None:
        call = ProviderCall(native, MODEL, CompatReport(strict=False))
        reads = [r async for r in provider.relay_stream(call)]
        assert b"message_stop" in b"".join(reads)
        assert client.responses[0].readers[0].ag_frame is None, "the reader is still suspended"

    asyncio.run(scenario())
