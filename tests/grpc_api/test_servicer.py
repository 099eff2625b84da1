"""The gRPC edge in process (a grpc.aio server on port 0) over the scripted provider:
the servicer's one error boundary, metadata and the gateway report."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from chatgate.v1 import chat_pb2, chat_service_pb2_grpc
from service.core.auth import KeyChecker
from service.core.errors import UpstreamOverloaded
from service.grpc_api import GrpcSettings, build_grpc_server
from service.providers.scripted import ScriptedProvider
from tests.inprocess import MAX_BODY, scripted_chat, text_chunks, text_completion
from tests.support import grpc_request

T = TypeVar("T")
Stub = chat_service_pb2_grpc.ChatCompletionServiceStub


def serve(provider: ScriptedProvider, scenario: Callable[[Stub], Awaitable[T]]) -> T:
    async def run() -> T:
        settings = GrpcSettings(reflection=False, max_message_bytes=MAX_BODY, reuse_port=False)
        server = build_grpc_server(scripted_chat(provider), KeyChecker(()), "127.0.0.1:0", settings)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                return await scenario(Stub(channel))
        finally:
            await server.stop(0)

    return asyncio.run(run())


def reason(error: grpc.aio.AioRpcError) -> str:
    raw = dict(error.trailing_metadata() or ())["grpc-status-details-bin"]
    for detail in status_pb2.Status.FromString(raw).details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    raise AssertionError("no ErrorInfo")


async def failure(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error
    raise AssertionError("the call succeeded")


async def stream_failure(stub: Stub) -> tuple[list[chat_pb2.ChatCompletionChunk], grpc.aio.AioRpcError]:
    received = []
    try:
        async for chunk in stub.StreamChatCompletion(grpc_request("Hi"), timeout=10):
            received.append(chunk)
    except grpc.aio.AioRpcError as error:
        return received, error
    raise AssertionError("the stream succeeded")


def test_unary_reply_carries_the_gateway_report() -> None:
    async def scenario(stub: Stub) -> chat_pb2.ChatCompletion:
        return await stub.CreateChatCompletion(grpc_request("Hi", seed=4), timeout=10)

    reply = serve(ScriptedProvider(completion=text_completion("Hello")), scenario)
    assert reply.choices[0].message.content[0].text == "Hello" and reply.gateway.overhead_ms > 0


@pytest.mark.parametrize("where", ["unary", "stream start"])
def test_a_bug_of_ours_is_internal_and_logged(where: str, caplog: pytest.LogCaptureFixture) -> None:
    bug = KeyError("oops")
    provider = ScriptedProvider(completion=bug, steps=[bug])

    async def scenario(stub: Stub) -> grpc.aio.AioRpcError:
        if where == "unary":
            return await failure(stub.CreateChatCompletion(grpc_request("Hi"), timeout=10))
        received, error = await stream_failure(stub)
        assert not received
        return error

    with caplog.at_level(logging.ERROR, logger="chatgate.grpc"):
        error = serve(provider, scenario)
    assert error.code() == grpc.StatusCode.INTERNAL and reason(error) == "internal_error"
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)


def test_a_bug_of_ours_mid_stream_is_internal_after_the_sent_chunks() -> None:
    chunks = text_chunks("one two")
    provider = ScriptedProvider(steps=[chunks[0], chunks[1], TypeError("bug")])
    received, error = serve(provider, stream_failure)
    assert len(received) == 2 and error.code() == grpc.StatusCode.INTERNAL
    assert provider.closed_streams == 1


def test_an_upstream_failure_keeps_its_code() -> None:
    provider = ScriptedProvider(steps=[UpstreamOverloaded("busy", retry_after=1)])
    received, error = serve(provider, stream_failure)
    assert not received and error.code() == grpc.StatusCode.UNAVAILABLE and reason(error) == "server_overloaded"
