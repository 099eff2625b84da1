"""Per-caller limits: requests and tokens per minute, concurrent streams, and a spend budget.

The use case asks a ``Limiter`` to admit each request before any upstream call, settles it
with the real usage when it ends, and releases a stream's lease. The limiter in this module
keeps its counts in process (one machine); ``service/store/limits_redis.py`` keeps the same counts
in Redis so every replica shares them. Both follow one set of rules:

- requests per minute: a sliding window of the last 60 seconds (exactly N in any minute);
- tokens per minute: a fixed one-minute window, admitted on an estimate of the input and
  settled with the real input and output when the request ends (streams included);
- concurrent streams: leases, released when a stream ends (in Redis they also expire, so a
  replica that died does not hold them);
- spend: US dollars per UTC day or month, charged with each request's cost when it ends.

A refusal is ``RateLimited`` (``rate_limit_exceeded``, with how long to wait) or, for a spent
budget, ``QuotaExceeded`` (``insufficient_quota``: waiting for a retry does not help).
"""

from __future__ import annotations

import math
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

from .errors import QuotaExceeded, RateLimited

Period = Literal["day", "month"]
WINDOW = 60.0  # seconds


@dataclass(frozen=True, slots=True)
class Quota:
    """A caller's limits; 0 means no limit of that kind."""

    rpm: int = 0
    tpm: int = 0
    streams: int = 0
    budget_usd: float = 0.0
    period: Period = "day"

    @property
    def active(self) -> bool:
        return bool(self.rpm or self.tpm or self.streams or self.budget_usd)


@dataclass(slots=True)
class Ticket:
    """An admitted request: what to settle and release, and the headers that describe the limits."""

    caller: str
    quota: Quota
    estimate: int
    minute: int  # the token window the estimate was charged to
    lease: str = ""
    headers: dict[str, str] = field(default_factory=dict)


class Limiter(Protocol):
    async def admit(self, caller: str, quota: Quota, estimate: int, *, stream: bool) -> Ticket: ...

    async def settle(self, ticket: Ticket, tokens: int, cost: float) -> None: ...

    async def release(self, ticket: Ticket) -> None: ...


def period_key(period: Period, now: float) -> str:
    day = datetime.fromtimestamp(now, UTC)
    return day.strftime("%Y-%m-%d" if period == "day" else "%Y-%m")


def duration(seconds: float) -> str:
    """OpenAI's reset format: `20ms`, `1s`, `6m0s`."""
    if seconds < 1:
        return f"{max(0, int(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    return f"{whole // 60}m{whole % 60}s" if whole >= 60 else f"{whole}s"


def headers_of(
    quota: Quota, requests_left: int, request_reset: float, tokens_left: int, token_reset: float
) -> dict[str, str]:
    headers: dict[str, str] = {}
    if quota.rpm:
        headers["x-ratelimit-limit-requests"] = str(quota.rpm)
        headers["x-ratelimit-remaining-requests"] = str(max(0, requests_left))
        headers["x-ratelimit-reset-requests"] = duration(request_reset)
    if quota.tpm:
        headers["x-ratelimit-limit-tokens"] = str(quota.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, tokens_left))
        headers["x-ratelimit-reset-tokens"] = duration(token_reset)
    return headers


def refuse(reason: str, quota: Quota, wait: float) -> RateLimited:
    """The refusal, with the limit headers an admitted answer would carry (nothing remaining)."""
    error = _refusal(reason, quota, wait)
    error.headers = headers_of(quota, 0 if reason == "rpm" else 1, wait, 0 if reason == "tpm" else 1, wait)
    if reason != "rpm" and quota.rpm:
        del error.headers["x-ratelimit-remaining-requests"]  # not known here
    if reason != "tpm" and quota.tpm:
        del error.headers["x-ratelimit-remaining-tokens"]
    return error


