"""One battery for both limiters: in process always, Redis when 127.0.0.1:6379 answers (else
skipped, saying so). Each test uses callers of its own, so runs never share counts."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest

from service.core.errors import QuotaExceeded, RateLimited
from service.core.limits import Limiter, LocalLimiter, Quota
from tests.support import missing_service

T = TypeVar("T")


def redis_answers() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError:
        return False
    return True


Make = Callable[[], Limiter]


@pytest.fixture(params=["in-process", "redis"])
def limiter(request: pytest.FixtureRequest) -> Iterator[Make]:
    """Makes the limiter inside a test's event loop (a Redis client belongs to the loop that made it)."""
    if request.param == "redis":
        if not redis_answers():
            missing_service("Redis is not answering on 127.0.0.1:6379: the Redis limiter was not tested")
        from service.store.limits_redis import RedisLimiter

        yield lambda: RedisLimiter("redis://127.0.0.1:6379/0")
    else:
        yield LocalLimiter


def run(make: Make, scenario: Callable[[Limiter], Awaitable[T]]) -> T:
    async def inside() -> T:
        limiter = make()
        try:
            return await scenario(limiter)
        finally:
            close = getattr(limiter, "aclose", None)
            if close is not None:
                await close()

    return asyncio.run(inside())


def caller() -> str:
    return "t-" + uuid.uuid4().hex[:10]


def test_requests_per_minute_admit_exactly_the_limit(limiter: Make) -> None:
    async def scenario(limiter: Limiter) -> tuple[int, list[RateLimited], dict[str, str]]:
        who, quota = caller(), Quota(rpm=5)
        admitted, refused, headers = 0, [], {}
        for _ in range(8):
            try:
                ticket = await limiter.admit(who, quota, 10, stream=False)
                admitted += 1
                headers = ticket.headers
            except RateLimited as error:
                refused.append(error)
        return admitted, refused, headers

    admitted, refused, headers = run(limiter, scenario)
    assert admitted == 5 and len(refused) == 3
    assert all(e.code == "rate_limit_exceeded" and 0 < (e.retry_after or 0) <= 60 for e in refused)
    assert headers["x-ratelimit-limit-requests"] == "5" and headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"].endswith("s")


def test_tokens_are_admitted_on_an_estimate_and_settled_with_the_real_usage(limiter: Make) -> None:
    async def scenario(limiter: Limiter) -> bool:
        who, quota = caller(), Quota(tpm=1000)
        ticket = await limiter.admit(who, quota, 100, stream=False)
        assert ticket.headers["x-ratelimit-remaining-tokens"] == "900"
        await limiter.settle(ticket, 950, 0.0)  # the answer was long: 950 tokens in all
        try:
            await limiter.admit(who, quota, 100, stream=False)
        except RateLimited as error:
            return error.code == "rate_limit_exceeded"
        return False

    assert run(limiter, scenario)


def test_concurrent_streams_hold_leases_until_released(limiter: Make) -> None:
    async def scenario(limiter: Limiter) -> None:
        who, quota = caller(), Quota(streams=2)
        first = await limiter.admit(who, quota, 1, stream=True)
        await limiter.admit(who, quota, 1, stream=True)
        await limiter.admit(who, quota, 1, stream=False)  # a whole answer holds no lease
        with pytest.raises(RateLimited):
            await limiter.admit(who, quota, 1, stream=True)
        await limiter.release(first)
        await limiter.admit(who, quota, 1, stream=True)

    run(limiter, scenario)


def test_a_spent_budget_refuses_without_a_retry(limiter: Make) -> None:
    async def scenario(limiter: Limiter) -> QuotaExceeded:
        who, quota = caller(), Quota(budget_usd=0.01)
        ticket = await limiter.admit(who, quota, 1, stream=False)
        await limiter.settle(ticket, 10, 0.011)
        with pytest.raises(QuotaExceeded) as caught:
            await limiter.admit(who, quota, 1, stream=False)
        return caught.value

    error = run(limiter, scenario)
    assert error.code == "insufficient_quota" and not error.retryable


def test_callers_do_not_share_counts(limiter: Make) -> None:
    async def scenario(limiter: Limiter) -> None:
        quota = Quota(rpm=1)
        await limiter.admit(caller(), quota, 1, stream=False)
        await limiter.admit(caller(), quota, 1, stream=False)

    run(limiter, scenario)
