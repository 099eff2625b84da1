"""The usage ledger: one record per finished request, written off the hot path in batches.

Serving never waits on the store. ``record`` appends to a buffer (no I/O); a writer task
sends batches every ``interval`` seconds or as soon as a batch is full. When the store is
down, records stay in the buffer up to ``buffer_limit``; beyond it the oldest go to a spill
file (JSON lines), which is written into the store once it answers again, at start or
later. A graceful stop flushes the buffer, and what still cannot be stored is spilled: a
record acknowledged to a client is in the store or in the spill file.

Nothing recorded is lost while the spill is replayed: the spill file is first renamed to
``<spill>.replaying`` (atomically), so records spilled meanwhile go to a new spill file, and
the renamed one is deleted only once the store has every record in it (writes are idempotent
by record id, so a replay cut short by a crash is simply done again at the next start). Each
worker process has its own spill file (the composition root names them), and the file I/O
runs in a thread, never on the event loop. ``lost`` counts only records that could not be
written anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson

from service.core.exchange import Exchange
from service.core.models import Prices

from .base import Store, StoreUnavailable, UsageRecord

log = logging.getLogger("chatgate.ledger")


class Ledger:
    def __init__(
        self,
        store: Store,
        spill_path: Path,
        *,
        batch: int = 500,
        interval: float = 0.5,
        buffer_limit: int = 100_000,
        on_event: Callable[[str, str, int], None] | None = None,
    ) -> None:
        self._on_event = on_event  # (store, event, count), for metrics
        self.store = store
        self.spill_path = spill_path
        self.batch = batch
        self.interval = interval
        self.buffer_limit = buffer_limit
        self._buffer: deque[UsageRecord] = deque()
        self._overflow: list[UsageRecord] = []  # past the buffer limit, waiting for the writer to spill them
        self._file_lock = threading.Lock()  # appends and the rename for a replay never interleave
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._unreplayed = False  # spilled since the last replay: the store is up, write the file in
        self.written = 0  # records stored by this process, for tests and metrics
        self.spilled = 0
        self.lost = 0

    # --- the hot path: no I/O ---------------------------------------------------------

    def record(self, record: UsageRecord) -> None:
        self._buffer.append(record)
        if len(self._buffer) > self.buffer_limit:  # the oldest go to the spill file, written by the writer task
            self._overflow.extend(self._buffer.popleft() for _ in range(len(self._buffer) - self.buffer_limit))
            self._wake.set()
        elif len(self._buffer) >= self.batch:
            self._wake.set()

    # --- the writer -------------------------------------------------------------------

    async def start(self) -> None:
        """Opens the store (a store that is down is retried by the writer) and starts writing."""
        try:
            await self.store.open()
            await self._replay_spill()
        except StoreUnavailable as exc:
            self._down(exc)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        backoff = self.interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), backoff)
            self._wake.clear()
            if self._overflow:
                overflow, self._overflow = self._overflow, []
                await self._spill(overflow)
            try:
                if self._failing:
                    await self.store.open()  # reconnect; idempotent when already open
                    await self._replay_spill()
                await self._flush()
                if self._unreplayed:  # spilled while the store was up (a burst past the buffer)
                    await self._replay_spill()
                backoff = self.interval
            except StoreUnavailable as exc:
                self._down(exc)
                backoff = min(backoff * 2, 30.0)

    async def _flush(self) -> None:
        while self._buffer:
            batch = [self._buffer[i] for i in range(min(self.batch, len(self._buffer)))]
            await self.store.write(batch)  # raises: the batch stays buffered
            for _ in batch:
                self._buffer.popleft()
            self.written += len(batch)
            if self._failing:
                self._failing = False
                log.info("the usage ledger's store answers again; %d records written", len(batch))

    def _event(self, event: str, count: int) -> None:
        if self._on_event is not None:
            self._on_event("ledger", event, count)

    def _down(self, exc: StoreUnavailable) -> None:
        self._event("write_failed", 1)
        if not self._failing:
            log.warning("usage ledger store unavailable (%s); buffering records (then the spill file)", exc)
        self._failing = True

    async def stop(self, grace: float = 10.0) -> None:
        """Stops the writer; writes what is buffered, and spills what the store will not take."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(StoreUnavailable, TimeoutError):
            await asyncio.wait_for(self._flush(), grace)
        left = [*self._overflow, *self._buffer]
        self._overflow, self._buffer = [], deque()
        if left:
            await self._spill(left)
        await self.store.close()

    # --- the spill file ---------------------------------------------------------------

    async def _spill(self, records: list[UsageRecord]) -> None:
        """Appends records to the spill file (in a thread); if even that fails, they are lost, loudly."""
        try:
            await asyncio.to_thread(self._append, records)
        except OSError as exc:
            self.lost += len(records)
            self._event("lost", len(records))
            log.error("usage ledger: %d records lost: the spill file %s cannot be written (%s)",
                      len(records), self.spill_path, exc)  # fmt: skip
            return
        self.spilled += len(records)
        self._unreplayed = True
        self._event("spilled", len(records))
        log.warning("usage ledger: %d records spilled to %s", len(records), self.spill_path)

    def _append(self, records: list[UsageRecord]) -> None:
        data = b"".join(orjson.dumps(r.to_json()) + b"\n" for r in records)
        with self._file_lock:
            self.spill_path.parent.mkdir(parents=True, exist_ok=True)
            with self.spill_path.open("ab") as spill:
                spill.write(data)
                spill.flush()
                os.fsync(spill.fileno())

    @property
    def replaying_path(self) -> Path:
        return self.spill_path.with_name(self.spill_path.name + ".replaying")

    def _claim(self) -> list[bytes]:
        """The records to replay: a replay cut short earlier, then the spill file, renamed first so
        that what is spilled from now on goes to a new file and is not deleted with this one."""
        with self._file_lock:
            if not self.replaying_path.exists() and self.spill_path.exists():
                os.replace(self.spill_path, self.replaying_path)
            if not self.replaying_path.exists():
                return []
            return self.replaying_path.read_bytes().splitlines()

    async def _replay_spill(self, rounds: int = 3) -> None:
        """Writes every spilled record into the store: a replay cut short earlier, then the spill file
        (claimed by a rename first), again while more was spilled meanwhile."""
        self._unreplayed = False  # what is spilled from here on sets it again
        for _ in range(rounds):
            lines = await asyncio.to_thread(self._claim)
            if not lines and not self.replaying_path.exists():
                return
            records = [UsageRecord.from_json(orjson.loads(line)) for line in lines if line.strip()]
            for start in range(0, len(records), self.batch):
                await self.store.write(records[start : start + self.batch])  # idempotent by record_id
            await asyncio.to_thread(self.replaying_path.unlink, missing_ok=True)
            if records:
                log.info("usage ledger: %d spilled records written to the store", len(records))
        self._unreplayed = True  # still more: the writer comes back to it


