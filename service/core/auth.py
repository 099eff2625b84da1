"""Gateway keys: who may call, under what name, for which models, until when. One check for every edge.

The gateway stores a key's SHA-256 digest, never the key. Keys are long random
strings (``chatgate keys create``), so a fast unsalted hash is enough: nobody
can guess one from its digest, and a lookup by digest takes the same time
whichever key is presented, so timing reveals nothing either. A presented key
is never echoed, logged or counted; only the key's name is.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from .errors import AuthenticationFailed
from .exchange import ANONYMOUS, Caller

HASH_PREFIX = "sha256:"
KEY_PREFIX = "cgk-"


def hash_key(key: str) -> str:
    return HASH_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A new gateway key: 256 random bits, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class CallerKey:
    """One configured key: the digest it is known by, and the caller it stands for."""

    digest: str  # "sha256:<hex>"
    caller: Caller
    expires: datetime | None = None  # aware, UTC

    @classmethod
    def plain(cls, key: str, name: str | None = None) -> CallerKey:
        """A key given in plain text (`CHATGATE_API_KEYS`): named after its digest unless named."""
        digest = hash_key(key)
        return cls(digest, Caller(name or "key-" + digest[len(HASH_PREFIX) : len(HASH_PREFIX) + 8]))


MISSING = "Missing API key. Send `Authorization: Bearer <key>` (or `x-api-key: <key>`) with a key of this gateway."
INVALID = "Invalid API key. Send `Authorization: Bearer <key>` (or `x-api-key: <key>`) with a key of this gateway."


class KeyChecker:
    """Accepts `Authorization: Bearer <key>` or `x-api-key: <key>` for any configured key; with no keys,
    authentication is off and every request is the anonymous caller.

    ``replace`` swaps the whole key set at once (a reload), so a request sees
    either the old set or the new one, never a mix.
    """

    def __init__(self, keys: Iterable[CallerKey] = ()) -> None:
        self._by_digest: dict[str, CallerKey] = {}
        self.replace(keys)

    def replace(self, keys: Iterable[CallerKey]) -> None:
        self._by_digest = {key.digest: key for key in keys}

    @property
    def enabled(self) -> bool:
        return bool(self._by_digest)

    def __len__(self) -> int:
        return len(self._by_digest)

    def check(self, authorization: str | None, api_key: str | None = None) -> Caller:
        by_digest = self._by_digest
        if not by_digest:
            return ANONYMOUS
        presented = bearer(authorization) or (api_key or "").strip()
        if not presented:
            raise AuthenticationFailed(MISSING)
        found = by_digest.get(HASH_PREFIX + hashlib.sha256(presented.encode()).hexdigest())
        if found is None:
            raise AuthenticationFailed(INVALID)
        if found.expires is not None and datetime.now(UTC) >= found.expires:
            raise AuthenticationFailed(
                f"This API key (`{found.caller.name}`) expired on {found.expires:%Y-%m-%d %H:%M} UTC."
            )
        return found.caller


def bearer(authorization: str | None) -> str:
    if not authorization:
        return ""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
