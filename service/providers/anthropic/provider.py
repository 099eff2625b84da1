"""The Anthropic provider: the only module here that does I/O.

One pooled upstream client per process (``http.py``). Requests are built by
``request.py``, replies read by ``response.py`` and ``stream.py``; every failure
leaves as a ``GatewayError`` mapped in ``errors.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import orjson

from chatgate.v1 import chat_pb2
from service.core import ProviderCall, UpstreamInfo
from service.core.errors import DeadlineExceeded, GatewayError
from service.upstream import (
    ClientName,
    Malformed,
    SSEDecoder,
    Timeouts,
    TransportError,
    UpstreamClient,
    UpstreamResponse,
    build_client,
    error_from_transport,
    json_object,
)
from service.upstream.errors import malformed_event

from .errors import error_from_response
from .request import AnthropicRequest, to_anthropic
from .response import completion_from_message
from .stream import StreamTranslator

log = logging.getLogger("chatgate.anthropic")

ANTHROPIC_VERSION = "2023-06-01"
PASSTHROUGH_PREFIX = "anthropic-ratelimit-"
DEADLINE_SLACK = 0.05  # seconds


@dataclass(frozen=True, slots=True)
class AnthropicSettings:
    """One configured Anthropic upstream; the values come from the settings table (service/config.py)."""

    base_url: str
    api_key: str = field(repr=False)  # the key never reaches a log line
    timeouts: Timeouts
    max_connections: int
    client: ClientName


class AnthropicProvider:
    """Calls ``POST /v1/messages``, whole or streamed."""

    def __init__(self, settings: AnthropicSettings, client: UpstreamClient | None = None) -> None:
        self._settings = settings
        self._client = client or build_client(settings.client, settings.max_connections, settings.timeouts)
        self._url = settings.base_url.rstrip("/") + "/v1/messages"
        self._headers = {
            "x-api-key": settings.api_key,
            "anthropic-version": ANTHROPIC_VERSION,
            "content-type": "application/json",
            "accept": "application/json",
        }

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _send(self, mapped: AnthropicRequest, call: ProviderCall) -> UpstreamResponse:
        headers = self._headers
        if mapped.betas:
            headers = {**headers, "anthropic-beta": ",".join(dict.fromkeys(mapped.betas))}
        timeouts = self._settings.timeouts
        if call.deadline is not None:  # gRPC Python does not pass deadlines on by itself
            remaining = max(0.001, call.deadline - time.monotonic())
            timeouts = Timeouts(
                min(remaining, timeouts.connect), min(remaining, timeouts.read), min(remaining, timeouts.pool)
            )
        started = time.monotonic()
        try:
            return await self._client.post(self._url, orjson.dumps(mapped.body), headers, timeouts)
        except TransportError as exc:
            raise transport_error(exc, call, started_stream=False) from exc
        finally:
            call.upstream.seconds += time.monotonic() - started

    async def complete(self, call: ProviderCall) -> chat_pb2.ChatCompletion:
        mapped = to_anthropic(call, stream=False)
        response = await self._send(mapped, call)
        started = time.monotonic()
        try:
            record_headers(call.upstream, response.headers)
            body = await response.read()
        except TransportError as exc:
            raise transport_error(exc, call, started_stream=False) from exc
        finally:
            call.upstream.seconds += time.monotonic() - started
            await response.aclose()
        if response.status != 200:
            raise error_from_response(response.status, response.headers, body)
        try:
            return completion_from_message(json_object(body), json_tool=mapped.json_tool)
        except Malformed as exc:  # anything else raised while mapping is our own bug
            raise malformed_event("message") from exc

    async def stream(self, call: ProviderCall) -> AsyncIterator[list[chat_pb2.ChatCompletionChunk]]:
        mapped = to_anthropic(call, stream=True)
        response = await self._send(mapped, call)
        try:
            record_headers(call.upstream, response.headers)
            if response.status != 200:
                raise error_from_response(response.status, response.headers, await response.read())
            async for batch in translate(response, mapped.json_tool, call.upstream):
                yield batch
        except TransportError as exc:
            raise transport_error(exc, call, started_stream=True) from exc
        finally:
            # Runs on completion, on error, and on cancellation or aclose() when
            # the client leaves: an unfinished upstream connection is closed at once.
            await response.aclose()


async def translate(
    response: UpstreamResponse, json_tool: str | None, upstream: UpstreamInfo
) -> AsyncIterator[list[chat_pb2.ChatCompletionChunk]]:
    """One batch per upstream read; the time spent waiting for reads counts as upstream time."""
    translator = StreamTranslator(json_tool=json_tool, request_id=response.headers.get("request-id"))
    decoder = SSEDecoder()
    feed = translator.feed
    event = ""
    reads = response.chunks().__aiter__()
    try:
        while True:
            waited = time.monotonic()
            try:
                raw = await anext(reads)
            except StopAsyncIteration:
                break
            finally:
                upstream.seconds += time.monotonic() - waited
            batch: list[chat_pb2.ChatCompletionChunk] = []
            for sse in decoder.feed(raw):
                event = sse.event
                try:
                    chunk = feed(event, sse.data)
                except Exception:
                    if batch:  # what arrived before the failure is delivered first
                        yield batch
                    raise
                if chunk is not None:
                    batch.append(chunk)
            if batch:
                yield batch
    except Malformed as exc:  # anything else raised while translating is our own bug
        raise malformed_event(event) from exc
    translator.check_complete()


def transport_error(exc: TransportError, call: ProviderCall, *, started_stream: bool) -> GatewayError:
    """A timeout that the client's own deadline caused is the client's deadline, not a slow upstream.

    Event-loop timers may fire a little early, hence the slack."""
    if call.deadline is not None and time.monotonic() >= call.deadline - DEADLINE_SLACK:
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
