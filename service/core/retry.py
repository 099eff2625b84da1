"""Retrying an upstream call before the first byte: which failures, how long to wait, when to stop.

Only the use case retries, and only before anything reached the client; lower
layers (HTTP clients, providers) never retry on their own, so the attempts a
request makes are exactly the ones counted here.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from . import errors

# Failures that a new attempt (maybe with another key, after a pause) can get past.
TRANSIENT: tuple[type[errors.GatewayError], ...] = (
    errors.UpstreamUnavailable,
    errors.UpstreamError,
    errors.UpstreamOverloaded,
    errors.UpstreamTimeout,
    errors.IncompleteStream,  # before the first byte: the connection broke before any event
)
# Failures after which another model of the fallback chain is worth a try: the
# upstream or this model is in trouble, not the request.
FALL_BACK_ON: tuple[type[errors.GatewayError], ...] = (*TRANSIENT, errors.CircuitOpen, errors.RateLimited)


def is_transient(error: errors.GatewayError) -> bool:
    if error.transient is not None:  # the provider knows better (another key remains, say)
        return error.transient
    if isinstance(error, errors.RateLimited):
        return not isinstance(error, errors.QuotaExceeded) and error.retry_after is not None
    return isinstance(error, TRANSIENT)


def falls_back(error: errors.GatewayError) -> bool:
    return isinstance(error, FALL_BACK_ON) and not isinstance(error, errors.QuotaExceeded)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int  # per model, the first one included
    base_delay: float  # seconds; full-jitter exponential backoff from here
    max_delay: float
    max_retry_after: float  # the longest upstream `retry-after` the gateway waits out itself

    def delay(self, attempt: int, error: errors.GatewayError, deadline: float | None) -> float | None:
        """Seconds to wait before the next attempt, or None when ``error`` goes to the client now."""
        if attempt >= self.attempts or not is_transient(error):
            return None
        # A provider that marks the error transient has somewhere else to go now (another key):
        # the upstream's delay was for the key that failed, not for the retry.
        asked = 0.0 if error.transient else (error.retry_after or 0.0)
        if asked > self.max_retry_after:
            return None
        wait = max(asked, random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1))))
        if deadline is not None and time.monotonic() + wait >= deadline:
            return None  # the client would be gone before the retry answers
        return wait

    def computed_retry_after(self, attempt: int) -> float:
        """A retry delay to tell the client when the upstream gave none (an overload without `retry-after`)."""
        return float(min(self.max_delay, self.base_delay * 2**attempt))
