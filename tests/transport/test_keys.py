"""The key pool as a table of situations, on a clock the test moves."""

from __future__ import annotations

import asyncio

import pytest

from service.core import errors
from service.transport import keys as keys_module
from service.transport.keys import BreakerSettings, KeyPool, UpstreamKey


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def pool(keys: int = 2, failures: int = 2, cooldown: float = 10.0) -> tuple[KeyPool, Clock]:
    clock = Clock()
    return KeyPool("up", [f"sk-{i}" for i in range(keys)], BreakerSettings(failures, cooldown), clock=clock), clock


def test_round_robin_and_aliases_never_the_key() -> None:
    keys, _ = pool(3)
    taken = [keys.acquire().alias for _ in range(4)]
    assert taken == ["up#1", "up#2", "up#3", "up#1"]
    assert "sk-0" not in repr(keys.keys[0])


def test_a_rate_limited_key_rests_while_others_serve_and_comes_back() -> None:
    keys, clock = pool(2)
    first = keys.acquire()
    keys.rate_limited(first, 5.0)
    assert [keys.acquire().alias for _ in range(3)] == ["up#2"] * 3
    clock.now += 6
    assert {keys.acquire().alias for _ in range(2)} == {"up#1", "up#2"}


def test_when_every_key_rests_the_one_resting_least_is_used() -> None:
    keys, _ = pool(2)
    a, b = keys.acquire(), keys.acquire()
    keys.rate_limited(a, 30.0)
    keys.rate_limited(b, 5.0)
    assert keys.acquire() is b


# --- evidence before exile --------------------------------------------------------------------


def test_a_401_quarantines_the_key_while_another_serves() -> None:
    keys, clock = pool(2)
    a = keys.acquire()
    keys.rejected(a, 401)
    clock.now += 3600
    assert all(keys.acquire() is not a for _ in range(3))
    assert keys.status()[0]["state"] == "quarantined"


def test_live_traffic_alone_never_exiles_the_last_key() -> None:
    """One 401 on the only key (a blip, a proxy's hiccup) must not end the gateway."""
    keys, _ = pool(1)
    only = keys.acquire()
    for _ in range(5):
        keys.rejected(only, 401)
    assert keys.acquire() is only  # still tried: it is the last route
    assert keys.status()[0]["state"] == "quarantined"


@pytest.mark.parametrize(
    ("answers", "state"), [([200], "in_rotation"), ([401], "rejected"), ([None, 500, 200], "in_rotation")]
)
def test_a_quarantined_key_is_verified_out_of_band(
    monkeypatch: pytest.MonkeyPatch, answers: list[int | None], state: str
) -> None:
    monkeypatch.setattr(keys_module, "VERIFY_FIRST", 0.001)
    monkeypatch.setattr(keys_module, "VERIFY_MAX", 0.002)
    asked: list[str] = []
    pending = list(answers)

    async def verify(key: UpstreamKey) -> int | None:
        asked.append(key.alias)
        return pending.pop(0) if pending else answers[-1]

    async def scenario() -> None:
        keys = KeyPool("up", ["sk-0", "sk-1"], BreakerSettings(2, 10), verify=verify)
        keys.rejected(keys.keys[0], 401)
        for _ in range(200):
            if keys.status()[0]["state"] == state and len(asked) >= len(answers):
                break
            await asyncio.sleep(0.002)
        assert keys.status()[0]["state"] == state
        await keys.aclose()

    asyncio.run(scenario())
    assert set(asked) == {"up#1"}


def test_keys_verified_invalid_are_never_used() -> None:
    keys, _ = pool(2)
    for key in keys.keys:
        key.rejected = True  # what two failed verifications leave
    with pytest.raises(errors.UpstreamAuthFailed):
        keys.acquire()


# --- count health, not requests ------------------------------------------------------------------


def test_below_the_minimum_volume_the_breaker_stays_closed() -> None:
    """Two poison requests do not stop everyone: too few to judge the upstream by."""
    keys, _ = pool(1, failures=3)
    for request in ("r1", "r2"):
        keys.failed(keys.acquire(), request, "poisoner")
    assert keys.status()[0]["breaker"] == "closed"


