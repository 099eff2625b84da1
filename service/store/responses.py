"""Stored responses over a store (SQLite or PostgreSQL): the core's ``ResponseArchive``.

Each response is one row: its own input items and the response object, linked to the response it
continued. A continuation reads the whole chain back in one query. Rows expire after the retention
period; reads never see an expired row, and a background task deletes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from service.core.errors import InvalidRequest, NotFound, UpstreamUnavailable

from .base import ResponseStore, StoredResponse, StoreUnavailable

log = logging.getLogger("chatgate.store")
Json = dict[str, Any]


class StoredResponses:
    """The archive the Responses surface uses; ``start`` opens the store and begins purging."""

    def __init__(
        self, store: ResponseStore, retention: float, on_event: Callable[[str, str, int], None] | None = None
    ) -> None:
        self.store = store
        self.retention = retention
        self._on_event = on_event  # (store, event, count), for metrics
        self._opened = False
        self._purger: asyncio.Task[None] | None = None

    async def start(self) -> None:
        with contextlib.suppress(StoreUnavailable):  # not yet: every use tries again
            await self._open()
        self._purger = asyncio.create_task(self._purge_forever())

    async def stop(self) -> None:
        if self._purger is not None:
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
        await self.store.close()

    async def _open(self) -> ResponseStore:
        if not self._opened:
            await self.store.open()
            self._opened = True
        return self.store

    async def save(self, caller: str, previous_id: str | None, input_items: list[Json], response: Json) -> bool:
        now = int(time.time())
        row = StoredResponse(
            id=response["id"],
            caller=caller,
            previous_id=previous_id,
            created_at=now,
            expires_at=now + int(self.retention),
            input_items=orjson.dumps(input_items).decode(),
            response=orjson.dumps(response).decode(),
        )
        try:
            await (await self._open()).put_response(row)
        except StoreUnavailable as exc:
            log.warning("a response could not be stored (%s); it cannot be continued or read back", exc)
            self._event("write_failed")
            return False
        return True

    async def history(self, response_id: str, caller: str) -> list[Json]:
        chain = await self._read(lambda s: s.response_chain(response_id, caller, int(time.time())))
        if not chain:  # as OpenAI answers it: a 400 naming the field, not a 404 for the URL
            raise InvalidRequest(
                f"Previous response with id '{response_id}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        if chain[0].previous_id is not None:
            raise InvalidRequest(
                f"`previous_response_id` continues a conversation whose earlier response "
                f"`{chain[0].previous_id}` was deleted or has expired.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        items: list[Json] = []
        for row in chain:
            items += orjson.loads(row.input_items)
            items += orjson.loads(row.response)["output"]
        return items

    async def get(self, response_id: str, caller: str) -> Json:
        row = await self._row(response_id, caller)
        response: Json = orjson.loads(row.response)
        return response

    async def input_items(self, response_id: str, caller: str) -> list[Json]:
        items: list[Json] = orjson.loads((await self._row(response_id, caller)).input_items)
        return items

    async def delete(self, response_id: str, caller: str) -> None:
        if not await self._read(lambda s: s.delete_response(response_id, caller)):
            raise _not_found(response_id)

    async def _row(self, response_id: str, caller: str) -> StoredResponse:
        row: StoredResponse | None = await self._read(lambda s: s.get_response(response_id, caller, int(time.time())))
        if row is None:
            raise _not_found(response_id)
        return row

    async def _read(self, query: Callable[[ResponseStore], Any]) -> Any:
        try:
            return await query(await self._open())
        except StoreUnavailable as exc:
            log.warning("the response store cannot be read: %s", exc)
            self._event("unavailable")
            raise UpstreamUnavailable(
                "Stored responses cannot be read right now; try again shortly.",
                code="store_unavailable",
                upstream_status=503,
            ) from None

    def _event(self, event: str) -> None:
        if self._on_event is not None:
            self._on_event("responses", event, 1)

    async def _purge_forever(self) -> None:
        interval = max(1.0, min(3600.0, self.retention / 10))
        while True:
            with contextlib.suppress(StoreUnavailable):
                removed = await (await self._open()).purge_responses(int(time.time()))
                if removed:
                    log.info("removed %d expired stored responses", removed)
            await asyncio.sleep(interval)


def _not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{response_id}' not found.")
