"""Gateway API keys: one check shared by both edges."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from .errors import AuthenticationFailed


class KeyChecker:
    """Accepts ``Bearer <key>`` for any configured key; with no keys, auth is off.

    Every configured key is compared, in constant time, so timing reveals
    neither which key nor how much of one matched. Presented keys are never
    echoed in errors.
    """

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = tuple(k.encode() for k in keys if k)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def check(self, authorization: str | None) -> None:
        if not self._keys:
            return
        scheme, _, token = (authorization or "").partition(" ")
        presented = token.strip().encode()
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(presented, key)
        if scheme.lower() != "bearer" or not matched:
            raise AuthenticationFailed(
                "Missing or invalid API key. Send `Authorization: Bearer <key>` with a key configured on this gateway."
            )
