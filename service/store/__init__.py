"""Where the gateway keeps what must outlive a process: the usage ledger (and, next, stored responses).

A small repository interface (``base.Store``) with two implementations chosen by URL: SQLite on one
machine (the default, a file) and PostgreSQL when replicas share one store. Both pass one test battery.
"""

from __future__ import annotations

from .base import GROUPS, Store, StoreUnavailable, UsageRecord


def open_store(url: str) -> Store:
    """The store a `ledger.url` names: `sqlite:///path` (or a bare path) or `postgresql://...`.

    Raises ValueError for a URL of no known kind. Nothing is connected until ``Store.open``.
    """
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore  # asyncpg is imported only when PostgreSQL is configured

        return PostgresStore(url)
    from .sqlite import SqliteStore

    if url.startswith("sqlite:"):
        return SqliteStore(url.removeprefix("sqlite:").removeprefix("//"))  # sqlite:///abs or sqlite:rel
    if "://" in url:
        raise ValueError(
            f"ledger.url must be sqlite:///PATH or postgresql://..., not {url.split('://', maxsplit=1)[0]}://..."
        )
    return SqliteStore(url)


__all__ = ["GROUPS", "Store", "StoreUnavailable", "UsageRecord", "open_store"]
