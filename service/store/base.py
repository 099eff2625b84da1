"""The storage interface and the usage record, shared by every store implementation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from operator import attrgetter
from typing import Any, Protocol

# What usage can be grouped by, and how each store spells it is its own business.
GROUPS = ("caller", "model", "day", "session", "agent")
# The groups that are a column as they are; each store spells `day` its own way.
COLUMN_GROUPS = {"caller": "caller", "model": "model_served", "session": "session", "agent": "agent"}
SUMS = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
)


class StoreUnavailable(Exception):
    """The store cannot be reached or refused the write; the caller keeps the data and tries again."""


@dataclass(slots=True)
class UsageRecord:
    """One finished request, as the ledger keeps it. ``record_id`` makes a write idempotent (a batch
    written twice after a retry or a spill replay is stored once).

    Not frozen, though nothing changes a record once made: a frozen dataclass sets each of its
    twenty fields through ``object.__setattr__``, which made building one (on every request) cost
    more than storing it."""

    record_id: str
    ts: datetime  # UTC, when the request ended
    request_id: str
    caller: str
    route: str  # the surface: /v1/chat/completions, /v1/messages, CreateChatCompletion...
    protocol: str  # http or grpc
    model_asked: str
    model_served: str
    input_tokens: int  # all input, cache reads and writes included
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: float
    outcome: str  # ok, or the error code
    attempts: int
    duration_ms: float
    # Who inside the caller asked (Claude Code's session and agent headers); "" when not said.
    session: str = ""
    agent: str = ""
    parent_agent: str = ""

    def to_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["ts"] = self.ts.isoformat()
        return values

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> UsageRecord:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in values.items() if k in known}
        values["ts"] = datetime.fromisoformat(values["ts"])
        return cls(**values)


COLUMNS = tuple(f.name for f in fields(UsageRecord))
# A record's values in COLUMNS order, read in C (a getattr per column in Python cost more than the insert).
row_of = attrgetter(*COLUMNS)
TS_COLUMN = COLUMNS.index("ts")


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response kept for `previous_response_id` and `GET /v1/responses/{id}` (OpenAI's `store: true`).

    The JSON columns are kept as the client saw them: ``response`` the response object, ``input_items``
    this request's own input items. Times are Unix seconds."""

    id: str
    caller: str
    previous_id: str | None
    created_at: int
    expires_at: int
    input_items: str
    response: str


RESPONSE_COLUMNS = tuple(f.name for f in fields(StoredResponse))
# The response and its ancestors through `previous_id`, oldest first, in one query (a recursive CTE
# both SQLite and PostgreSQL run): id, caller, now, caller, now, depth limit.
CHAIN_SQL = f"""
WITH RECURSIVE chain ({", ".join(RESPONSE_COLUMNS)}, depth) AS (
    SELECT {", ".join(RESPONSE_COLUMNS)}, 0 FROM stored_responses WHERE id = ? AND caller = ? AND expires_at > ?
    UNION ALL
    SELECT {", ".join("r." + c for c in RESPONSE_COLUMNS)}, chain.depth + 1
    FROM stored_responses r JOIN chain ON r.id = chain.previous_id
    WHERE r.caller = ? AND r.expires_at > ? AND chain.depth < ?
)
SELECT {", ".join(RESPONSE_COLUMNS)} FROM chain ORDER BY depth DESC
"""
GET_SQL = f"SELECT {', '.join(RESPONSE_COLUMNS)} FROM stored_responses WHERE id = ? AND caller = ? AND expires_at > ?"
PUT_SQL = (
    f"INSERT INTO stored_responses ({', '.join(RESPONSE_COLUMNS)}) VALUES ({', '.join('?' for _ in RESPONSE_COLUMNS)})"
)
DELETE_SQL = "DELETE FROM stored_responses WHERE id = ? AND caller = ?"
PURGE_SQL = "DELETE FROM stored_responses WHERE expires_at <= ?"
RESPONSES_TABLE = """
    CREATE TABLE stored_responses (
        id TEXT PRIMARY KEY,
        caller TEXT NOT NULL,
        previous_id TEXT,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        input_items TEXT NOT NULL,
        response TEXT NOT NULL
    );
    CREATE INDEX stored_responses_expires ON stored_responses (expires_at);
"""
# Migration 3: who inside a caller asked (Claude Code's session and agent headers).
ATTRIBUTION_COLUMNS = """
    ALTER TABLE usage_ledger ADD COLUMN session TEXT NOT NULL DEFAULT '';
    ALTER TABLE usage_ledger ADD COLUMN agent TEXT NOT NULL DEFAULT '';
    ALTER TABLE usage_ledger ADD COLUMN parent_agent TEXT NOT NULL DEFAULT '';
"""
MAX_CHAIN = 10_000  # links followed from one response (a guard; ids are random, so chains never loop)


class ResponseStore(Protocol):
    """Stored responses, visible only to the caller that created them and only until they expire."""

    async def open(self) -> None: ...

    async def put_response(self, stored: StoredResponse) -> None:
        """Raises ``StoreUnavailable``."""
        ...

    async def get_response(self, response_id: str, caller: str, now: int) -> StoredResponse | None: ...

    async def response_chain(self, response_id: str, caller: str, now: int) -> list[StoredResponse]:
        """The response and every response it continues, oldest first; empty when it is not found.
        A chain with a link gone (deleted or expired) starts at a response whose ``previous_id`` is set."""
        ...

    async def delete_response(self, response_id: str, caller: str) -> bool: ...

    async def purge_responses(self, now: int) -> int:
        """Deletes expired responses; how many."""
        ...

    async def close(self) -> None: ...


class Store(ResponseStore, Protocol):
    """A repository: open (connect and apply migrations), write usage records, read totals back, and keep
    stored responses (``ResponseStore``)."""

    async def open(self) -> None:
        """Connects and applies pending schema migrations. Raises ``StoreUnavailable``."""
        ...

    async def write(self, records: list[UsageRecord]) -> None:
        """Stores the records (ones already stored are skipped). Raises ``StoreUnavailable``."""
        ...

    async def totals(self, by: tuple[str, ...], since: datetime | None = None) -> list[dict[str, Any]]:
        """Sums of ``SUMS`` per group of ``by`` (a subset of ``GROUPS``), ordered by the groups."""
        ...

    async def close(self) -> None: ...


def totals_sql(groups: list[str], since: str | None) -> str:
    """The totals query both stores run: ``groups`` are their SQL for the grouping columns, ``since``
    their placeholder for the lower time bound (None: no bound)."""
    sums = ["COUNT(*)", "SUM(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END)", *(f"SUM({c})" for c in SUMS[2:])]
    query = f"SELECT {', '.join([*groups, *sums])} FROM usage_ledger"
    if since is not None:
        query += f" WHERE ts >= {since}"
    if groups:
        query += f" GROUP BY {', '.join(groups)} ORDER BY {', '.join(groups)}"
    return query


def totals_rows(by: tuple[str, ...], rows: Any) -> list[dict[str, Any]]:
    """Rows of ``totals_sql`` as dicts: counts as ints, cost as a float (the empty total is no row)."""
    names = [*by, *SUMS]
    return [
        {n: float(v) if n == "cost_usd" else int(v) if n in SUMS else v for n, v in zip(names, row, strict=True)}
        for row in rows
        if row[len(by)]
    ]
