"""OAuth access tokens for Vertex AI, through google-auth (Google's own credential library).

Credentials come from a service-account key file when one is configured, else from Application
Default Credentials, as Google's SDKs read them: `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's ADC
file, or the metadata server (GKE workload identity, Compute Engine). A token is renewed before
it expires (``margin`` seconds ahead), one renewal at a time, off the event loop: google-auth's
renewal is a blocking HTTP call. A token the upstream refuses anyway (revoked, clock skew) is
dropped, and the next request gets a new one.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import google.auth
import urllib3
from google.auth import exceptions as google_errors
from google.auth.credentials import Credentials
from google.auth.transport.urllib3 import Request
from google.oauth2 import service_account

from service.core.errors import UpstreamAuthFailed

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
# Renewed when at most this much of a token's life is left (google-auth renews at 3 min 45 s).
DEFAULT_MARGIN = 300.0
# A token refused within this many seconds of replacing a refused one: the credential is refused.
REFUSAL_WINDOW = 30.0


class CredentialsMissing(Exception):
    """No Google credentials where they were looked for (a configuration error)."""


def load_credentials(credentials_file: str = "", info: dict[str, Any] | None = None) -> tuple[Credentials, str]:
    """(credentials, the project they name, if any) from a key file, key info, or ADC."""
    try:
        if info is not None:
            found: Any = service_account.Credentials.from_service_account_info(info, scopes=SCOPES)  # type: ignore[no-untyped-call]
            return found, str(info.get("project_id") or "")
        if credentials_file:
            found = service_account.Credentials.from_service_account_file(credentials_file, scopes=SCOPES)  # type: ignore[no-untyped-call]
            return found, str(getattr(found, "project_id", "") or "")
        found, project = google.auth.default(scopes=SCOPES)
        return found, project or ""
    except (google_errors.GoogleAuthError, OSError, ValueError) as exc:
        raise CredentialsMissing(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


class TokenSource:
    """The current access token, renewed ahead of its expiry."""

    def __init__(self, credentials: Credentials, margin: float = DEFAULT_MARGIN) -> None:
        self._credentials = credentials
        self._margin = margin
        self._lock = asyncio.Lock()
        # urllib3 rather than requests: the same calls, 3 MiB and 35 ms of imports less (bench/extras.py).
        pool = urllib3.PoolManager(num_pools=1, maxsize=1, timeout=urllib3.Timeout(connect=5, read=15))
        self._request = Request(pool)  # type: ignore[no-untyped-call]
        self.token = ""
        self._expires = 0.0  # time.monotonic() of the token's expiry (0: none)
        self._issued = 0.0  # time.monotonic() the token was issued
        self._replacing = False  # the token replaces one the upstream refused
        self._replace_next = False
        self.renewals = 0

    def fresh(self) -> bool:
        return bool(self.token) and (self._expires == 0.0 or time.monotonic() < self._expires - self._margin)

    async def refresh(self) -> None:
        """Renews the token unless it is fresh; concurrent callers wait for the one renewal."""
        if self.fresh():
            return
        async with self._lock:
            if self.fresh():
                return
            try:
                await asyncio.to_thread(self._credentials.refresh, self._request)
            except google_errors.GoogleAuthError as exc:
                raise UpstreamAuthFailed(f"Google credentials could not issue an access token: {exc}") from None
            token = self._credentials.token
            if not isinstance(token, str) or not token:
                raise UpstreamAuthFailed("Google credentials issued no access token.")
            self.token = token
            self._expires = monotonic_of(self._credentials.expiry)
            self._issued = time.monotonic()
            self._replacing, self._replace_next = self._replace_next, False
            self.renewals += 1

    def drop(self) -> bool:
        """Forgets the token the upstream refused. True when a retry with a new token is worth it: not
        when the refused token was itself issued moments ago to replace a refused one (then the
        credential is what the upstream refuses, not a stale token)."""
        just_replaced = self._replacing and time.monotonic() - self._issued < REFUSAL_WINDOW
        worth = bool(self.token) and not just_replaced
        self.forget()
        self._replace_next = worth
        return worth

    def forget(self) -> None:
        self.token, self._expires = "", 0.0


def monotonic_of(expiry: datetime | None) -> float:
    """google-auth's expiry (naive UTC) on the monotonic clock; 0 for a token without one."""
    if expiry is None:
        return 0.0
    aware = expiry if expiry.tzinfo is not None else expiry.replace(tzinfo=UTC)
    return time.monotonic() + (aware - datetime.now(UTC)).total_seconds()
