"""The key pool as a table of situations, on a clock the test moves."""

from __future__ import annotations

import pytest

from service.core import errors
from service.transport.keys import BreakerSettings, KeyPool


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
    assert keys.acquire() is b and keys.ready


def test_a_rejected_key_leaves_for_good_and_the_last_one_makes_it_unready() -> None:
    keys, clock = pool(2)
    a = keys.acquire()
    keys.rejected(a, 401)
    clock.now += 3600
    assert all(keys.acquire() is not a for _ in range(3))
    keys.rejected(keys.acquire(), 401)
    assert not keys.ready
    with pytest.raises(errors.UpstreamAuthFailed):
        keys.acquire()


def test_the_breaker_opens_fails_fast_probes_once_and_closes() -> None:
    keys, clock = pool(1, failures=2, cooldown=10)
    key = keys.acquire()
    keys.failed(key)
    keys.failed(keys.acquire())
    assert not keys.ready
    with pytest.raises(errors.CircuitOpen) as caught:
        keys.acquire()
    assert caught.value.retry_after == pytest.approx(10)
    clock.now += 10
    probe = keys.acquire()  # half-open: one probe passes
    with pytest.raises(errors.CircuitOpen):
        keys.acquire()  # the others still fail fast
    keys.succeeded(probe)
    assert keys.ready and keys.acquire() is probe


def test_a_failed_probe_opens_the_breaker_again() -> None:
    keys, clock = pool(1, failures=1, cooldown=5)
    keys.failed(keys.acquire())
    clock.now += 5
    keys.failed(keys.acquire())
    with pytest.raises(errors.CircuitOpen):
        keys.acquire()
