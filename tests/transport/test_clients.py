"""Both upstream clients against the real simulator: one battery, the same observable behaviour."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest

from service.transport.http import (
    ConnectFailed,
    ConnectionBroken,
    ReadTimedOut,
    Timeouts,
    UpstreamClient,
    build_client,
)
from tests.support import UPSTREAM_KEY, Simulator, eventually, free_port

HEADERS = {"x-api-key": UPSTREAM_KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"}
FAST = Timeouts(connect=2, read=5, pool=2)


def body(text: str, *, stream: bool = False) -> bytes:
    return orjson.dumps(
        {
            "model": "claude-haiku-4-5-20251001",
            "max_tokens": 100,
            "stream": stream,
            "messages": [{"role": "user", "content": text}],
        }
    )


def run(name: str, scenario: Callable[[UpstreamClient], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        client = build_client(name, 10, FAST)  # type: ignore[arg-type]
        try:
            return await scenario(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


CLIENTS = pytest.mark.parametrize("name", ["aiohttp", "httpx"])


@CLIENTS
def test_whole_reply_with_lower_case_headers(name: str, simulator: Simulator) -> None:
    async def scenario(client: UpstreamClient) -> tuple[int, dict[str, str], bytes]:
        response = await client.post(simulator.url + "/v1/messages", body("hi"), HEADERS, FAST)
        data = await response.read()
        await response.aclose()
        return response.status, dict(response.headers), data

    status, headers, data = run(name, scenario)
    assert status == 200 and headers["request-id"].startswith("req_sim_")
    assert "anthropic-ratelimit-requests-limit" in headers
    assert orjson.loads(data)["type"] == "message"


@CLIENTS
def test_streamed_reply_arrives_whole(name: str, simulator: Simulator) -> None:
    async def scenario(client: UpstreamClient) -> bytes:
        response = await client.post(simulator.url + "/v1/messages", body("hi", stream=True), HEADERS, FAST)
        data = b"".join([chunk async for chunk in response.chunks()])
        await response.aclose()
        return data

    data = run(name, scenario)
    assert data.startswith(b"event: message_start") and data.rstrip().endswith(b'{"type":"message_stop"}')


@CLIENTS
def test_refused_connection_is_connect_failed(name: str) -> None:
    async def scenario(client: UpstreamClient) -> None:
        await client.post(f"http://127.0.0.1:{free_port()}/v1/messages", body("hi"), HEADERS, FAST)

    with pytest.raises(ConnectFailed):
        run(name, scenario)


@CLIENTS
def test_silence_longer_than_the_read_timeout_is_read_timed_out(name: str, simulator: Simulator) -> None:
    async def scenario(client: UpstreamClient) -> None:
        await client.post(simulator.url + "/v1/messages", body("sim:stall=3"), HEADERS, Timeouts(2, 0.3, 2))

    started = time.monotonic()
    with pytest.raises(ReadTimedOut):
        run(name, scenario)
    assert time.monotonic() - started < 2.5


@CLIENTS
def test_a_dropped_stream_is_connection_broken(name: str, simulator: Simulator) -> None:
    async def scenario(client: UpstreamClient) -> None:
        response = await client.post(
            simulator.url + "/v1/messages", body("sim:drop_after=2", stream=True), HEADERS, FAST
        )
        try:
            async for _ in response.chunks():
                pass
        finally:
            await response.aclose()

    with pytest.raises(ConnectionBroken):
        run(name, scenario)


@CLIENTS
def test_closing_an_unfinished_stream_aborts_it_upstream(name: str, simulator: Simulator) -> None:
    before = simulator.stats()["aborted"]

    async def scenario(client: UpstreamClient) -> None:
        response = await client.post(
            simulator.url + "/v1/messages", body("sim:pace_ms=100 sim:words=100", stream=True), HEADERS, FAST
        )
        async for _ in response.chunks():
            break
        await response.aclose()

    run(name, scenario)
    assert eventually(lambda: simulator.stats()["aborted"] == before + 1)


def test_bytes_received_before_a_break_are_delivered_before_the_error() -> None:
    """The race behind a lost tail: data and the connection loss arrive before the reader runs."""
    from unittest.mock import MagicMock

    import aiohttp

    from service.transport.http import AiohttpResponse

    async def scenario() -> list[bytes]:
        protocol = MagicMock()
        content = aiohttp.StreamReader(protocol, 2**16, loop=asyncio.get_running_loop())
        content.feed_data(b"event: a\ndata: 1\n\n")
        content.set_exception(aiohttp.ClientPayloadError("connection lost"))
        raw = MagicMock(status=200, headers={}, content=content)
        received = []
        with pytest.raises(ConnectionBroken):
            async for data in AiohttpResponse(raw).chunks():
                received.append(data)
        return received

    assert asyncio.run(scenario()) == [b"event: a\ndata: 1\n\n"]
