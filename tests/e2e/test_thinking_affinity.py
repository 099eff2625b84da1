"""A key pool spanning two accounts keeps a thinking conversation on the account that signed its
thinking, for 20 turns, natively (as Claude Code talks) and through the OpenAI dialect. The
simulator binds Haiku 5.5's thinking to the account of the key that produced it, as the real API
does, so a turn sent with the other account's key would be refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.support import Gateway, Simulator, marker, start_gateway, start_simulator

MODEL = "claude-haiku-5-5"
# The simulator takes what follows a key's last `@` as its account; the gateway reads `account=`.
KEYS = "acme=sk-ant-test-affinity-one@acme,beta=sk-ant-test-affinity-two@beta"
TURNS = 20


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    sim = start_simulator(tmp_path_factory.mktemp("sim"))
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def gateway(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    env = {"ANTHROPIC_API_KEYS": KEYS, "ANTHROPIC_BASE_URL": simulator.url, "CHATGATE_RETRY_ATTEMPTS": "1"}
    started = start_gateway(tmp_path_factory.mktemp("gw"), env=env)
    yield started
    started.stop()


def accounts_used(simulator: Simulator, before: dict[str, int]) -> set[str]:
    after: dict[str, int] = simulator.stats()["by_key"]
    return {suffix for suffix, count in after.items() if count > before.get(suffix, 0)}


def test_a_native_conversation_stays_on_its_account_for_twenty_turns(gateway: Gateway, simulator: Simulator) -> None:
    before = dict(simulator.stats()["by_key"])
    messages: list[dict[str, Any]] = [{"role": "user", "content": f"Turn 0 {marker()}"}]
    with anthropic.Anthropic(base_url=gateway.http_url, api_key="unused", max_retries=0) as claude:
        for turn in range(1, TURNS + 1):
            reply = claude.messages.create(
                model=MODEL, max_tokens=200, thinking={"type": "adaptive"}, messages=messages
            )
            blocks = [block.model_dump(exclude_none=True) for block in reply.content]
            assert blocks[0]["type"] == "thinking" and blocks[0]["signature"]
            messages += [{"role": "assistant", "content": blocks}, {"role": "user", "content": f"Turn {turn}"}]
    assert len(accounts_used(simulator, before)) == 1  # every turn on the account that signed turn 1


def test_an_openai_conversation_stays_on_its_account_too(gateway: Gateway, simulator: Simulator) -> None:
    before = dict(simulator.stats()["by_key"])
    messages: list[dict[str, Any]] = [{"role": "user", "content": f"Turn 0 {marker()}"}]
    with openai.OpenAI(base_url=gateway.http_url + "/v1", api_key="unused", max_retries=0) as client:
        for turn in range(1, TURNS + 1):
            reply = client.chat.completions.create(model=MODEL, messages=messages, reasoning_effort="low")  # type: ignore[arg-type]
            message = reply.choices[0].message
            extra = message.model_extra or {}
            assert extra.get("thinking_blocks"), "the signed thinking comes back for the round trip"
            messages += [
                {"role": "assistant", "content": message.content, "thinking_blocks": extra["thinking_blocks"]},
                {"role": "user", "content": f"Turn {turn}"},
            ]
    assert len(accounts_used(simulator, before)) == 1
