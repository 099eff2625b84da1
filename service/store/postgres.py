"""The store on PostgreSQL, shared by every replica. asyncpg, a small pool, idempotent inserts;
migrations run at open under an advisory lock, so replicas starting together apply each once."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]

from .base import (
    ATTRIBUTION_COLUMNS,
    CHAIN_SQL,
    COLUMN_GROUPS,
    COLUMNS,
    DELETE_SQL,
    GET_SQL,
    GROUPS,
    MAX_CHAIN,
    PURGE_SQL,
    PUT_SQL,
    RESPONSE_COLUMNS,
    RESPONSES_TABLE,
    StoredResponse,
    StoreUnavailable,
    UsageRecord,
    row_of,
    totals_rows,
    totals_sql,
)

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE usage_ledger (
        record_id TEXT PRIMARY KEY,
        ts TIMESTAMPTZ NOT NULL,
        request_id TEXT NOT NULL,
        caller TEXT NOT NULL,
        route TEXT NOT NULL,
        protocol TEXT NOT NULL,
        model_asked TEXT NOT NULL,
        model_served TEXT NOT NULL,
        input_tokens BIGINT NOT NULL,
        output_tokens BIGINT NOT NULL,
        cache_read_tokens BIGINT NOT NULL,
        cache_write_tokens BIGINT NOT NULL,
        reasoning_tokens BIGINT NOT NULL,
        cost_usd DOUBLE PRECISION NOT NULL,
        outcome TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        duration_ms DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX usage_ledger_ts ON usage_ledger (ts);
    """,
    RESPONSES_TABLE,
    ATTRIBUTION_COLUMNS,
)
GROUP_SQL = {**COLUMN_GROUPS, "day": "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD')"}
MIGRATION_LOCK = 0x63686174  # "chat": one advisory lock id for chatgate's migrations
FAILURES = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


def split_schema(url: str) -> tuple[str, str]:
    """The connection URL without chatgate's own `schema` parameter, and that schema (default public)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    schema = next((v for k, v in query if k == "schema"), "public")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


class PostgresStore:
    def __init__(self, url: str) -> None:
        self.url, self.schema = split_schema(url)
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        if self._pool is not None:  # idempotent: the pool reconnects by itself after an outage
            return
        try:
            pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=4, timeout=5, command_timeout=30,
                server_settings={"search_path": self.schema, "application_name": "chatgate"},
            )  # fmt: skip
            async with pool.acquire() as connection:
                await migrate(connection, self.schema)
        except FAILURES as exc:
            raise StoreUnavailable(f"the PostgreSQL ledger cannot be opened: {type(exc).__name__}") from None
        self._pool = pool

    async def write(self, records: list[UsageRecord]) -> None:
        if not records:
            return
        pool = self._ready()
        marks = ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))
        statement = (
            f"INSERT INTO usage_ledger ({', '.join(COLUMNS)}) VALUES ({marks}) ON CONFLICT (record_id) DO NOTHING"
        )
        rows = [row_of(r) for r in records]
        try:
            async with pool.acquire(timeout=5) as connection, connection.transaction():
                await connection.executemany(statement, rows)
        except FAILURES as exc:
            raise StoreUnavailable(f"the PostgreSQL ledger refused a write: {type(exc).__name__}") from None

    async def totals(self, by: tuple[str, ...], since: datetime | None = None) -> list[dict[str, Any]]:
        query = totals_sql([GROUP_SQL[g] for g in by if g in GROUPS], "$1" if since is not None else None)
        try:
            async with self._ready().acquire(timeout=5) as connection:
                rows = await connection.fetch(query, *([since] if since is not None else []))
        except FAILURES as exc:
            raise StoreUnavailable(f"the PostgreSQL ledger cannot be read: {type(exc).__name__}") from None
        return totals_rows(by, rows)

    async def put_response(self, stored: StoredResponse) -> None:
        await self._run("execute", PUT_SQL, *(getattr(stored, c) for c in RESPONSE_COLUMNS))

    async def get_response(self, response_id: str, caller: str, now: int) -> StoredResponse | None:
        rows = await self._run("fetch", GET_SQL, response_id, caller, now)
        return StoredResponse(*rows[0]) if rows else None

    async def response_chain(self, response_id: str, caller: str, now: int) -> list[StoredResponse]:
        rows = await self._run("fetch", CHAIN_SQL, response_id, caller, now, caller, now, MAX_CHAIN)
        return [StoredResponse(*row) for row in rows]

    async def delete_response(self, response_id: str, caller: str) -> bool:
        return bool(rowcount(await self._run("execute", DELETE_SQL, response_id, caller)))

    async def purge_responses(self, now: int) -> int:
        return rowcount(await self._run("execute", PURGE_SQL, now))

    async def _run(self, method: str, sql: str, *parameters: Any) -> Any:
        try:
            async with self._ready().acquire(timeout=5) as connection:
                return await getattr(connection, method)(numbered(sql), *parameters)
        except FAILURES as exc:
            raise StoreUnavailable(f"the PostgreSQL store failed: {type(exc).__name__}") from None

    def _ready(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreUnavailable("the PostgreSQL ledger is not open")
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


def numbered(sql: str) -> str:
    """`?` placeholders (the shared SQL's) as PostgreSQL's `$1, $2, ...`."""
    parts = sql.split("?")
    return "".join(p + (f"${i}" if i < len(parts) else "") for i, p in enumerate(parts, start=1))


def rowcount(status: str) -> int:
    """The row count of a command status such as `DELETE 3`."""
    return int(status.rsplit(" ", 1)[-1]) if status and status[-1].isdigit() else 0


async def migrate(connection: asyncpg.Connection, schema: str) -> None:
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ)"
        )
        done = {row[0] for row in await connection.fetch("SELECT version FROM schema_migrations")}
        for version, script in enumerate(MIGRATIONS, start=1):
            if version not in done:
                await connection.execute(script)
                await connection.execute("INSERT INTO schema_migrations VALUES ($1, now())", version)
