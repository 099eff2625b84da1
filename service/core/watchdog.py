"""Deadlines for tasks that cost a dict entry each: one sweeper per event loop cancels overdue tasks.

Measured on this project's machines: ``asyncio.timeout`` 10.6 us per use, a timer
handle 5.6 us with its bookkeeping; the gateway sets one or two per request, so
it registers the task here instead (about 0.3 us). Deadlines fire within
``resolution`` seconds of their time, which is ample for timeouts of seconds.
"""

from __future__ import annotations

import asyncio


class Watchdog:
    __slots__ = ("_fired", "_resolution", "_sweeper", "_watched")

    def __init__(self, resolution: float = 0.5) -> None:
        self._resolution = resolution
        self._watched: dict[asyncio.Task[object], float] = {}  # task -> loop time it must be done by
        self._fired: set[asyncio.Task[object]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def watch(self, seconds: float) -> asyncio.Task[object] | None:
        """Cancels the current task if it is still watched after ``seconds``; pair with ``release``."""
        task = asyncio.current_task()
        if task is None:
            return None
        loop = task.get_loop()
        self._watched[task] = loop.time() + seconds
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = loop.create_task(self._sweep())
        return task

    def release(self, task: asyncio.Task[object] | None) -> bool:
        """Stops watching; True (and the cancellation taken back) when the deadline caused a cancel."""
        if task is None:
            return False
        self._watched.pop(task, None)
        if task in self._fired:
            self._fired.discard(task)
            task.uncancel()
            return True
        return False

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while self._watched:
            await asyncio.sleep(self._resolution)
            now = loop.time()
            for task, deadline in list(self._watched.items()):
                if deadline <= now and not task.done():
                    del self._watched[task]
                    self._fired.add(task)
                    task.cancel()
