"""Metrics and multi-worker serving, on real processes."""

from __future__ import annotations

import contextlib
from pathlib import Path

import grpc
import httpx
import openai

from chatgate.v1 import chat_service_pb2_grpc
from tests.support import MODEL, UPSTREAM_KEY, Gateway, Simulator, grpc_request, metric_sum, start_gateway


def test_metrics_count_outcomes_and_the_gateways_own_time(
    gateway: Gateway, client: openai.OpenAI, stub: chat_service_pb2_grpc.ChatCompletionServiceStub
) -> None:
    before = httpx.get(gateway.http_url + "/metrics").text
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "count me"}])
    list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "me too"}], stream=True))
    stub.CreateChatCompletion(grpc_request("and me"), timeout=10)
    with contextlib.suppress(grpc.RpcError):
        stub.CreateChatCompletion(grpc_request("sim:status=529"), timeout=10)
    after = httpx.get(gateway.http_url + "/metrics").text

    def grew(name: str, **labels: str) -> float:
        return metric_sum(after, name, **labels) - metric_sum(before, name, **labels)

    assert grew("chatgate_requests_total", protocol="http", mode="unary", outcome="ok") >= 1
    assert grew("chatgate_requests_total", protocol="http", mode="stream", outcome="ok") >= 1
    assert grew("chatgate_requests_total", protocol="grpc", mode="unary", outcome="ok") >= 1
    assert grew("chatgate_requests_total", protocol="grpc", mode="unary", outcome="server_overloaded") >= 1
    assert grew("chatgate_gateway_overhead_seconds_count", protocol="http", mode="unary") >= 1
    assert 'chatgate_in_flight_requests{protocol="http"}' in after


def test_two_workers_share_both_ports(simulator: Simulator, tmp_path: Path) -> None:
    gateway = start_gateway(
        tmp_path, env={"ANTHROPIC_API_KEY": UPSTREAM_KEY, "ANTHROPIC_BASE_URL": simulator.url}, args=["--workers", "2"]
    )
    try:
        client = openai.OpenAI(base_url=gateway.http_url + "/v1", api_key="x", max_retries=0)
        stub = chat_service_pb2_grpc.ChatCompletionServiceStub(grpc.insecure_channel(gateway.grpc_target))
        for i in range(8):
            assert client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"w{i}"}]).choices
            assert stub.CreateChatCompletion(grpc_request(f"g{i}"), timeout=10).choices
        assert "started 2 workers" in gateway.log()
    finally:
        gateway.stop()
    assert gateway.process.returncode == 0
