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