def test_retries_of_one_request_count_once() -> None:
    keys, _ = pool(1, failures=3)
    for _ in range(3):
        keys.failed(keys.acquire(), "one-request", "caller")
    assert keys.status()[0]["breaker"] == "closed" and keys.status()[0]["failures_in_window"] == 1


def test_one_callers_failures_never_trip_the_breaker_for_the_others() -> None:
    keys, _ = pool(1, failures=3)
    for i in range(10):
        keys.failed(keys.acquire(), f"poison-{i}", "poisoner")
        keys.succeeded(keys.acquire(), "healthy")  # others are served all the while
    assert keys.status()[0]["breaker"] == "closed"


def test_a_failure_rate_across_callers_opens_the_breaker() -> None:
    keys, _ = pool(2, failures=3)
    for i in range(4):
        keys.failed(keys.keys[0], f"r{i}", f"caller-{i % 2}")
    assert keys.status()[0]["breaker"] == "open"
    assert all(keys.acquire() is keys.keys[1] for _ in range(3))  # the other key takes the traffic


def test_successes_in_the_window_keep_the_rate_down() -> None:
    keys, _ = pool(1, failures=3)
    key = keys.keys[0]
    keys.failed(key, "first", "a")
    for _ in range(20):
        keys.succeeded(key, "b")
    for i in range(3):
        keys.failed(key, f"r{i}", "a" if i % 2 else "b")
    assert keys.status()[0]["breaker"] == "closed"  # 4 failed of 24


def open_breaker(keys: KeyPool, key: UpstreamKey) -> None:
    for i in range(keys.settings.failures):
        keys.failed(key, f"trip-{i}", f"caller-{i}")


def test_the_breaker_probes_once_after_the_cooldown_and_closes() -> None:
    keys, clock = pool(2, failures=2, cooldown=10)
    a, b = keys.keys
    open_breaker(keys, a)
    open_breaker(keys, b)
    clock.now += 10
    probe = keys.acquire()  # half-open: one probe passes
    other = keys.acquire()  # the other key's probe
    assert sorted([probe.alias, other.alias]) == ["up#1", "up#2"] and probe.probing and other.probing
    keys.succeeded(probe)
    assert keys.status()[keys.keys.index(probe)]["breaker"] == "closed"


def test_a_failed_probe_opens_the_breaker_again() -> None:
    keys, clock = pool(2, failures=1, cooldown=5)
    a = keys.keys[0]
    open_breaker(keys, a)
    clock.now += 5
    assert keys.acquire() is a  # the probe
    keys.failed(a, "probe", "x")
    assert keys.status()[0]["breaker"] == "open"


@pytest.mark.parametrize("how", ["released", "never_released"])
def test_a_probe_is_always_released(how: str) -> None:
    """A probe cancelled before its first byte must not leave the key open for good."""
    keys, clock = pool(1, failures=1, cooldown=5)
    a = keys.keys[0]
    open_breaker(keys, a)
    clock.now += 5
    assert keys.acquire() is a and a.probing
    if how == "released":
        keys.released(a)
    else:
        clock.now += keys_module.PROBE_LEASE + 1
    assert keys.status()[0]["breaker"] == "half-open"
    assert keys.acquire() is a and a.probing  # a new probe can go


# --- never black-hole the last route ------------------------------------------------------------


def test_the_last_key_behind_an_open_breaker_is_tried_at_a_bounded_rate() -> None:
    keys, clock = pool(1, failures=2, cooldown=30)
    only = keys.keys[0]
    open_breaker(keys, only)
    assert keys.acquire() is only  # one call passes at once
    with pytest.raises(errors.CircuitOpen) as refused:
        keys.acquire()  # the next ones wait for the next slot, not for the cooldown
    assert refused.value.retry_after is not None and refused.value.retry_after <= keys_module.PANIC_INTERVAL
    clock.now += keys_module.PANIC_INTERVAL
    assert keys.acquire() is only
    keys.succeeded(only)  # the upstream is back: the breaker closes at the first success
    assert keys.status()[0]["breaker"] == "closed"
