"""The upstream's Models API is the truth about what it serves: a model it lists is sent as asked,
whatever the built-in table says; a successor is only ever a model it lists; and every name it
serves (dated ids and aliases) is in the lists, on every surface.

The simulator plays an upstream that still serves a model the built-in table calls retired (a
private deployment, a proxy, a cloud route that retires models later than Anthropic does).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import openai
import pytest

from chatgate.v1 import chat_pb2, chat_service_pb2, chat_service_pb2_grpc
from tests.support import (
    UPSTREAM_KEY,
    Gateway,
    Simulator,
    eventually,
    grpc_request,
    marker,
    start_gateway,
    start_simulator,
)

SEED = "claude-sonnet-4-20250514"  # retired in the built-in table; this upstream still serves it
SEED_ENTRY: dict[str, Any] = {
    "type": "model",
    "id": SEED,
    "display_name": "Claude Sonnet 4",
    "created_at": "2025-05-22T00:00:00Z",
    "max_input_tokens": 200_000,
    "max_tokens": 64_000,
    "capabilities": {
        "thinking": {"supported": True, "types": {"enabled": {"supported": True}, "adaptive": {"supported": False}}},
        "structured_outputs": {"supported": False},
    },
}
ANTHROPIC = {"anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    sim = start_simulator(tmp_path_factory.mktemp("sim"), api_key=UPSTREAM_KEY)
    change = {"add": [SEED_ENTRY], "remove": ["claude-sonnet-5-5"]}
    httpx.post(sim.url + "/_sim/models", json=change, timeout=5).raise_for_status()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def gateway(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    env = {"ANTHROPIC_API_KEY": UPSTREAM_KEY, "ANTHROPIC_BASE_URL": simulator.url, "CHATGATE_RETRY_ATTEMPTS": "1"}
    started = start_gateway(tmp_path_factory.mktemp("gw"), env=env)
    with openai_client(started) as client:
        assert eventually(lambda: source(client, SEED) == "upstream")  # the first listing has arrived
    yield started
    started.stop()


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai_client(gateway) as opened:
        yield opened


def source(client: openai.OpenAI, name: str) -> str:
    extra = client.models.retrieve(name).model_extra or {}
    return str(extra.get("source"))


def openai_client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.http_url + "/v1", api_key="unused", max_retries=0)


def test_a_listed_model_the_table_calls_retired_is_sent_as_asked_over_http(
    client: openai.OpenAI, simulator: Simulator
) -> None:
    tag = marker()
    raw = client.chat.completions.with_raw_response.create(model=SEED, messages=[{"role": "user", "content": tag}])
    assert "model=" not in raw.headers.get("x-chatgate-adjusted", "")
    assert raw.parse().choices[0].message.content
    assert simulator.find(tag)["body"]["model"] == SEED


def test_a_listed_model_the_table_calls_retired_is_sent_as_asked_over_grpc(
    gateway: Gateway, simulator: Simulator
) -> None:
    tag = marker()
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        stub = chat_service_pb2_grpc.ChatCompletionServiceStub(channel)
        reply, call = stub.CreateChatCompletion.with_call(grpc_request(tag, model=SEED), timeout=10)
        chunks = list(stub.StreamChatCompletion(grpc_request(tag + " again", model=SEED), timeout=10))
    assert "model=" not in dict(call.trailing_metadata()).get("x-chatgate-adjusted", "")
    assert reply.choices[0].finish_reason == chat_pb2.FINISH_REASON_STOP
    assert chunks and chunks[-1].choices[-1].finish_reason == chat_pb2.FINISH_REASON_STOP
    assert simulator.find(tag)["body"]["model"] == SEED
    assert simulator.find(tag + " again")["body"]["model"] == SEED


def test_a_listed_model_the_table_calls_retired_is_sent_as_asked_natively(
    gateway: Gateway, simulator: Simulator
) -> None:
    tag = marker()
    answer = httpx.post(
        gateway.http_url + "/v1/messages",
        headers=ANTHROPIC,
        json={"model": SEED, "max_tokens": 100, "messages": [{"role": "user", "content": tag}]},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert "model=" not in answer.headers.get("x-chatgate-adjusted", "")
    assert simulator.find(tag)["body"]["model"] == SEED


def test_a_successor_the_upstream_does_not_list_is_never_chosen(client: openai.OpenAI, simulator: Simulator) -> None:
    # Sonnet 4.5 is retired in the table and unlisted; the table's newest Sonnet (5.5) is unlisted
    # too, so the successor is the newest Sonnet this upstream lists: Sonnet 5.
    tag = marker()
    raw = client.chat.completions.with_raw_response.create(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": tag}]
    )
    assert raw.headers["x-chatgate-adjusted"] == "model=claude-sonnet-4-5->claude-sonnet-5"
    assert simulator.find(tag)["body"]["model"] == "claude-sonnet-5"
    listed = client.models.retrieve("claude-sonnet-4-5").model_extra or {}
    assert listed["successor"] == "claude-sonnet-5"


def test_the_lists_carry_dated_ids_and_aliases_and_retrieve_echoes_the_name_asked(
    gateway: Gateway, client: openai.OpenAI
) -> None:
    names = {"claude-haiku-4-5", "claude-haiku-4-5-20251001"}
    openai_ids = {m.id for m in client.models.list()}
    page = httpx.get(gateway.http_url + "/v1/models?limit=1000", headers=ANTHROPIC, timeout=10).json()
    anthropic_ids = {m["id"] for m in page["data"]}
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        stub = chat_service_pb2_grpc.ChatCompletionServiceStub(channel)
        grpc_ids = {m.id for m in stub.ListModels(chat_service_pb2.ListModelsRequest(), timeout=10).models}
    assert names <= openai_ids and names <= anthropic_ids and names <= grpc_ids
    assert len(anthropic_ids) == len(page["data"])  # each name once
    for name in sorted(names):
        assert client.models.retrieve(name).id == name
        one = httpx.get(f"{gateway.http_url}/v1/models/{name}", headers=ANTHROPIC, timeout=10).json()
        assert one["id"] == name and one["type"] == "model"
