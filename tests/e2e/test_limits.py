"""Limits that protect the gateway and its upstream: silences, the connection pool, deadlines, gRPC basics."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import openai
import pytest

from chatgate.v1 import chat_service_pb2_grpc
from tests.e2e.test_resilience import FAST_RETRIES, ask, attempts, sdk
from tests.support import UPSTREAM_KEY, Gateway, Simulator, eventually, grpc_request, marker, start_gateway

MODEL = "claude-haiku-4-5"


@pytest.fixture
def tight(simulator: Simulator, tmp_path: Path) -> Iterator[Gateway]:
    """One upstream connection, a short pool wait and read timeout, no retries."""
    env = {
        **FAST_RETRIES,
        "CHATGATE_RETRY_ATTEMPTS": "1",
        "CHATGATE_UPSTREAM_MAX_CONNECTIONS": "1",
        "CHATGATE_UPSTREAM_POOL_TIMEOUT": "0.3",
        # aiohttp bounds the wait for a pooled connection and the connect together (pool + connect).
        "CHATGATE_UPSTREAM_CONNECT_TIMEOUT": "0.2",
        "CHATGATE_UPSTREAM_READ_TIMEOUT": "1",
        "ANTHROPIC_API_KEY": UPSTREAM_KEY,
        "ANTHROPIC_BASE_URL": simulator.url,
    }
    gateway = start_gateway(tmp_path, env=env)
    yield gateway
    gateway.stop()


def test_a_stalled_stream_ends_with_a_timeout_error_and_the_upstream_is_closed(
    tight: Gateway, simulator: Simulator
) -> None:
    before = simulator.stats()["aborted"]
    with pytest.raises(openai.APIError) as caught:
        list(
            sdk(tight).chat.completions.create(
                model=MODEL, stream=True, messages=[{"role": "user", "content": f"{marker()} sim:stall_after_start=4"}]
            )
        )
    assert "upstream_timeout" in str(caught.value.body)
    assert eventually(lambda: simulator.stats()["aborted"] > before)


def test_a_full_pool_fails_fast_and_recovers(tight: Gateway) -> None:
    url = tight.http_url + "/v1/chat/completions"
    slow = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "sim:pace_ms=100 sim:words=15"}]}
    started = threading.Event()
    finished: list[str] = []

    def hold_the_only_connection() -> None:
        with httpx.stream("POST", url, json=slow, timeout=30) as response:
            lines = response.iter_lines()
            next(lines)
            started.set()
            finished.extend(lines)

    holder = threading.Thread(target=hold_the_only_connection)
    holder.start()
    assert started.wait(10)
    waiting = ask(tight, "no connection for me")
    assert waiting.status_code == 502 and waiting.json()["error"]["code"] == "upstream_pool_timeout"
    holder.join(30)
    assert "data: [DONE]" in finished
    assert all(ask(tight, f"after {i}").status_code == 200 for i in range(5))  # the pool is not poisoned


def test_a_deadline_already_gone_makes_no_upstream_call(gateway: Gateway, simulator: Simulator) -> None:
    tag = marker()
    stub = chat_service_pb2_grpc.ChatCompletionServiceStub(grpc.insecure_channel(gateway.grpc_target))
    with pytest.raises(grpc.RpcError) as caught:
        stub.CreateChatCompletion(grpc_request(f"{tag} sim:stall=1"), timeout=0.001)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
    assert attempts(simulator, tag) == 0


def test_an_unknown_method_is_unimplemented(gateway: Gateway) -> None:
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        method = channel.unary_unary("/chatgate.v1.ChatCompletionService/NoSuchMethod")
        with pytest.raises(grpc.RpcError) as caught:
            method(b"", timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]


def test_a_status_message_with_unicode_and_a_newline_round_trips(gateway: Gateway) -> None:
    stub = chat_service_pb2_grpc.ChatCompletionServiceStub(grpc.insecure_channel(gateway.grpc_target))
    name = "モデル\n星 ✓"  # non-ASCII and a newline: gRPC percent-encodes status messages
    with pytest.raises(grpc.RpcError) as caught:
        stub.CreateChatCompletion(grpc_request("x", model=name), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    assert name in caught.value.details()  # type: ignore[attr-defined]
