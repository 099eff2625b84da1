"""Admission: how much work this process takes on, and whether it takes any at all.

A request past the in-flight limit is refused at once with ``Overloaded``
(503 / UNAVAILABLE and a retry delay), never queued until it times out; a
request that arrives while the process drains gets ``ShuttingDown``, so the
client retries on another replica.
"""

from __future__ import annotations

from .errors import GatewayError, Overloaded, ShuttingDown

OVERLOAD_RETRY_AFTER = 1.0  # seconds: long enough for in-flight work to move, short enough to matter


class Admission:
    __slots__ = ("closed", "in_flight", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit  # 0: no limit
        self.in_flight = 0
        self.closed = False

    def enter(self) -> None:
        """Takes a slot or raises; every ``enter`` that returns is paired with one ``leave``."""
        if self.closed:
            raise unserved(ShuttingDown("The gateway is shutting down; send the request again.", retry_after=0.0))
        if self.limit and self.in_flight >= self.limit:
            raise unserved(
                Overloaded(
                    f"The gateway is at its limit of {self.limit} requests in flight; try again shortly.",
                    retry_after=OVERLOAD_RETRY_AFTER,
                )
            )
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1


def unserved(error: GatewayError) -> GatewayError:
    """Marks a refusal that happened before any upstream call: safe for a proxy to retry elsewhere."""
    error.unserved = True
    return error
