"""Caller limits shared by every replica, in Redis: the rules of ``service.core.limits``, each
admission one atomic script and one round trip.

Per caller: a sorted set of the last minute's requests (a sliding window), a counter per
one-minute token window, a sorted set of stream leases scored by their expiry (renewed while
the stream runs, so a replica that dies frees its leases within the TTL), and a spend counter
per budget period. When Redis cannot be reached, requests are allowed (logged once per
outage) or refused, as configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from service.core.errors import Overloaded
from service.core.limits import WINDOW, Quota, Ticket, headers_of, period_key, refuse

log = logging.getLogger("chatgate.limits")
LEASE_TTL = 30.0  # seconds a stream lease lives without renewal (limits.lease_ttl)
PREFIX = "chatgate:limits:"

# KEYS: requests, tokens, leases, spend. ARGV: now_ms, rpm, tpm, streams, budget_micros,
# estimate, member, lease, lease_ttl_ms, is_stream. Returns {admitted, reason, wait_ms,
# requests_left, tokens_left, request_reset_ms}.
ADMIT = """
local now = tonumber(ARGV[1])
local window = 60000
local rpm, tpm, streams = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local budget, estimate = tonumber(ARGV[5]), tonumber(ARGV[6])
local is_stream = ARGV[10] == '1'
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local function oldest()
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if first[2] then return tonumber(first[2]) end
  return now
end
if rpm > 0 and count >= rpm then
  return {0, 'rpm', oldest() + window - now, 0, 0, 0}
end
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
local token_reset = window - (now % window)
if tpm > 0 and used > 0 and used + estimate > tpm then
  return {0, 'tpm', token_reset, 0, 0, 0}
end
if is_stream and streams > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= streams then
    return {0, 'streams', 1000, 0, 0, 0}
  end
end
if budget > 0 and tonumber(redis.call('GET', KEYS[4]) or '0') >= budget then
  return {0, 'budget', 0, 0, 0, 0}
end
redis.call('ZADD', KEYS[1], now, ARGV[7])
redis.call('PEXPIRE', KEYS[1], window)
if tpm > 0 then
  redis.call('INCRBY', KEYS[2], estimate)
  redis.call('PEXPIRE', KEYS[2], 2 * window)
end
if is_stream and streams > 0 then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[9]), ARGV[8])
  redis.call('PEXPIRE', KEYS[3], 2 * tonumber(ARGV[9]))
end
local reset = 0
if rpm > 0 and count + 1 >= rpm then reset = oldest() + window - now end
return {1, '', 0, rpm - count - 1, tpm - used - estimate, reset}
"""


class RedisLimiter:
    def __init__(
        self,
        url: str,
        *,
        on_failure: str = "allow",
        lease_ttl: float = LEASE_TTL,
        on_event: Callable[[str, str, int], None] | None = None,
    ) -> None:
        self.lease_ttl = lease_ttl
        self._on_event = on_event  # (store, event, count), for metrics
        self._redis = aioredis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._admit = self._redis.register_script(ADMIT)
        self._allow = on_failure == "allow"
        self._failing = False
        self._leases: dict[str, tuple[str, Ticket]] = {}  # lease -> (its key, ticket), renewed while open
        self._renewer: asyncio.Task[None] | None = None

    @staticmethod
    def _keys(caller: str, minute: int, period: str) -> list[str]:
        base = PREFIX + caller
        return [base + ":requests", f"{base}:tokens:{minute}", base + ":streams", f"{base}:spend:{period}"]

    async def admit(self, caller: str, quota: Quota, estimate: int, *, stream: bool) -> Ticket:
        now = time.time()
        minute = int(now // WINDOW)
        keys = self._keys(caller, minute, period_key(quota.period, now))
        lease = uuid.uuid4().hex if stream and quota.streams else ""
        ticket = Ticket(caller, quota, estimate, minute, lease)
        arguments: list[str | int] = [
            int(now * 1000), quota.rpm, quota.tpm, quota.streams, int(quota.budget_usd * 1_000_000), estimate,
            uuid.uuid4().hex, lease, int(self.lease_ttl * 1000), "1" if stream else "0",
        ]  # fmt: skip
        try:
            admitted, reason, wait, requests_left, tokens_left, reset = await self._admit(keys=keys, args=arguments)
        except RedisError as exc:
            return self._unreachable(exc, ticket)
        self._recovered()
        if not admitted:
            raise refuse(reason.decode() if isinstance(reason, bytes) else str(reason), quota, int(wait) / 1000)
        ticket.headers = headers_of(quota, int(requests_left), int(reset) / 1000, int(tokens_left), 60 - now % 60)
        if lease:
            self._leases[lease] = (keys[2], ticket)
            self._start_renewing()
        return ticket

    async def settle(self, ticket: Ticket, tokens: int, cost: float) -> None:
        now = time.time()
        keys = self._keys(ticket.caller, ticket.minute, period_key(ticket.quota.period, now))
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                if ticket.quota.tpm:
                    pipe.incrby(keys[1], tokens - ticket.estimate)
                if ticket.quota.budget_usd and cost:
                    pipe.incrby(keys[3], int(cost * 1_000_000))  # micro-dollars: exact sums
                    pipe.expire(keys[3], 40 * 86400)
                await pipe.execute()
        except RedisError as exc:
            self._unreachable(exc, ticket)

    async def release(self, ticket: Ticket) -> None:
        if not ticket.lease:
            return
        key, _ = self._leases.pop(ticket.lease, ("", ticket))
        if key:
            with contextlib.suppress(RedisError):
                await self._redis.zrem(key, ticket.lease)

    def _unreachable(self, exc: Exception, ticket: Ticket) -> Ticket:
        if self._on_event is not None:
            self._on_event("limits", "unreachable", 1)
        if not self._failing:
            log.warning("Redis for caller limits is unreachable (%s): %s", type(exc).__name__,
                        "requests are allowed" if self._allow else "requests are refused")  # fmt: skip
        self._failing = True
        if not self._allow:
            raise Overloaded("The gateway's limits store cannot be reached.", code="limits_unavailable")
        ticket.lease = ""
        return ticket

    def _recovered(self) -> None:
        if self._failing:
            log.info("Redis for caller limits answers again")
        self._failing = False

    def _start_renewing(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew())

    async def _renew(self) -> None:
        """Pushes every open lease's expiry forward, a third of the TTL at a time, in one round trip."""
        while self._leases:
            await asyncio.sleep(self.lease_ttl / 3)
            expiry = int((time.time() + self.lease_ttl) * 1000)
            with contextlib.suppress(RedisError):
                async with self._redis.pipeline(transaction=False) as pipe:
                    for lease, (key, _) in list(self._leases.items()):
                        pipe.zadd(key, {lease: expiry}, xx=True)
                    await pipe.execute()

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
        await self._redis.aclose()

    def __repr__(self) -> str:
        return "RedisLimiter()"  # never the URL: it may hold a password
