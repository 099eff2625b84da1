"""Reliability checklist 13 and 36: a slow reader does not make the gateway buffer the stream, and a
gRPC client that keeps its connection alive with pings every 10 s is never sent away."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from chatgate.v1 import chat_service_pb2_grpc
from tests.support import MAPPING_ONLY, UPSTREAM_KEY, Gateway, Simulator, grpc_request, start_gateway


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def gateway(simulator: Simulator, tmp_path: Path) -> Iterator[Gateway]:
    gw = start_gateway(
        tmp_path, env={**MAPPING_ONLY, "ANTHROPIC_API_KEY": UPSTREAM_KEY, "ANTHROPIC_BASE_URL": simulator.url}
    )
    yield gw
    gw.stop()


def test_a_slow_reader_holds_the_stream_back_instead_of_filling_memory(gateway: Gateway) -> None:
    """About 47 MB of SSE that the upstream sends at once, read at a trickle: the gateway waits on
    the client's socket (uvicorn's flow control) and so stops reading the upstream. What it holds is
    bounded by socket buffers (measured: about 25 MiB of RSS with aiohttp, 8 with httpx, whatever
    the stream's length), never the stream."""
    body = (
        b'{"model": "claude-haiku-4-5", "stream": true, "max_tokens": 64000, '
        b'"messages": [{"role": "user", "content": "sim:words=200000"}]}'
    )
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    pid = gateway.process.pid
    warm = httpx.post(
        gateway.http_url + "/v1/chat/completions",
        content=body.replace(b"200000", b"2000"),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert warm.status_code == 200  # the first stream's one-time allocations are not the slow reader's
    before = rss_mib(pid)
    with socket.create_connection(("127.0.0.1", gateway.http_port)) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        client.sendall(request)
        received = 0
        peak = before
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:  # about 8 KB a second
            received += len(client.recv(1024))
            peak = max(peak, rss_mib(pid))
            time.sleep(0.12)
    assert received > 0
    # Buffered whole, the stream would cost the gateway more than its 47 MB.
    assert peak - before < 40, f"the gateway grew {peak - before:.1f} MiB for one slow stream"


def test_a_client_pinging_every_ten_seconds_is_not_sent_away(gateway: Gateway) -> None:
    options = [
        ("grpc.keepalive_time_ms", 10_000),
        ("grpc.keepalive_timeout_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    with grpc.insecure_channel(gateway.grpc_target, options=options) as channel:
        stub = chat_service_pb2_grpc.ChatCompletionServiceStub(channel)
        assert stub.CreateChatCompletion(grpc_request("before"), timeout=10).choices
        time.sleep(32)  # three pings without data: a server that enforced a longer interval would GOAWAY
        state = channel._channel.check_connectivity_state(False)  # type: ignore[attr-defined]
        assert state == 2, f"channel state {state}: the connection was dropped"  # READY
        assert stub.CreateChatCompletion(grpc_request("after"), timeout=10).choices
    assert "too_many_pings" not in gateway.log()
