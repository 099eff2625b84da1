"""Keep-alive messages for server streams that have been silent (a model thinking, an upstream
stalling), so proxies that time out idle *streams* do not cut them.

HTTP/2 pings keep a connection alive, not a stream: Envoy's `stream_idle_timeout` (and Istio's,
300 s by default) counts per stream and only a DATA frame resets it. So a stream silent for
``interval`` seconds gets one empty ``ChatCompletionChunk`` (no choices, no usage: the proto says
clients skip it), then another each ``interval`` while the silence lasts.

One ticker task per process serves every open stream; a stream only joins and leaves a set and
counts its writes, so a streamed chunk costs one attribute increment. The ticker, four times per
interval, looks at each stream's count and stamps when it last changed. A keep-alive is written
from the ticker's side; the stream's own next write waits for it (``Beat.ping``), as a call may
have one message in flight at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

Write = Callable[[Any], Awaitable[None]]


class Beat:
    """One open stream, as the heartbeat sees it."""

    __slots__ = ("keep_alive", "last", "ping", "seen", "write", "writes")

    def __init__(self, write: Write, keep_alive: Any, now: float) -> None:
        self.write, self.keep_alive = write, keep_alive
        self.writes = 0  # counted by the stream's own writes
        self.seen, self.last = 0, now  # the count when the ticker last looked, and when it last changed
        self.ping: asyncio.Task[None] | None = None  # a keep-alive being written


class StreamHeartbeat:
    __slots__ = ("_interval", "_open", "_ticker")

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._open: set[Beat] = set()
        self._ticker: asyncio.Task[None] | None = None

    def join(self, write: Write, keep_alive: Any) -> Beat:
        loop = asyncio.get_running_loop()
        beat = Beat(write, keep_alive, loop.time())
        self._open.add(beat)
        if self._ticker is None or self._ticker.done():
            self._ticker = loop.create_task(self._tick())
        return beat

    def leave(self, beat: Beat) -> None:
        self._open.discard(beat)
        if beat.ping is not None:
            beat.ping.cancel()

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while self._open:
            await asyncio.sleep(self._interval / 4)
            now = loop.time()
            for beat in list(self._open):
                if beat.writes != beat.seen:
                    beat.seen, beat.last = beat.writes, now
                elif now - beat.last >= self._interval and beat.ping is None:
                    beat.last = now
                    beat.ping = loop.create_task(self._ping(beat))

    @staticmethod
    async def _ping(beat: Beat) -> None:
        try:
            with contextlib.suppress(Exception):  # the client may be gone; the call ends on its own
                await beat.write(beat.keep_alive)
        finally:
            beat.ping = None
