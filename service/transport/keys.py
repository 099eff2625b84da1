"""Several keys per upstream: which one a call uses, which ones rest, which ones are out, and a breaker each.

The rules (docs/resilience.md states them as principles, with the settings that tune them):

- Keys are taken round-robin, skipping any that rests, is quarantined or out, or whose
  breaker is open.
- A key answered with 429 rests for the upstream's `retry-after` (or a second):
  other keys are preferred meanwhile. Anthropic's limits are per model, so a rested
  key is never refused outright.
- **Evidence before exile.** A 401 quarantines the key: it leaves the rotation while
  another key can serve, and is verified out of band (``verify``: a cheap Models API call
  with that key), with backoff from a second to five minutes. It leaves the rotation for
  good only when the verification also says 401 (reported: an error log line naming its
  alias, and the ``on_event`` hook), and returns when a verification passes. A 403 is
  reported the same way but the key stays: `permission_error` concerns a resource.
- **Count health, not requests.** Each key's breaker counts the failures that say
  something about the upstream's health (connect errors, resets, 5xx, 529, timeouts),
  once per client request, over a sliding ``window``; it opens when at least ``failures``
  requests failed there, they are at least ``ratio`` of the requests the key served
  there, and more than one caller saw them (unless only one caller used the key): one
  caller's poison requests never trip it for the others. After ``cooldown`` one probe
  passes (half-open); its success closes the breaker. A probe is always released,
  however it ends, and a probe nobody released expires after ``PROBE_LEASE`` seconds.
- **Never black-hole the last route.** When no key is usable, the least-bad one is
  still tried: a resting key first, then a quarantined one, then one behind an open
  breaker at a bounded rate (one call every ``PANIC_INTERVAL`` seconds), rather than
  refusing everyone. Only keys verified as invalid are never used.

- **Accounts.** A key may be tagged with the account it belongs to (``acme=sk-...``):
  ``acquire_in`` takes a usable key of one account, for requests that must stay there
  (thinking bound to the account that produced it).

Keys appear only as aliases (``anthropic#1``) in logs, errors and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from service.core import errors

log = logging.getLogger("chatgate.upstream")

DEFAULT_REST = 1.0  # seconds a 429 without `retry-after` rests a key
PROBE_LEASE = 60.0  # seconds after which a half-open probe nobody released counts as released
PANIC_INTERVAL = 0.25  # seconds between calls let through to a key behind an open breaker when it is the last
VERIFY_FIRST = 1.0  # seconds before the first verification of a quarantined key
VERIFY_MAX = 300.0  # the longest wait between verifications (an exiled key is still checked this often)
KeyEvent = Callable[[str, str, str], None]  # upstream, key alias, event
# `account=key`: a lower-case name, then the key (which never starts that way: keys are long and mixed-case).
ACCOUNT_PREFIX = re.compile(r"^([a-z][a-z0-9_-]{0,31})=(.+)$", re.DOTALL)


def split_account(entry: str) -> tuple[str, str]:
    """(account, key) of a configured key entry; the account is '' for a plain key."""
    match = ACCOUNT_PREFIX.match(entry)
    return (match.group(1), match.group(2)) if match else ("", entry)


# Checks one key out of band: the upstream's HTTP status for a cheap call with it, None when unreachable.
Verify = Callable[["UpstreamKey"], Awaitable[int | None]]


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    failures: int  # failed requests within the window that may open the breaker (the minimum volume)
    cooldown: float  # seconds it stays open before a probe
    window: float = 30.0  # seconds of history the failure rate is taken over
    ratio: float = 0.5  # the share of the window's requests that must have failed


@dataclass(slots=True)
class UpstreamKey:
    alias: str
    value: str = field(repr=False)
    account: str = ""  # the upstream account the key belongs to, when configured
    rest_until: float = 0.0
    quarantined: bool = False  # a 401 seen; out of rotation while verified
    rejected: bool = False  # verified invalid: never used
    open_until: float = 0.0  # breaker open while now < open_until
    probing: bool = False  # half-open: one probe call is out
    probe_since: float = 0.0
    panic_next: float = 0.0  # last-key mode: when the next call may pass an open breaker
    # Failed requests in the window: (time, request id, caller), one per request.
    failures: deque[tuple[float, str, str]] = field(default_factory=deque)
    # Requests answered in the window, counted in two halves (cheap on the hot path).
    ok_now: int = 0
    ok_before: int = 0
    ok_since: float = 0.0
    callers: set[str] = field(default_factory=set)  # who used the key since the failures began

    def breaker(self, now: float) -> str:
        if self.open_until == 0.0:
            return "closed"
        if self.probing and now - self.probe_since > PROBE_LEASE:
            self.probing = False  # a probe that was never released must not hold the key open forever
        return "open" if now < self.open_until or self.probing else "half-open"

    @property
    def in_rotation(self) -> bool:
        return not self.rejected and not self.quarantined


class KeyPool:
    def __init__(
        self,
        upstream: str,
        keys: Sequence[str],
        breaker: BreakerSettings,
        *,
        on_event: KeyEvent | None = None,
        clock: Callable[[], float] = time.monotonic,
        verify: Verify | None = None,
    ) -> None:
        if not keys:
            raise ValueError(f"upstream {upstream} has no key")
        self.upstream = upstream
        self.keys = [
            UpstreamKey(f"{upstream}#{i + 1}", key, account)
            for i, (account, key) in enumerate(split_account(entry) for entry in keys)
        ]
        self.accounts = frozenset(k.account for k in self.keys if k.account)
        self.settings = breaker
        self._next = 0
        self._on_event = on_event
        self._clock = clock
        self._verify = verify
        self._verifying: dict[str, asyncio.Task[None]] = {}

    def status(self) -> list[dict[str, object]]:
        """Each key's state by alias (never the key), for the admin status endpoint."""
        now = self._clock()
        return [
            {
                "key": k.alias,
                "account": k.account,
                "state": "rejected" if k.rejected else "quarantined" if k.quarantined else "in_rotation",
                "breaker": k.breaker(now),
                "resting_s": round(max(0.0, k.rest_until - now), 3),
                "failures_in_window": len(k.failures),
            }
            for k in self.keys
        ]

    def acquire(self) -> UpstreamKey:
        """The key for the next call, or the error that says why there is none."""
        count = len(self.keys)
        key = self.keys[self._next]
        if key.in_rotation and key.open_until == 0.0 and key.rest_until == 0.0:  # the usual case: no clock
            self._next = (self._next + 1) % count
            return key
        now = self._clock()
        for step in range(count):
            key = self.keys[(self._next + step) % count]
            if not key.in_rotation or key.rest_until > now:
                continue
            state = key.breaker(now)
            if state == "open":
                continue
            self._next = (self._next + step + 1) % count
            return self._taken(key, state, now)
        return self._least_bad(now)

    def acquire_in(self, account: str) -> UpstreamKey | None:
        """A usable key of ``account``, in turn among them; None when it has none usable now."""
        now = self._clock()
        count = len(self.keys)
        for step in range(count):
            index = (self._next + step) % count
            key = self.keys[index]
            if key.account != account or not key.in_rotation or key.rest_until > now:
                continue
            state = key.breaker(now)
            if state == "open":
                continue
            self._next = (index + 1) % count
            return self._taken(key, state, now)
        return None

    def usable_in(self, account: str) -> bool:
        """Whether ``account`` has a key that could serve a call right now."""
        now = self._clock()
        return any(
            k.account == account and k.in_rotation and k.rest_until <= now and k.breaker(now) != "open"
            for k in self.keys
        )

    def _least_bad(self, now: float) -> UpstreamKey:
        """No key is usable: the one least likely to fail, so the last route is never black-holed."""
        live = [k for k in self.keys if not k.rejected]
        if not live:
            raise errors.UpstreamAuthFailed(
                "The upstream rejected every key the gateway has; the operator must fix the gateway's API keys."
            )
        closed = [k for k in live if k.breaker(now) != "open"]
        resting = [k for k in closed if k.in_rotation]
        if resting:  # rested keys: the one whose rest ends first
            key = min(resting, key=lambda k: k.rest_until)
            return self._taken(key, key.breaker(now), now)
        if closed:  # quarantined, not yet proven bad: live traffic alone never exiles the last key
            return self._taken(closed[0], closed[0].breaker(now), now)
        key = min(live, key=lambda k: k.panic_next)
        if now >= key.panic_next:  # every breaker open: let a bounded trickle through
            key.panic_next = now + PANIC_INTERVAL
            return key
        raise errors.CircuitOpen(
            "The upstream failed repeatedly; calls pass at a bounded rate until it recovers.",
            retry_after=max(0.0, key.panic_next - now),
        )

    @staticmethod
    def _taken(key: UpstreamKey, state: str, now: float) -> UpstreamKey:
        if state == "half-open":
            key.probing, key.probe_since = True, now  # exactly one probe; the others keep failing fast
        return key

    def usable(self) -> bool:
        """Whether another call could get a key right now that is neither resting, out, nor behind an open breaker."""
        now = self._clock()
        return any(k.in_rotation and k.rest_until <= now and k.breaker(now) != "open" for k in self.keys)

    # --- verdicts ---------------------------------------------------------------------

    def succeeded(self, key: UpstreamKey, caller: str = "") -> None:
        if key.open_until:
            log.info("upstream %s key %s: breaker closed again", self.upstream, key.alias)
            self._event(key, "breaker_closed")
            key.open_until, key.probing = 0.0, False
            key.failures.clear()
        if key.failures:  # only while failures are on record does the share of successes matter
            now = self._clock()
            self._prune(key, now)
            if key.failures:
                self._count_ok(key, now, caller)
        if key.rest_until and key.rest_until <= self._clock():
            key.rest_until = 0.0  # rested and answering again: back on the fast path

    def rate_limited(self, key: UpstreamKey, retry_after: float | None) -> None:
        key.rest_until = self._clock() + (retry_after if retry_after is not None else DEFAULT_REST)
        key.probing = False
        self._event(key, "rested")

    def denied(self, key: UpstreamKey, status: int | None) -> None:
        """A 403: reported, the key stays in rotation."""
        log.error(
            "upstream %s denied key %s a resource (HTTP %s); the key stays in rotation",
            self.upstream,
            key.alias,
            status,
        )
        key.probing = False
        self._event(key, "denied")

    def rejected(self, key: UpstreamKey, status: int | None) -> None:
        """A 401 on live traffic: evidence, not a verdict. The key is quarantined and verified."""
        key.probing = False
        if key.quarantined or key.rejected:
            return
        key.quarantined = True
        log.warning(
            "upstream %s answered key %s with HTTP %s: quarantined while it is verified",
            self.upstream,
            key.alias,
            status,
        )
        self._event(key, "quarantined")
        self._start_verifying(key)

    def failed(self, key: UpstreamKey, request_id: str = "", caller: str = "") -> None:
        """An upstream fault (5xx, overload, connection failure, timeout), counted once per client request."""
        now = self._clock()
        if key.probing:  # the probe failed: open again for a full cooldown
            key.probing = False
            self._open(key, now, "the probe failed")
            return
        self._prune(key, now)
        if request_id and any(seen == request_id for _, seen, _ in key.failures):
            return  # a retry of a request already counted
        if not key.failures:
            key.callers.clear()
            key.ok_now = key.ok_before = 0
            key.ok_since = now
        key.failures.append((now, request_id, caller))
        key.callers.add(caller)
        if key.open_until == 0.0 and self._tripped(key):
            self._open(key, now, f"{len(key.failures)} failed requests in {self.settings.window:g} s")

    def released(self, key: UpstreamKey) -> None:
        """The call ended without a verdict on the upstream (the client left, a bad request): a probe may go again."""
        key.probing = False

    # --- the breaker's arithmetic -------------------------------------------------------

    def _count_ok(self, key: UpstreamKey, now: float, caller: str) -> None:
        half = self.settings.window / 2
        if now - key.ok_since >= half:
            key.ok_before = key.ok_now if now - key.ok_since < 2 * half else 0
            key.ok_now, key.ok_since = 0, now
        key.ok_now += 1
        key.callers.add(caller)

    def _prune(self, key: UpstreamKey, now: float) -> None:
        horizon = now - self.settings.window
        while key.failures and key.failures[0][0] < horizon:
            key.failures.popleft()

    def _tripped(self, key: UpstreamKey) -> bool:
        failed = len(key.failures)
        if failed < self.settings.failures:
            return False  # below the minimum volume: too little to judge the upstream by
        if failed < self.settings.ratio * (failed + key.ok_now + key.ok_before):
            return False
        failing = {caller for _, _, caller in key.failures}
        return len(failing) > 1 or key.callers <= failing  # not one caller's failures alone, among others

    def _open(self, key: UpstreamKey, now: float, why: str) -> None:
        key.open_until = now + self.settings.cooldown
        log.warning(
            "upstream %s key %s: breaker open for %.0f s (%s)", self.upstream, key.alias, self.settings.cooldown, why
        )
        self._event(key, "breaker_open")

    # --- verification of a quarantined key ------------------------------------------------

    def _start_verifying(self, key: UpstreamKey) -> None:
        if self._verify is None or key.alias in self._verifying:
            return
        try:
            task = asyncio.get_running_loop().create_task(self._verifying_loop(key))
        except RuntimeError:  # no loop (a synchronous test): nothing verifies, the key stays quarantined
            return
        self._verifying[key.alias] = task
        task.add_done_callback(lambda _: self._verifying.pop(key.alias, None))

    async def _verifying_loop(self, key: UpstreamKey) -> None:
        assert self._verify is not None
        wait = VERIFY_FIRST
        while True:
            await asyncio.sleep(wait)
            try:
                status = await self._verify(key)
            except Exception:  # a verification must never take the pool down
                log.warning("upstream %s key %s: verification failed", self.upstream, key.alias, exc_info=True)
                status = None
            if status is not None and 200 <= status < 300:
                self._restore(key)
                return
            if status == 401 and not key.rejected:
                self._exile(key)
            wait = min(VERIFY_MAX, wait * 2)

    def _restore(self, key: UpstreamKey) -> None:
        was = "rejected" if key.rejected else "quarantined"
        key.quarantined = key.rejected = False
        log.info("upstream %s key %s verified: back in rotation (was %s)", self.upstream, key.alias, was)
        self._event(key, "restored")

    def _exile(self, key: UpstreamKey) -> None:
        key.rejected, key.quarantined = True, False
        log.error(
            "upstream %s rejected key %s again on verification (HTTP 401): out of rotation until a "
            "verification passes; the operator must replace it",
            self.upstream,
            key.alias,
        )
        self._event(key, "rejected")

    async def aclose(self) -> None:
        for task in list(self._verifying.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _event(self, key: UpstreamKey, event: str) -> None:
        if self._on_event is not None:
            self._on_event(self.upstream, key.alias, event)
