"""A streamed answer as the edges see it, and the async-iterator helpers every layer shares.

Neutral ground: providers and edges import these without importing the use case.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

from .chunks import Batch
from .compat import Adjustment, CompatReport
from .errors import DeadlineExceeded, UpstreamOverloaded, UpstreamTimeout
from .provider import UpstreamInfo

B = TypeVar("B")  # what one upstream read becomes: chunks, or the upstream's own bytes


def own_time_ms(started: float, upstream_seconds: float) -> float:
    """The gateway's own time since ``started`` (monotonic): total minus time waiting on the upstream."""
    return max(0.0, (time.monotonic() - started - upstream_seconds) * 1000)


class UpstreamStream(Generic[B]):
    """A streamed answer. Iterate it for batches; ``aclose`` releases the upstream.

    A batch is what one upstream read produced, in order: nothing waits to fill a
    batch, but an edge can write what is already there in one go. The first
    ``__anext__`` starts the upstream call, so errors before generation surface
    there, before an edge has sent anything.
    """

    def __init__(
        self,
        batches: AsyncIterator[B],
        report: CompatReport,
        upstream: UpstreamInfo,
        *,
        expires: float | None = None,
        deadline: float | None = None,
        on_close: Callable[[], None] | None = None,
        overload_retry_after: float | None = None,
    ) -> None:
        self._deadline = deadline
        self._overload_retry_after = overload_retry_after
        self._batches = batches
        self._report = report
        self.upstream = upstream
        self.started = time.monotonic()
        self._expires = expires
        self._on_close = on_close

    @property
    def adjustments(self) -> list[Adjustment]:
        return self._report.items

    def overhead_ms(self) -> float:
        """The gateway's own time so far: total minus time spent waiting on the upstream."""
        return own_time_ms(self.started, self.upstream.seconds)

    def __aiter__(self) -> UpstreamStream[B]:
        return self

    async def __anext__(self) -> B:
        if self._expires is not None:  # between batches; silences are bounded by the read timeout
            now = time.monotonic()
            if self._deadline is not None and now > self._deadline:
                raise DeadlineExceeded("The request's deadline passed before the reply finished.")
            if now > self._expires:
                raise UpstreamTimeout("The reply did not finish within the gateway's request timeout.")
        try:
            return await anext(self._batches)
        except UpstreamOverloaded as error:  # mid-stream: still tell the client when to come back
            if error.retry_after is None:
                error.retry_after = self._overload_retry_after
            raise

    async def aclose(self) -> None:
        try:
            await close(self._batches)
        finally:
            if self._on_close is not None:
                on_close, self._on_close = self._on_close, None
                on_close()


class ChatStream(UpstreamStream[Batch]):
    """A streamed completion: batches of chunks."""


class RelayStream(UpstreamStream[bytes]):
    """A native stream: the upstream's bytes, as read."""


async def first_of(batches: AsyncIterator[B]) -> tuple[AsyncIterator[B], B | None]:
    """Starts a stream and waits for its first batch: the last moment a retry is invisible."""
    try:
        return batches, await anext(batches, None)
    except BaseException:
        await close(batches)
        raise


async def close(batches: AsyncIterator[Any]) -> None:
    """Closes an async iterator that can be closed (an async generator releases its upstream)."""
    aclose = getattr(batches, "aclose", None)
    if aclose is not None:
        await aclose()
