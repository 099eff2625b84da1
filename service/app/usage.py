"""The usage ledger wired into the gateway, and read back (`chatgate usage`, `/admin/usage`).

Part of the composition root: it builds the store the settings name, hands each finished
request to the ledger through the observability hook, and prices it from the catalog in force.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import observability
from ..core import ChatService
from ..core.errors import AuthenticationFailed, InvalidRequest, PermissionDenied, UpstreamUnavailable
from ..core.exchange import Exchange
from ..store import GROUPS, Store, StoreUnavailable, open_store
from ..store.base import SUMS
from ..store.ledger import Ledger, record_of
from ..store.responses import StoredResponses
from .config import ConfigError, Settings


def store_of(settings: Settings) -> Store | None:
    """The ledger's store, or None when the ledger is off. Raises ConfigError for a bad URL."""
    if settings.ledger_url.strip().lower() in ("", "off", "none"):
        return None
    try:
        return open_store(settings.ledger_url)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def make_ledger(settings: Settings) -> Ledger | None:
    """The ledger the settings ask for, not yet started (None: off). Raises ConfigError for a bad URL."""
    store = store_of(settings)
    if store is None:
        return None
    return Ledger(store, Path(settings.ledger_spill), on_event=observability.store_event)


def make_archive(settings: Settings) -> StoredResponses | None:
    """Stored responses (`store: true`) in `responses.url`, else the ledger's store; None when off."""
    url = settings.responses_url.strip() or settings.ledger_url
    if url.strip().lower() in ("", "off", "none"):
        return None
    try:
        store = open_store(url)
    except ValueError as exc:
        raise ConfigError(str(exc).replace("ledger.url", "responses.url")) from None
    return StoredResponses(store, settings.responses_retention, on_event=observability.store_event)


async def start_ledger(ledger: Ledger, chat: ChatService) -> None:
    """Opens the store (or starts buffering while it is down) and feeds it every finished request."""
    await ledger.start()

    def finished(exchange: Exchange, duration: float) -> None:
        prices = exchange.prices  # the route that answered: a regional cloud endpoint costs more
        if prices is None:
            model = chat.catalog.find(exchange.model_served or exchange.model_asked)
            prices = model.route_prices if model is not None else None
        ledger.record(record_of(exchange, duration, prices))

    observability.set_ledger(finished)


def parse_groups(text: str) -> tuple[str, ...]:
    groups = tuple(g.strip() for g in text.split(",") if g.strip())
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise ValueError(f"unknown grouping {unknown[0]!r} (choose from {', '.join(GROUPS)})")
    return groups


def parse_since(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"since must be a date like 2026-11-01, not {text!r}") from None


async def totals(settings: Settings, by: tuple[str, ...], since: datetime | None) -> list[dict[str, Any]]:
    store = store_of(settings)
    if store is None:
        raise ConfigError("the usage ledger is off (ledger.url = off)")
    await store.open()
    try:
        return await store.totals(by, since)
    finally:
        await store.close()


def admin_allowed(settings: Settings, authorization: str | None) -> bool:
    """Whether the request carries the admin key (compared in constant time); no key configured: never."""
    if not settings.admin_key or not authorization or not authorization.startswith("Bearer "):
        return False
    return hmac.compare_digest(authorization[7:].strip().encode(), settings.admin_key.encode())


def table(rows: list[dict[str, Any]], by: tuple[str, ...]) -> str:
    """A plain text table of totals, for people."""
    columns = [*by, *SUMS]
    cells = [[format_cell(row[c]) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += [
        "  ".join(v.rjust(w) if v[:1].isdigit() else v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells
    ]
    return "\n".join(lines)


def format_cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def as_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2)


def usage_reader(settings: Settings, store: Store) -> Any:
    """What `/admin/usage` calls: checks the admin key, then reads totals from the ledger's store."""

    async def read(authorization: str | None, query: Mapping[str, str]) -> list[dict[str, Any]]:
        if not settings.admin_key:
            raise PermissionDenied("No admin key is configured (admin.key), so usage cannot be read over HTTP.")
        if not admin_allowed(settings, authorization):
            raise AuthenticationFailed("This endpoint needs the admin key: `Authorization: Bearer <admin key>`.")
        try:
            by = parse_groups(query.get("by", "caller,model,day"))
            since = parse_since(query.get("since"))
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="by" if "grouping" in str(exc) else "since") from None
        try:
            return await store.totals(by, since)
        except StoreUnavailable:
            raise UpstreamUnavailable("The usage ledger's store cannot be read right now.") from None

    return read