def new_record_id() -> str:
    """32 hex digits, the first 12 the time in milliseconds: ids made later sort later, so the stores'
    unique index on them grows at its end (random ids cost SQLite about three times as much per
    insert in a large ledger, measured). The 80 random bits keep ids of one millisecond apart;
    `random` is seeded from the OS in each worker process. One 128-bit number written as hex: a third
    cheaper than formatting the two parts."""
    return ((time.time_ns() // 1_000_000) << 80 | random.getrandbits(80)).to_bytes(16, "big").hex()


def record_of(exchange: Exchange, duration: float, prices: Prices | None) -> UsageRecord:
    """The ledger's record of a finished request: a refused one has zero tokens and zero cost."""
    usage = exchange.usage
    if usage is not None:
        details = usage.prompt_tokens_details
        input_tokens, output_tokens = usage.prompt_tokens, usage.completion_tokens
        cache_read, cache_write = details.cached_tokens, details.cache_creation_tokens
        reasoning = usage.completion_tokens_details.reasoning_tokens
        cost = prices.cost(usage) if prices is not None else 0.0
    else:
        input_tokens = output_tokens = cache_read = cache_write = reasoning = 0
        cost = 0.0
    # Positional, in the order of UsageRecord's fields (tests/store read each one back): passed by
    # keyword, the twenty names are matched to parameters one by one on every request.
    return UsageRecord(
        new_record_id(),
        datetime.now(UTC),
        exchange.request_id,
        exchange.caller.name,
        exchange.route,
        exchange.protocol,
        exchange.model_asked,
        exchange.model_served,
        input_tokens,
        output_tokens,
        cache_read,
        cache_write,
        reasoning,
        cost,
        exchange.outcome,
        exchange.attempts,
        round(duration * 1000, 3),
        exchange.session,
        exchange.agent,
        exchange.parent_agent,
    )
