"""The Anthropic provider: the only module here that does I/O.

One shared ``httpx.AsyncClient`` (pooled connections) per process. Requests
are built by ``request.py``, replies read by ``response.py`` and ``stream.py``;
every failure leaves as a ``GatewayError`` mapped in ``errors.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import httpx
import orjson

from chatgate.v1 import chat_pb2
from service.core import ProviderCall, UpstreamInfo
from service.core.errors import DeadlineExceeded, GatewayError

from .errors import error_from_response, error_from_transport
from .request import AnthropicRequest, to_anthropic
from .response import completion_from_message
from .sse import SSEDecoder
from .stream import StreamTranslator, malformed_event

log = logging.getLogger("chatgate.anthropic")

ANTHROPIC_VERSION = "2023-06-01"
PASSTHROUGH_PREFIX = "anthropic-ratelimit-"


@dataclass(frozen=True, slots=True)
class AnthropicSettings:
    base_url: str = "https://api.anthropic.com"
    api_key: str = ""
    connect_timeout: float = 10.0
    # The longest silence allowed between two reads of a reply (pings count).
    read_timeout: float = 600.0
    pool_timeout: float = 10.0
    max_connections: int = 1000

    def __repr__(self) -> str:  # the key never reaches a log line
        return f"AnthropicSettings(base_url={self.base_url!r}, api_key=<redacted>)"


def build_client(settings: AnthropicSettings) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=settings.max_connections, max_keepalive_connections=settings.max_connections)
    timeout = httpx.Timeout(
        connect=settings.connect_timeout,
        read=settings.read_timeout,
        write=settings.read_timeout,
        pool=settings.pool_timeout,
    )
    # Retries stay at zero: a hidden retry layer multiplies with the clients' own.
    return httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False)


class AnthropicProvider:
    """Calls ``POST /v1/messages``, whole or streamed."""

    def __init__(self, settings: AnthropicSettings, client: httpx.AsyncClient | None = None) -> None:
        self._settings = settings
        self._client = client or build_client(settings)
        self._url = settings.base_url.rstrip("/") + "/v1/messages"
        self._headers = {
            "x-api-key": settings.api_key,
            "anthropic-version": ANTHROPIC_VERSION,
            "content-type": "application/json",
            "accept": "application/json",
        }

    async def aclose(self) -> None:
        await self._client.aclose()

    def _request(self, mapped: AnthropicRequest, call: ProviderCall) -> httpx.Request:
        headers = self._headers
        if mapped.betas:
            headers = {**headers, "anthropic-beta": ",".join(dict.fromkeys(mapped.betas))}
        extensions = {}
        if call.deadline is not None:
            remaining = max(0.001, call.deadline - time.monotonic())
            read = min(remaining, self._settings.read_timeout)
            extensions["timeout"] = {
                "connect": min(remaining, self._settings.connect_timeout),
                "read": read,
                "write": read,
                "pool": min(remaining, self._settings.pool_timeout),
            }
        return self._client.build_request(
            "POST", self._url, content=orjson.dumps(mapped.body), headers=headers, extensions=extensions
        )

    async def complete(self, call: ProviderCall) -> chat_pb2.ChatCompletion:
        mapped = to_anthropic(call, stream=False)
        started = time.monotonic()
        try:
            response = await self._client.send(self._request(mapped, call))
        except httpx.HTTPError as exc:
            raise transport_error(exc, call, started_stream=False) from exc
        finally:
            call.upstream.seconds += time.monotonic() - started
        record_headers(call.upstream, response.headers)
        if response.status_code != 200:
            raise error_from_response(response.status_code, response.headers, response.content)
        try:
            message = orjson.loads(response.content)
            return completion_from_message(message, json_tool=mapped.json_tool)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise malformed_event("message") from exc

    async def stream(self, call: ProviderCall) -> AsyncIterator[chat_pb2.ChatCompletionChunk]:
        mapped = to_anthropic(call, stream=True)
        started = time.monotonic()
        try:
            response = await self._client.send(self._request(mapped, call), stream=True)
        except httpx.HTTPError as exc:
            raise transport_error(exc, call, started_stream=False) from exc
        call.upstream.seconds += time.monotonic() - started
        try:
            record_headers(call.upstream, response.headers)
            if response.status_code != 200:
                raise error_from_response(response.status_code, response.headers, await response.aread())
            async for chunk in translate(response, mapped.json_tool):
                yield chunk
        except httpx.HTTPError as exc:
            raise transport_error(exc, call, started_stream=True) from exc
        finally:
            # Runs on completion, error, and on cancellation or aclose() when the
            # client leaves: the upstream connection is released at once.
            await response.aclose()


async def translate(response: httpx.Response, json_tool: str | None) -> AsyncIterator[chat_pb2.ChatCompletionChunk]:
    translator = StreamTranslator(json_tool=json_tool, request_id=response.headers.get("request-id"))
    decoder = SSEDecoder()
    event = ""
    try:
        async for raw in response.aiter_bytes():
            for sse in decoder.feed(raw):
                event = sse.event
                chunk = translator.feed(event, sse.data)
                if chunk is not None:
                    yield chunk
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise malformed_event(event) from exc
    translator.check_complete()


def transport_error(exc: httpx.HTTPError, call: ProviderCall, *, started_stream: bool) -> GatewayError:
    """A timeout that the client's own deadline caused is the client's deadline, not a slow upstream."""
    if isinstance(exc, httpx.TimeoutException) and call.deadline is not None and time.monotonic() >= call.deadline:
        return DeadlineExceeded("The request's deadline passed while waiting for the upstream.")
    return error_from_transport(exc, started_stream=started_stream)


def record_headers(upstream: UpstreamInfo, headers: Mapping[str, str]) -> None:
    """Keeps the headers a client may use: rate limits, retry-after, the upstream request id."""
    for name, value in headers.items():
        if name.startswith(PASSTHROUGH_PREFIX):
            upstream.headers["x-ratelimit-" + name[len(PASSTHROUGH_PREFIX) :]] = value
    if "retry-after" in headers:
        upstream.headers["retry-after"] = headers["retry-after"]
    if "request-id" in headers:
        upstream.headers["x-request-id"] = headers["request-id"]


__all__ = ["AnthropicProvider", "AnthropicSettings", "build_client"]
