"""One battery for every store: SQLite always, PostgreSQL when 127.0.0.1:5432 answers (else skipped, saying so)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.store import Store, StoreUnavailable, UsageRecord, open_store
from service.store.base import ResponseStore, StoredResponse
from tests.support import missing_service

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_answers() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=0.5).close()
    except OSError:
        return False
    return True


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "postgresql":
        if not postgres_answers():
            missing_service("PostgreSQL is not answering on 127.0.0.1:5432: the PostgreSQL store was not tested")
        schema = f"t_{uuid.uuid4().hex[:12]}"  # a schema of its own per test, dropped after it
        yield open_store(f"{POSTGRES}?schema={schema}")
        asyncio.run(drop_schema(schema))
    else:
        yield open_store(f"sqlite:{tmp_path / 'ledger.sqlite3'}")


async def drop_schema(schema: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    connection = await asyncpg.connect(POSTGRES)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


def record(caller: str = "team-a", model: str = "claude-haiku-4-5", day: int = 29, **values: object) -> UsageRecord:
    fields: dict[str, object] = {
        "record_id": uuid.uuid4().hex,
        "ts": datetime(2026, 11, day, 12, 0, tzinfo=UTC),
        "request_id": "req_1",
        "caller": caller,
        "route": "/v1/chat/completions",
        "protocol": "http",
        "model_asked": model,
        "model_served": model,
        "input_tokens": 100,
        "output_tokens": 10,
        "cache_read_tokens": 50,
        "cache_write_tokens": 20,
        "reasoning_tokens": 3,
        "cost_usd": 0.25,
        "outcome": "ok",
        "attempts": 1,
        "duration_ms": 12.5,
        **values,
    }
    return UsageRecord(**fields)  # type: ignore[arg-type]


def run(coroutine: object) -> object:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def test_totals_group_by_caller_model_and_day(store: Store) -> None:
    async def scenario() -> list[dict[str, object]]:
        await store.open()
        await store.write(
            [record(), record(), record(caller="team-b", day=28, outcome="rate_limit_exceeded", input_tokens=0)]
        )
        try:
            return await store.totals(("caller", "model", "day"))
        finally:
            await store.close()

    rows = run(scenario())
    assert rows == [
        {"caller": "team-a", "model": "claude-haiku-4-5", "day": "2026-11-29", "requests": 2, "errors": 0,
         "input_tokens": 200, "output_tokens": 20, "cache_read_tokens": 100, "cache_write_tokens": 40,
         "reasoning_tokens": 6, "cost_usd": 0.5},
        {"caller": "team-b", "model": "claude-haiku-4-5", "day": "2026-11-28", "requests": 1, "errors": 1,
         "input_tokens": 0, "output_tokens": 10, "cache_read_tokens": 50, "cache_write_tokens": 20,
         "reasoning_tokens": 3, "cost_usd": 0.25},
    ]  # fmt: skip


def test_writes_are_idempotent_and_migrations_run_once(store: Store) -> None:
    same = record()

    async def scenario() -> list[dict[str, object]]:
        await store.open()
        await store.write([same])
        await store.write([same, same])  # a retried batch, a replayed spill
        await store.close()
        await store.open()  # a second start: the schema is there already
        try:
            return await store.totals(())
        finally:
            await store.close()

    [total] = run(scenario())  # type: ignore[misc]
    assert total["requests"] == 1


def test_since_and_no_records(store: Store) -> None:
    async def scenario() -> tuple[object, object]:
        await store.open()
        empty = await store.totals(("caller",))
        await store.write([record(day=27), record(day=29)])
        recent = await store.totals(("day",), since=datetime(2026, 11, 28, tzinfo=UTC))
        await store.close()
        return empty, recent

    empty, recent = run(scenario())  # type: ignore[misc]
    assert empty == [] and [r["day"] for r in recent] == ["2026-11-29"]  # type: ignore[attr-defined]


def test_an_unreachable_store_says_so() -> None:
    with pytest.raises(StoreUnavailable):
        run(open_store("postgresql://postgres@127.0.0.1:1/test").open())
    with pytest.raises(StoreUnavailable):
        run(open_store("sqlite:/proc/forbidden/ledger.sqlite3").open())
    with pytest.raises(ValueError, match=r"ledger\.url"):
        open_store("mysql://x")


# --- stored responses (the Responses API's `store: true`), same battery for both stores ---------


def stored(
    response_id: str, previous: str | None = None, caller: str = "team-a", expires: int = 2**40
) -> StoredResponse:
    return StoredResponse(
        id=response_id,
        caller=caller,
        previous_id=previous,
        created_at=1,
        expires_at=expires,
        input_items=f'[{{"id": "in-{response_id}"}}]',
        response=f'{{"id": "{response_id}", "output": [{{"id": "out-{response_id}"}}]}}',
    )


def test_responses_chain_per_caller_and_expire(store: Store) -> None:
    archive: ResponseStore = store  # type: ignore[assignment]

    async def scenario() -> dict[str, object]:
        await store.open()
        for row in (
            stored("r1"),
            stored("r2", "r1"),
            stored("r3", "r2"),
            stored("old", expires=5),
            stored("x", caller="b"),
        ):
            await archive.put_response(row)
        seen = {
            "chain": [r.id for r in await archive.response_chain("r3", "team-a", now=10)],
            "other_caller": await archive.response_chain("r3", "b", now=10),
            "get": await archive.get_response("r2", "team-a", now=10),
            "get_other": await archive.get_response("x", "team-a", now=10),
            "expired": await archive.get_response("old", "team-a", now=10),
            "purged": await archive.purge_responses(now=10),
            "deleted": await archive.delete_response("r2", "team-a"),
            "deleted_again": await archive.delete_response("r2", "team-a"),
            "broken": [(r.id, r.previous_id) for r in await archive.response_chain("r3", "team-a", now=10)],
        }
        await store.close()
        return seen

    seen = run(scenario())
    assert seen["chain"] == ["r1", "r2", "r3"]  # oldest first
    assert seen["other_caller"] == [] and seen["get_other"] is None and seen["expired"] is None
    assert seen["get"] == stored("r2", "r1")
    assert seen["purged"] == 1 and seen["deleted"] is True and seen["deleted_again"] is False
    assert seen["broken"] == [("r3", "r2")]  # the chain now starts at a response whose parent is gone
