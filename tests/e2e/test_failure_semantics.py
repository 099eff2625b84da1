"""Failure semantics over real sockets: one caller's poison never stops the others, and a keys file
caught empty never turns authentication off. (`make chaos` runs these and more under load.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.core.auth import hash_key
from tests.support import Gateway, Simulator, marker, start_gateway, start_simulator

UPSTREAM_KEY = "sk-ant-semantics-upstream-0001"
HEALTHY, POISON = "sk-gw-healthy-0123456789", "sk-gw-poison-0123456789"
MODEL = "claude-haiku-4-5"


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    sim = start_simulator(tmp_path_factory.mktemp("semantics-sim"))
    yield sim
    sim.stop()


def keys_file(path: Path) -> Path:
    path.write_text(
        "".join(
            f'[[keys]]\nname = "{n}"\nhash = "{hash_key(k)}"\n' for n, k in (("healthy", HEALTHY), ("poison", POISON))
        )
    )
    return path


def gateway(simulator: Simulator, tmp_path: Path, **extra: str) -> Gateway:
    env = {
        "ANTHROPIC_API_KEY": UPSTREAM_KEY,
        "ANTHROPIC_BASE_URL": simulator.url,
        "CHATGATE_KEYS_FILE": str(keys_file(tmp_path / "keys.toml")),
        "CHATGATE_KEYS_RELOAD_INTERVAL": "0.1",
        "CHATGATE_RETRY_BASE_DELAY": "0.01",
        "CHATGATE_RETRY_MAX_DELAY": "0.05",
        **extra,
    }
    return start_gateway(tmp_path, env=env)


def ask(gw: Gateway, key: str | None, text: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    body = {"model": MODEL, "messages": [{"role": "user", "content": text}]}
    return httpx.post(gw.http_url + "/v1/chat/completions", json=body, headers=headers, timeout=30)


def test_two_poison_requests_do_not_stop_the_other_callers(simulator: Simulator, tmp_path: Path) -> None:
    """Default breaker settings; each poison request makes the upstream reset all three attempts.
    Before, six consecutive failures on the only key opened its breaker for 30 s, for everyone."""
    gw = gateway(simulator, tmp_path)
    try:
        for _ in range(2):
            assert ask(gw, POISON, f"{marker()} sim:reset").status_code == 502
        replies = [ask(gw, HEALTHY, f"healthy {i}").status_code for i in range(10)]
        assert replies == [200] * 10
        state = httpx.get(gw.http_url + "/status/upstreams").json()["upstreams"]["anthropic"][0]
        assert state["breaker"] == "closed" and state["failures_in_window"] == 2  # once per request
    finally:
        gw.stop()


def test_a_keys_file_caught_empty_keeps_authentication_on(simulator: Simulator, tmp_path: Path) -> None:
    gw = gateway(simulator, tmp_path)
    try:
        assert ask(gw, None, "anyone?").status_code == 401
        (tmp_path / "keys.toml").write_text("")  # mid-write, or an emptied Secret
        time.sleep(0.5)  # several reload intervals
        assert ask(gw, None, "anyone now?").status_code == 401
        assert ask(gw, HEALTHY, "still me").status_code == 200
    finally:
        gw.stop()
    assert "the new key set is empty; the 2 keys in force stay" in gw.log()
    assert HEALTHY not in gw.log() and UPSTREAM_KEY not in gw.log()