def _refusal(reason: str, quota: Quota, wait: float) -> RateLimited:
    if reason == "budget":
        return QuotaExceeded(
            f"This caller's spend budget of ${quota.budget_usd:g} per {quota.period} is used up.",
            code="insufficient_quota",
        )
    what = {"rpm": "requests per minute", "tpm": "tokens per minute", "streams": "concurrent streams"}[reason]
    limit = {"rpm": quota.rpm, "tpm": quota.tpm, "streams": quota.streams}[reason]
    return RateLimited(
        f"This caller's limit of {limit} {what} is reached; try again in {max(wait, 0.001):.3g} s.",
        code="rate_limit_exceeded",
        retry_after=max(wait, 0.001),
    )


class LocalLimiter:
    """The limiter for one process (the embedded default)."""

    def __init__(self, clock: object = time.time) -> None:
        self._clock = clock
        self._requests: dict[str, deque[float]] = {}
        self._tokens: dict[tuple[str, int], int] = {}
        self._streams: dict[str, set[str]] = {}
        self._spend: dict[tuple[str, str], float] = {}

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    async def admit(self, caller: str, quota: Quota, estimate: int, *, stream: bool) -> Ticket:
        now = self._now()
        if not quota.tpm and not quota.streams and not quota.budget_usd:  # the common case: requests only
            return self._requests_only(caller, quota, estimate, now)
        minute = int(now // WINDOW)
        recent = self._requests.setdefault(caller, deque())
        while recent and recent[0] <= now - WINDOW:
            recent.popleft()
        used = self._tokens.get((caller, minute), 0)
        token_reset = (minute + 1) * WINDOW - now
        if quota.rpm and len(recent) >= quota.rpm:
            raise refuse("rpm", quota, recent[0] + WINDOW - now)
        if quota.tpm and used + estimate > quota.tpm and used > 0:
            raise refuse("tpm", quota, token_reset)
        leases = self._streams.setdefault(caller, set())
        if stream and quota.streams and len(leases) >= quota.streams:
            raise refuse("streams", quota, 1.0)
        if quota.budget_usd and self._spend.get((caller, period_key(quota.period, now)), 0.0) >= quota.budget_usd:
            raise refuse("budget", quota, 0.0)
        recent.append(now)
        if (caller, minute) not in self._tokens:  # a new window: forget the ones before the last
            self._tokens = {k: v for k, v in self._tokens.items() if k[1] >= minute - 1}
        self._tokens[(caller, minute)] = used + estimate
        ticket = Ticket(caller, quota, estimate, minute)
        if stream and quota.streams:
            ticket.lease = uuid.uuid4().hex
            leases.add(ticket.lease)
        request_reset = recent[0] + WINDOW - now if len(recent) >= quota.rpm > 0 else 0.0
        ticket.headers = headers_of(
            quota, quota.rpm - len(recent), request_reset, quota.tpm - used - estimate, token_reset
        )
        return ticket

    def _requests_only(self, caller: str, quota: Quota, estimate: int, now: float) -> Ticket:
        recent = self._requests.get(caller)
        if recent is None:
            recent = self._requests[caller] = deque()
        edge = now - WINDOW
        while recent and recent[0] <= edge:
            recent.popleft()
        if len(recent) >= quota.rpm:
            raise refuse("rpm", quota, recent[0] + WINDOW - now)
        recent.append(now)
        left = quota.rpm - len(recent)
        reset = recent[0] + WINDOW - now if not left else 0.0
        headers = {
            "x-ratelimit-limit-requests": str(quota.rpm),
            "x-ratelimit-remaining-requests": str(left),
            "x-ratelimit-reset-requests": duration(reset),
        }
        return Ticket(caller, quota, estimate, int(now // WINDOW), headers=headers)

    async def settle(self, ticket: Ticket, tokens: int, cost: float) -> None:
        key = (ticket.caller, ticket.minute)
        if key in self._tokens:
            self._tokens[key] += tokens - ticket.estimate
        if cost:
            spent = (ticket.caller, period_key(ticket.quota.period, self._now()))
            self._spend[spent] = self._spend.get(spent, 0.0) + cost

    async def release(self, ticket: Ticket) -> None:
        if ticket.lease:
            self._streams.get(ticket.caller, set()).discard(ticket.lease)
