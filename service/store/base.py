"""The storage interface and the usage record, shared by every store implementation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any, Protocol

# What usage can be grouped by, and how each store spells it is its own business.
GROUPS = ("caller", "model", "day")
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


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One finished request, as the ledger keeps it. ``record_id`` makes a write idempotent (a batch
    written twice after a retry or a spill replay is stored once)."""

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


class Store(Protocol):
    """A repository: open (connect and apply migrations), write usage records, read totals back."""

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
