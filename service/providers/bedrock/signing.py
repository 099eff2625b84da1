"""AWS credentials and Signature Version 4, through botocore (AWS's own signer).

Credentials come from botocore's standard chain, as every AWS SDK reads them: the environment
(`AWS_ACCESS_KEY_ID`, ...), the profile files (`AWS_PROFILE`), web identity (EKS pod identity,
IRSA), the container and the instance roles. Rotating credentials (roles) are renewed before
they expire, off the event loop, since botocore's renewal is a blocking HTTP call.
"""

from __future__ import annotations

import asyncio
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials
from botocore.exceptions import BotoCoreError
from botocore.session import get_session

from service.core.errors import UpstreamAuthFailed

SIGNED_RESULT = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")


class CredentialsMissing(Exception):
    """No AWS credentials in any of the standard places (a configuration error)."""


def default_credentials() -> Credentials:
    """The first credentials of the standard chain; raises ``CredentialsMissing`` when there are none."""
    try:
        found = get_session().get_credentials()
    except BotoCoreError as exc:
        raise CredentialsMissing(str(exc)) from None
    if found is None:
        raise CredentialsMissing(
            "no AWS credentials found (environment, AWS_PROFILE, web identity, container or instance role)"
        )
    return found


def static_credentials(access_key: str, secret_key: str) -> Credentials:
    return Credentials(access_key, secret_key)


def default_region() -> str:
    """The region the standard AWS configuration names (`AWS_REGION`, `AWS_DEFAULT_REGION`, profile)."""
    region = get_session().get_config_variable("region")
    return region if isinstance(region, str) else ""


class SigV4Signer:
    """Signs each request for one service and region with the current credentials."""

    def __init__(self, credentials: Credentials, service: str, region: str) -> None:
        self._credentials = credentials
        self.service, self.region = service, region
        self._lock = asyncio.Lock()

    def frozen(self) -> ReadOnlyCredentials:
        return self._credentials.get_frozen_credentials()

    def secrets(self) -> tuple[str, ...]:
        frozen = self.frozen()
        return tuple(s for s in (frozen.secret_key, frozen.token) if s)

    async def refresh(self) -> None:
        """Renews rotating credentials that are about to expire (one renewal at a time)."""
        credentials = self._credentials
        if not isinstance(credentials, RefreshableCredentials) or not credentials.refresh_needed():
            return
        async with self._lock:
            if credentials.refresh_needed():
                try:
                    await asyncio.to_thread(credentials.get_frozen_credentials)
                except BotoCoreError as exc:
                    raise UpstreamAuthFailed(f"The AWS credentials could not be renewed: {exc}") from None

    def sign(self, method: str, url: str, headers: dict[str, str], body: bytes) -> None:
        """Adds `Authorization`, `X-Amz-Date` (and the session token) over every header in ``headers``."""
        request = AWSRequest(method=method, url=url, data=body, headers=headers)
        SigV4Auth(self.frozen(), self.service, self.region).add_auth(request)
        signed: Any = request.headers
        for name in SIGNED_RESULT:
            value = signed.get(name)
            if value is not None:
                headers[name.lower()] = value
