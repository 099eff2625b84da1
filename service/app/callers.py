"""Gateway keys from the settings: plain keys from `CHATGATE_API_KEYS`, named entries from the
config file's `[[auth.keys]]` and from a keys file, and their reload without a restart.

A named entry::

    [[keys]]                       # in the keys file; `[[auth.keys]]` in the config file
    name = "search-team"           # shows in logs, metrics, spans and the ledger
    hash = "sha256:9f86d0..."      # `chatgate keys create` / `chatgate keys hash`
    models = ["claude-sonnet-*"]   # optional: ids or shell patterns; default every model
    expires = 2027-01-31T00:00:00Z # optional: a TOML date-time or date (UTC)

The files are checked when read; at start-up a bad entry stops the gateway
(exit status 2), on a reload it is logged and the keys in force stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import tomllib
from dataclasses import replace
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from ..core.auth import HASH_PREFIX, CallerKey, KeyChecker, hash_key
from ..core.exchange import Caller
from ..core.limits import Quota
from .config import ConfigError, Settings

log = logging.getLogger("chatgate")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
QUOTA_KEYS = {"rpm": int, "tpm": int, "streams": int, "budget_usd": float, "budget_period": str}
ENTRY_KEYS = {"name", "hash", "key", "models", "expires", *QUOTA_KEYS}


def entry(table: Any, where: str) -> CallerKey:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table with name and hash")
    unknown = set(table) - ENTRY_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key `{sorted(unknown)[0]}` (known: {', '.join(sorted(ENTRY_KEYS))})")
    name = table.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigError(f"{where}.name: letters, digits, '.', '_' and '-', at most 64, is required")
    if "hash" in table:
        digest = table["hash"]
        if not isinstance(digest, str) or not DIGEST.match(digest.strip().lower()):
            raise ConfigError(f"{where}.hash: expected {HASH_PREFIX}<64 hex digits> (see `chatgate keys hash`)")
        digest = digest.strip().lower()
    elif isinstance(table.get("key"), str) and table["key"].strip():
        digest = hash_key(table["key"].strip())  # allowed, but a hash keeps the key out of the file
    else:
        raise ConfigError(f"{where}: `hash` is required (or `key`, the key itself)")
    models = table.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) and m.strip() for m in models):
        raise ConfigError(f"{where}.models: expected a list of model ids or patterns")
    caller = Caller(name, tuple(m.strip() for m in models), quota_of(table, where))
    return CallerKey(digest, caller, expiry(table.get("expires"), where))


def quota_of(table: dict[str, Any], where: str) -> Quota | None:
    """A key's own limits (`rpm`, `tpm`, `streams`, `budget_usd`, `budget_period`), over the defaults
    for every caller; None when the entry sets none. The defaults are filled in by ``with_defaults``."""
    given: dict[str, Any] = {}
    for key, kind in QUOTA_KEYS.items():
        if key not in table:
            continue
        value = table[key]
        if kind is str:
            if value not in ("day", "month"):
                raise ConfigError(f"{where}.{key}: expected day or month")
        elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{where}.{key}: expected a number, 0 or more")
        given["period" if key == "budget_period" else key] = kind(value)
    return Quota(**given) if given else None


def with_defaults(keys: list[CallerKey], settings: Settings) -> list[CallerKey]:
    """Each key's limits: its own where it sets them, the settings' defaults for the rest."""
    defaults = default_quota(settings)
    out = []
    for key in keys:
        own = key.caller.quota
        if own is None:
            out.append(key)
            continue
        merged = {f: getattr(own, f) or getattr(defaults, f) for f in ("rpm", "tpm", "streams", "budget_usd")}
        out.append(replace(key, caller=replace(key.caller, quota=Quota(**merged, period=own.period))))
    return out


def default_quota(settings: Settings) -> Quota:
    period: Any = settings.caller_budget_period
    return Quota(settings.caller_rpm, settings.caller_tpm, settings.caller_streams, settings.caller_budget_usd, period)


def expiry(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"{where}.expires: expected a date or date-time such as 2027-01-31") from None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    raise ConfigError(f"{where}.expires: expected a date or date-time such as 2027-01-31")


def entries(tables: Any, where: str) -> list[CallerKey]:
    if not isinstance(tables, list):
        raise ConfigError(f"{where}: expected a list of key tables ([[keys]])")
    return [entry(table, f"{where}[{i}]") for i, table in enumerate(tables)]


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


def load_keys(settings: Settings, *, reread: bool = False) -> list[CallerKey]:
    """Every configured key, checked; a name used twice is an error (it would merge two callers' numbers).

    ``reread``: read the config file's `[[auth.keys]]` again (a reload), unless the
    environment sets them (`CHATGATE_AUTH_KEYS` beats the file, as at start-up)."""
    keys = [CallerKey.plain(key) for key in settings.api_keys]
    if reread and settings.config_file and not os.environ.get("CHATGATE_AUTH_KEYS"):
        auth = read_toml(Path(settings.config_file)).get("auth", {})
        keys += entries(auth.get("keys", []) if isinstance(auth, dict) else [], f"{settings.config_file}: auth.keys")
    else:
        keys += entries(list(settings.auth_keys), "auth.keys")
    if settings.keys_file:
        data = read_toml(Path(settings.keys_file))
        unknown = set(data) - {"keys"}
        if unknown:
            raise ConfigError(f"{settings.keys_file}: unknown table `{sorted(unknown)[0]}` (expected [[keys]])")
        keys += entries(data.get("keys", []), f"{settings.keys_file}: keys")
    names: dict[str, str] = {}
    for key in keys:
        if names.setdefault(key.caller.name, key.digest) != key.digest:
            raise ConfigError(f"gateway key name `{key.caller.name}` is used by two different keys")
    return with_defaults(keys, settings)


class KeyReloader:
    """Reloads the keys when a watched file changes (checked every ``interval`` seconds) or on SIGHUP."""

    def __init__(self, settings: Settings, checker: KeyChecker, interval: float) -> None:
        self.settings, self.checker, self.interval = settings, checker, interval
        self.files = [Path(p) for p in (settings.config_file, settings.keys_file) if p]
        self._seen = self._stamps()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _stamps(self) -> list[tuple[float, int] | None]:
        stamps: list[tuple[float, int] | None] = []
        for path in self.files:
            try:
                stat = path.stat()
                stamps.append((stat.st_mtime, stat.st_size))
            except OSError:
                stamps.append(None)
        return stamps

    def reload(self, reason: str) -> bool:
        try:
            keys = load_keys(self.settings, reread=True)
        except ConfigError as exc:
            log.error("gateway keys not reloaded (%s): %s; the %d keys in force stay", reason, exc, len(self.checker))
            return False
        if not keys and self.checker.enabled:
            # An empty set would turn authentication off: a file caught mid-write or an emptied
            # Secret must never open the gateway. Fail closed: the keys in force stay.
            log.error(
                "gateway keys not reloaded (%s): the new key set is empty; the %d keys in force stay "
                "(authentication is never turned off by a reload: restart without keys to turn it off)",
                reason,
                len(self.checker),
            )
            return False
        self.checker.replace(keys)
        log.info("gateway keys reloaded (%s): %d keys", reason, len(keys))
        return True

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals off the main thread
            loop.add_signal_handler(signal.SIGHUP, self._wake.set)
        self._task = loop.create_task(self._run())

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval if self.files else None)
            reason = "SIGHUP" if self._wake.is_set() else "file changed"
            self._wake.clear()
            stamps = self._stamps()
            if reason == "SIGHUP" or stamps != self._seen:
                self._seen = stamps
                self.reload(reason)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
