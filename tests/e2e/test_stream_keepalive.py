"""Silent streams get keep-alives on both protocols, so proxies that time out idle streams (Envoy's
and Istio's `stream_idle_timeout`) never cut a model that is thinking quietly: SSE comments over
HTTP, empty chunks over gRPC (HTTP/2 pings keep the connection alive, not the stream)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from chatgate.v1 import chat_service_pb2_grpc
from tests.support import MAPPING_ONLY, UPSTREAM_KEY, Gateway, Simulator, grpc_request, start_gateway


@pytest.fixture(scope="module")
def beating(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    env = {
        **MAPPING_ONLY,
        "ANTHROPIC_API_KEY": UPSTREAM_KEY,
        "ANTHROPIC_BASE_URL": simulator.url,
        "CHATGATE_HEARTBEAT": "0.2",
    }
    gateway = start_gateway(tmp_path_factory.mktemp("beating"), env=env)
    yield gateway
    gateway.stop()


def test_a_silent_grpc_stream_gets_empty_keep_alive_chunks(beating: Gateway) -> None:
    with grpc.insecure_channel(beating.grpc_target) as channel:
        stub = chat_service_pb2_grpc.ChatCompletionServiceStub(channel)
        chunks = list(stub.StreamChatCompletion(grpc_request("sim:stall_after_start=1.2 sim:words=3"), timeout=20))
    keep_alives = [c for c in chunks if not c.choices and not c.HasField("usage")]
    assert len(keep_alives) >= 3  # 1.2 s of silence at 0.2 s intervals
    assert all(c.ByteSize() == 0 for c in keep_alives)  # nothing in them for a client to misread
    text = "".join(choice.delta.content for c in chunks for choice in c.choices)
    assert text.split() == ["[chatgate", "simulator]", "You"]  # the answer arrives whole around them


def test_a_stream_that_keeps_talking_gets_none(beating: Gateway) -> None:
    with grpc.insecure_channel(beating.grpc_target) as channel:
        stub = chat_service_pb2_grpc.ChatCompletionServiceStub(channel)
        chunks = list(stub.StreamChatCompletion(grpc_request("sim:words=20 sim:pace_ms=50"), timeout=20))
    assert all(c.choices or c.HasField("usage") for c in chunks)
