"""The catalog keeps itself current from the upstream's Models API, without a restart; while that
API cannot be read, the built-in table serves and one warning says so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import openai
import pytest

from chatgate.v1 import chat_pb2, chat_service_pb2, chat_service_pb2_grpc
from tests.support import UPSTREAM_KEY, Simulator, eventually, marker, start_gateway, start_simulator

NEW_MODEL = "claude-lyric-1"  # not in the built-in table
NEW_ENTRY: dict[str, Any] = {
    "type": "model",
    "id": NEW_MODEL,
    "display_name": "Claude Lyric 1",
    "created_at": "2026-11-20T00:00:00Z",
    "max_input_tokens": 500_000,
    "max_tokens": 96_000,
    "capabilities": {
        "thinking": {"supported": True, "types": {"adaptive": {"supported": True}, "enabled": {"supported": False}}},
        "effort": {
            "supported": True,
            **{e: {"supported": e != "max"} for e in ("low", "medium", "high", "xhigh", "max")},
        },
        "structured_outputs": {"supported": True},
    },
    "rules": {"sampling": "none", "display": "omitted"},  # what the simulated API enforces for it
}


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    sim = start_simulator(tmp_path_factory.mktemp("sim"), api_key=UPSTREAM_KEY)
    yield sim
    sim.stop()


def gateway_env(simulator: Simulator, interval: str) -> dict[str, str]:
    return {
        "ANTHROPIC_API_KEY": UPSTREAM_KEY,
        "ANTHROPIC_BASE_URL": simulator.url,
        "CHATGATE_CATALOG_REFRESH_INTERVAL": interval,
        "CHATGATE_LOG_LEVEL": "info",
    }


def change_models(simulator: Simulator, **change: Any) -> None:
    httpx.post(simulator.url + "/_sim/models", json=change, timeout=5).raise_for_status()


def test_a_model_the_upstream_adds_is_served_with_its_limits_after_the_next_refresh(
    simulator: Simulator, tmp_path: Path
) -> None:
    gateway = start_gateway(tmp_path, env=gateway_env(simulator, "0.3"))
    try:
        client = openai.OpenAI(base_url=gateway.http_url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model=NEW_MODEL, messages=[{"role": "user", "content": "hi"}])
        change_models(simulator, add=[NEW_ENTRY])
        assert eventually(lambda: NEW_MODEL in {m.id for m in client.models.list()}, timeout=10)
        tag = marker()
        reply = client.chat.completions.create(
            model=NEW_MODEL, messages=[{"role": "user", "content": tag}], reasoning_effort="high", temperature=0.2
        )
        assert reply.choices[0].message.model_extra is not None
        assert reply.choices[0].message.model_extra["reasoning_content"]  # display asked for, as the model hides it
        body = simulator.find(tag)["body"]
        assert body["max_tokens"] == 96_000  # the upstream's limit, not a default
        assert body["thinking"]["type"] == "adaptive" and body["output_config"] == {"effort": "high"}
        assert "temperature" not in body  # an adaptive-only newcomer is taken to reject sampling
        listed = {m.id: m.model_extra for m in client.models.list()}[NEW_MODEL]
        assert listed is not None
        assert (listed["max_output_tokens"], listed["context_window"], listed["thinking"], listed["source"]) == (
            96_000,
            500_000,
            "adaptive_only",
            "upstream",
        )
        assert listed["efforts"] == ["low", "medium", "high", "xhigh"]
        with grpc.insecure_channel(gateway.grpc_target) as channel:
            stub = chat_service_pb2_grpc.ChatCompletionServiceStub(channel)
            models = {m.id: m for m in stub.ListModels(chat_service_pb2.ListModelsRequest(), timeout=10).models}
        assert models[NEW_MODEL].thinking == chat_pb2.MODEL_THINKING_ADAPTIVE_ONLY
        assert models[NEW_MODEL].max_output_tokens == 96_000
    finally:
        gateway.stop()


def test_an_unreachable_models_api_leaves_the_built_in_table_serving_with_one_warning(
    simulator: Simulator, tmp_path: Path
) -> None:
    change_models(simulator, listing_fails=True)
    gateway = start_gateway(tmp_path, env=gateway_env(simulator, "0.1"))
    try:
        client = openai.OpenAI(base_url=gateway.http_url + "/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model="claude-haiku-4-5", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content
        assert {m.id for m in client.models.list()} >= {"claude-haiku-4-5", "claude-opus-4-7"}
        listings = simulator.stats()["model_listings"]
        assert eventually(lambda: simulator.stats()["model_listings"] >= listings + 3, timeout=10)
        warnings = [line for line in gateway.log().splitlines() if "Models API could not be read" in line]
        assert len(warnings) == 1 and '"level":"warning"' in warnings[0]
        assert UPSTREAM_KEY not in gateway.log()
        change_models(simulator, listing_fails=False)
        assert eventually(lambda: "Models API can be read again" in gateway.log(), timeout=5)
    finally:
        change_models(simulator, listing_fails=False)
        gateway.stop()
