"""Several keys per upstream: which one a call uses, which ones rest, which ones are out, and a breaker each.

- Keys are taken round-robin, skipping any that rests, is out of rotation, or
  whose breaker is open.
- A key answered with 429 rests for the upstream's `retry-after` (or a second):
  other keys are preferred meanwhile, and when every key rests the one whose
  rest ends first is used (least recently limited). Anthropic's limits are per
  model, so a rested key is never refused outright.
- A key rejected with 401 (invalid or revoked) leaves the rotation for good and
  is reported (an error log line naming its alias, and the ``on_event`` hook for
  metrics). A 403 is reported the same way but the key stays: Anthropic's
  `permission_error` concerns a resource (often one model), so removing the key
  would turn one model's denial into an outage of all of them.
- Each key has a circuit breaker: after ``failures`` consecutive upstream
  failures it opens for ``cooldown`` seconds; then one probe call may pass
  (half-open), and its success closes the breaker again.

Keys appear only as aliases (``anthropic#1``) in logs, errors and metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from service.core import errors

log = logging.getLogger("chatgate.upstream")

DEFAULT_REST = 1.0  # seconds a 429 without `retry-after` rests a key
KeyEvent = Callable[[str, str, str], None]  # upstream, key alias, event


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    failures: int  # consecutive failures that open the breaker
    cooldown: float  # seconds it stays open before a probe


@dataclass(slots=True)
class UpstreamKey:
    alias: str
    value: str = field(repr=False)
    rest_until: float = 0.0
    rejected: bool = False
    failures: int = 0
    open_until: float = 0.0  # breaker open while now < open_until
    probing: bool = False  # half-open: one probe call is out

    def breaker(self, now: float) -> str:
        if self.open_until == 0.0:
            return "closed"
        return "open" if now < self.open_until or self.probing else "half-open"


class KeyPool:
    def __init__(
        self,
        upstream: str,
        keys: Sequence[str],
        breaker: BreakerSettings,
        *,
        on_event: KeyEvent | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not keys:
            raise ValueError(f"upstream {upstream} has no key")
        self.upstream = upstream
        self.keys = [UpstreamKey(f"{upstream}#{i + 1}", key) for i, key in enumerate(keys)]
        self.settings = breaker
        self._next = 0
        self._on_event = on_event
        self._clock = clock

    @property
    def ready(self) -> bool:
        """False while every key is out of rotation or behind an open breaker (resting keys still count)."""
        now = self._clock()
        return any(not k.rejected and k.breaker(now) != "open" for k in self.keys)

    def acquire(self) -> UpstreamKey:
        """The key for the next call, or the error that says why there is none."""
        count = len(self.keys)
        key = self.keys[self._next]
        if not key.rejected and key.open_until == 0.0 and key.rest_until == 0.0:  # the usual case: no clock
            self._next = (self._next + 1) % count
            return key
        now = self._clock()
        resting: UpstreamKey | None = None
        for step in range(count):
            key = self.keys[(self._next + step) % count]
            if key.rejected:
                continue
            state = key.breaker(now)
            if state == "open":
                continue
            if key.rest_until > now:
                if resting is None or key.rest_until < resting.rest_until:
                    resting = key
                continue
            self._next = (self._next + step + 1) % count
            return self._taken(key, state)
        if resting is not None:
            return self._taken(resting, resting.breaker(now))
        raise self._none_usable(now)

    @staticmethod
    def _taken(key: UpstreamKey, state: str) -> UpstreamKey:
        if state == "half-open":
            key.probing = True  # exactly one probe; the others keep failing fast
        return key

    def _none_usable(self, now: float) -> errors.GatewayError:
        live = [k for k in self.keys if not k.rejected]
        if not live:
            return errors.UpstreamAuthFailed(
                "The upstream rejected every key the gateway has; the operator must fix the gateway's API keys."
            )
        return errors.CircuitOpen(
            "The upstream failed repeatedly; calls fail fast until it recovers.",
            retry_after=max(0.0, min(k.open_until - now for k in live)),
        )

    def usable(self) -> bool:
        """Whether another call could get a key right now that is neither resting, out, nor behind an open breaker."""
        now = self._clock()
        return any(not k.rejected and k.rest_until <= now and k.breaker(now) != "open" for k in self.keys)

    def succeeded(self, key: UpstreamKey) -> None:
        if key.open_until:
            log.info("upstream %s key %s: breaker closed again", self.upstream, key.alias)
            self._event(key, "breaker_closed")
        key.failures, key.open_until, key.probing = 0, 0.0, False
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
        if not key.rejected:
            key.rejected = True
            log.error(
                "upstream %s rejected key %s (HTTP %s): taken out of rotation; the operator must replace it",
                self.upstream,
                key.alias,
                status,
            )
            self._event(key, "rejected")

    def failed(self, key: UpstreamKey) -> None:
        """An upstream fault (5xx, overload, connection failure) counted against the key's breaker."""
        key.failures += 1
        if key.probing or key.failures >= self.settings.failures:
            key.open_until = self._clock() + self.settings.cooldown
            key.probing = False
            log.warning(
                "upstream %s key %s: breaker open for %.0f s after %d failures",
                self.upstream,
                key.alias,
                self.settings.cooldown,
                key.failures,
            )
            self._event(key, "breaker_open")

    def released(self, key: UpstreamKey) -> None:
        """The call ended without a verdict on the upstream (the client left): a probe may go again."""
        key.probing = False

    def _event(self, key: UpstreamKey, event: str) -> None:
        if self._on_event is not None:
            self._on_event(self.upstream, key.alias, event)
