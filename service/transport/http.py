"""The upstream HTTP seam: one small interface, two clients behind it, for every provider.

``aiohttp`` is the default because it measured fastest (README, "Upstream
client" under Performance); ``httpx`` is kept as a tested alternative. Each client turns its
library's exceptions into the three ``TransportError`` kinds below, so the
rest of the provider never sees either library's errors.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import aiohttp
import yarl

if TYPE_CHECKING:  # imported when chosen: it costs memory in every process otherwise
    import httpx

ClientName = Literal["aiohttp", "httpx"]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. ``read`` bounds each silence between reads, not the whole reply."""

    connect: float
    read: float
    pool: float


class TransportError(Exception):
    """The request failed below HTTP; the message is safe but never shown to clients."""


class ConnectFailed(TransportError):
    """No connection could be made (refused, DNS, TLS, connect timeout, no free pool slot)."""

    def __init__(self, message: str, *, pool: bool = False) -> None:
        super().__init__(message)
        self.pool = pool


class ReadTimedOut(TransportError):
    """The upstream went silent for longer than the read timeout."""


class ConnectionBroken(TransportError):
    """The connection broke after the request was sent."""


class UpstreamResponse(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Case-insensitive lookups; iterating gives names in the case the upstream sent."""
        ...

    async def read(self) -> bytes: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None:
        """Releases the connection; one not read to its end is closed, not reused."""


class UpstreamClient(Protocol):
    async def get(self, url: str, headers: Mapping[str, str], timeouts: Timeouts) -> UpstreamResponse:
        """A small GET (the Models API, say): read the whole body, then close."""
        ...

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeouts: Timeouts) -> UpstreamResponse:
        """Sends the request and returns once the status and headers have arrived."""
        ...

    async def aclose(self) -> None: ...


# --- aiohttp ------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def as_sent(url: str) -> yarl.URL:
    """The URL exactly as the gateway wrote it: yarl would otherwise decode escapes such as the `%3A`
    of a Bedrock model id in the path, and a SigV4 signature covers the path as written. An upstream's
    URLs are few (one per model and operation), so each is parsed once: aiohttp parses a string URL
    on every request."""
    return yarl.URL(url, encoded=True)


class AiohttpResponse:
    __slots__ = ("_done", "_response", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self._done = False
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers  # case-insensitive, as the protocol asks

    async def read(self) -> bytes:
        try:
            body = await self._response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise aiohttp_error(exc) from exc
        self._done = True
        return body

    async def chunks(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            async for data in content.iter_any():  # whatever has arrived: lowest latency
                yield data
        except (TimeoutError, aiohttp.ClientError) as exc:
            leftover = buffered(content)
            if leftover:  # bytes that arrived before the break are part of the answer
                yield leftover
            raise aiohttp_error(exc) from exc
        self._done = True

    async def aclose(self) -> None:
        if self._done:
            self._response.release()
        else:
            self._response.close()


def buffered(content: aiohttp.StreamReader) -> bytes:
    """Bytes already received on a connection that then broke.

    aiohttp raises a broken connection's error before handing out what it had
    buffered, so the last events before an upstream drop would be lost; its
    private reader is the only way to them, and it is used defensively.
    """
    read = getattr(content, "_read_nowait", None)
    try:
        return read(-1) if read is not None else b""
    except Exception:
        return b""


class AiohttpClient:
    def __init__(self, max_connections: int, timeouts: Timeouts, *, trust_env: bool = False) -> None:
        self._default = timeouts
        self._trust_env = trust_env  # HTTPS_PROXY and friends, only when the operator says so
        self._default_timeout = client_timeout(timeouts)
        # The session needs a running loop, so it is made on first use.
        self._session: aiohttp.ClientSession | None = None
        self._max_connections = max_connections

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=60, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._default_timeout,
                trust_env=self._trust_env,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeouts: Timeouts) -> AiohttpResponse:
        timeout = self._default_timeout if timeouts == self._default else client_timeout(timeouts)
        try:
            response = await self._get_session().post(as_sent(url), data=body, headers=headers, timeout=timeout)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise aiohttp_error(exc) from exc
        return AiohttpResponse(response)

    async def get(self, url: str, headers: Mapping[str, str], timeouts: Timeouts) -> AiohttpResponse:
        try:
            response = await self._get_session().get(as_sent(url), headers=headers, timeout=client_timeout(timeouts))
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise aiohttp_error(exc) from exc
        return AiohttpResponse(response)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def client_timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
    # `connect` covers waiting for a pool slot and connecting; `sock_connect` the connect alone.
    return aiohttp.ClientTimeout(
        total=None, connect=timeouts.pool + timeouts.connect, sock_connect=timeouts.connect, sock_read=timeouts.read
    )


def aiohttp_error(exc: BaseException) -> TransportError:
    # ConnectionTimeoutError covers both the wait for a pool slot and the connect itself.
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ConnectFailed("no upstream connection in time", pool=True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ConnectFailed("could not connect to the upstream")
    if isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        return ReadTimedOut("the upstream went silent")
    return ConnectionBroken("the upstream connection broke")


# --- httpx --------------------------------------------------------------------


class HttpxResponse:
    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.headers: Mapping[str, str] = response.headers  # case-insensitive, as the protocol asks

    async def read(self) -> bytes:
        import httpx

        try:
            return await self._response.aread()
        except httpx.HTTPError as exc:
            raise httpx_error(exc) from exc

    async def chunks(self) -> AsyncIterator[bytes]:
        import httpx

        try:
            async for data in self._response.aiter_bytes():
                yield data
        except httpx.HTTPError as exc:
            raise httpx_error(exc) from exc

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxClient:
    def __init__(
        self,
        max_connections: int,
        timeouts: Timeouts,
        client: httpx.AsyncClient | None = None,
        *,
        trust_env: bool = False,
    ) -> None:
        import httpx

        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = client or httpx.AsyncClient(limits=limits, timeout=httpx_timeout(timeouts), trust_env=trust_env)

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeouts: Timeouts) -> HttpxResponse:
        import httpx

        request = self._client.build_request(
            "POST", url, content=body, headers=headers, extensions={"timeout": httpx_timeout(timeouts).as_dict()}
        )
        try:
            return HttpxResponse(await self._client.send(request, stream=True))
        except httpx.HTTPError as exc:
            raise httpx_error(exc) from exc

    async def get(self, url: str, headers: Mapping[str, str], timeouts: Timeouts) -> HttpxResponse:
        import httpx

        request = self._client.build_request(
            "GET", url, headers=headers, extensions={"timeout": httpx_timeout(timeouts).as_dict()}
        )
        try:
            return HttpxResponse(await self._client.send(request, stream=True))
        except httpx.HTTPError as exc:
            raise httpx_error(exc) from exc

    async def aclose(self) -> None:
        await self._client.aclose()


def httpx_timeout(timeouts: Timeouts) -> httpx.Timeout:
    import httpx

    return httpx.Timeout(connect=timeouts.connect, read=timeouts.read, write=timeouts.read, pool=timeouts.pool)


def httpx_error(exc: httpx.HTTPError) -> TransportError:
    import httpx

    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
        return ConnectFailed("could not connect to the upstream")
    if isinstance(exc, httpx.PoolTimeout):
        return ConnectFailed("no upstream connection in time", pool=True)
    if isinstance(exc, httpx.TimeoutException):
        return ReadTimedOut("the upstream went silent")
    return ConnectionBroken("the upstream connection broke")


def build_client(
    name: ClientName, max_connections: int, timeouts: Timeouts, *, trust_env: bool = False
) -> UpstreamClient:
    if name == "httpx":
        return HttpxClient(max_connections, timeouts, trust_env=trust_env)
    return AiohttpClient(max_connections, timeouts, trust_env=trust_env)
