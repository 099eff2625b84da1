"""The Anthropic provider: the only module here that does I/O.

One pooled upstream client per process (``http.py``). Requests are built by
``request.py``, replies read by ``response.py`` and ``stream.py``; every failure
leaves as a ``GatewayError`` mapped in ``errors.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import quote

import orjson

from chatgate.v1 import chat_pb2
from service.core import NativeRequest, ProviderCall, UpstreamInfo
from service.core.chunks import Batch
from service.core.errors import (
    DeadlineExceeded,
    GatewayError,
    IncompleteStream,
    QuotaExceeded,
    RateLimited,
    UpstreamAuthFailed,
    UpstreamOverloaded,
    UpstreamTimeout,
)
from service.core.streams import close
from service.core.watchdog import Watchdog
from service.transport import (
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
from service.transport.errors import malformed_event, redact_credentials
from service.transport.keys import BreakerSettings, KeyEvent, KeyPool, UpstreamKey

from .affinity import ThinkingAffinity, strip_thinking
from .catalog import traits_of
from .errors import error_from_response
from .headers import record_headers, record_native_headers
from .native import StreamWatcher, record_answer
from .platform import CHECK_TIMEOUTS, AnthropicPlatform, Outgoing, Platform, parsed_error
from .request import DEFAULT_API_VERSION, AnthropicRequest, to_anthropic
from .response import completion_from_message
from .stream import StreamTranslator

log = logging.getLogger("chatgate.anthropic")
T = TypeVar("T")
# Keeps the headers of an answer that the client should get (rate limits, request id).
Recorder = Callable[[UpstreamInfo, Mapping[str, str]], None]

MAX_MODEL_PAGES = 20  # a bound, in case an upstream pages forever
DEADLINE_SLACK = 0.05  # seconds


@dataclass(frozen=True, slots=True)
class AnthropicSettings:
    """One configured Anthropic upstream; the values come from the settings table (service/config.py)."""

    name: str  # the upstream's name, for logs and metrics
    base_url: str
    api_keys: tuple[str, ...] = field(repr=False)  # keys never reach a log line, only their aliases
    timeouts: Timeouts
    first_byte_timeout: float  # streams: seconds until the first upstream event
    breaker: BreakerSettings
    max_connections: int
    client: ClientName
    trust_env: bool = False  # proxies from HTTPS_PROXY / HTTP_PROXY / NO_PROXY
    # The `anthropic-version` of translated requests (and of native ones that send none); its rules apply.
    api_version: str = DEFAULT_API_VERSION


class AnthropicProvider:
    """Calls ``POST /v1/messages``, whole or streamed, with a key from the upstream's pool."""

    def __init__(
        self,
        settings: AnthropicSettings,
        client: UpstreamClient | None = None,
        *,
        on_key_event: KeyEvent | None = None,
        platform: Platform | None = None,
    ) -> None:
        self._settings = settings
        self._client = client or build_client(
            settings.client, settings.max_connections, settings.timeouts, trust_env=settings.trust_env
        )
        # Anthropic's own API unless the composition root hands in another platform (Bedrock, Vertex).
        self._own = AnthropicPlatform(settings.base_url, settings.api_version)
        self.platform: Platform = platform or self._own
        self._models_url = self._own.models_url
        self.keys = KeyPool(
            settings.name, settings.api_keys, settings.breaker, on_event=on_key_event, verify=self.verify_key
        )
        # Key values (without any `account=` prefix) and the platform's credentials, never echoed back.
        keys = tuple(key.value for key in self.keys.keys) if self.platform.keyed else ()
        self._secrets = keys + self.platform.secrets()
        # Only a pool that spans accounts needs to know who signed a conversation's thinking.
        self._affinity = ThinkingAffinity() if self.keys.accounts else None
        self._watchdog = Watchdog()
        self._headers = self.platform.headers

    def status(self) -> list[dict[str, object]]:
        """Each key's state by alias, for the admin status endpoint (never readiness)."""
        return self.keys.status()

    async def aclose(self) -> None:
        await self.keys.aclose()
        await self._client.aclose()

    async def verify_key(self, key: UpstreamKey) -> int | None:
        """A quarantined key's out-of-band check, by the platform (for Anthropic's API: the Models
        API's first page with that key alone). The status, or None when it could not be reached."""
        return await self.platform.verify(key, self._client)

    async def _post(self, out: Outgoing, call: ProviderCall, account: str = "") -> tuple[UpstreamResponse, UpstreamKey]:
        """Sends with a key from the pool (one of ``account``'s when given and usable)."""
        platform = self.platform
        if platform.refresh is not None:  # a credential about to expire is renewed first
            try:
                await platform.refresh()
            except GatewayError as error:
                self._logged_without_key(call, error)
                raise
        key = (self.keys.acquire_in(account) if account else None) or self.keys.acquire()
        call.probe = key.probing  # this call is the half-open probe: it must leave with a verdict
        call.key = key.alias
        # The gateway's request id goes upstream, so both sides' logs can be joined.
        headers = {**self._headers, **out.headers, "x-request-id": call.exchange.request_id}
        platform.authorize(key, out, headers)
        timeouts = self._settings.timeouts
        if call.deadline is not None:  # gRPC Python does not pass deadlines on by itself
            remaining = max(0.001, call.deadline - time.monotonic())
            timeouts = Timeouts(
                min(remaining, timeouts.connect), min(remaining, timeouts.read), min(remaining, timeouts.pool)
            )
        started = time.monotonic()
        try:
            response = platform.answer(await self._client.post(out.url, out.body, headers, timeouts), out)
            if self._affinity is not None and key.account:
                response = self._affinity.watch(response, key.account)  # notes who signed its thinking
            return response, key
        except TransportError as exc:
            raise self._failed(key, call, transport_error(exc, call, started_stream=False)) from exc
        except BaseException:
            self.keys.released(key)
            raise
        finally:
            call.upstream.seconds += time.monotonic() - started

    def _rejected(
        self, key: UpstreamKey, call: ProviderCall, status: int, body: bytes, headers: Mapping[str, str]
    ) -> GatewayError:
        """A non-200 answer: what it means for the key, and the error for the core."""
        error = error_from_response(status, headers, body, secrets=self._secrets)
        if isinstance(call.request, NativeRequest) and is_error_answer(body):
            # The native surface passes the upstream's own answer on as sent: Claude Code's retry
            # logic reads its wording. Only a credential it quotes is redacted.
            error.upstream_body = redact_credentials(body, self._secrets)
        if status == 429 or (isinstance(error, RateLimited) and not isinstance(error, QuotaExceeded)):
            self.keys.rate_limited(key, error.retry_after)
            if self.keys.usable():
                error.transient = True  # another key can take the retry at once
        elif isinstance(error, UpstreamAuthFailed):  # a 401, or a platform's refused signature or token
            if self.platform.renewed():  # a stale token, now dropped: the retry gets a fresh one
                self.keys.released(key)
                error.transient = True
            else:
                self.keys.rejected(key, status)
                error.transient = self.keys.usable()  # another key may be good
        elif status == 403:
            self.keys.denied(key, status)
        elif status >= 500:
            self.keys.failed(key, call.exchange.request_id, call.exchange.caller.name)
        else:
            self.keys.released(key)
        return self._logged(key, call, error, status)

    def _failed(self, key: UpstreamKey, call: ProviderCall, error: GatewayError) -> GatewayError:
        """A failure with no usable answer (transport, timeout, in-stream overload): counts against the breaker."""
        if isinstance(error, DeadlineExceeded):
            self.keys.released(key)
        else:
            self.keys.failed(key, call.exchange.request_id, call.exchange.caller.name)
        return self._logged(key, call, error, error.upstream_status)

    def _logged_without_key(self, call: ProviderCall, error: GatewayError) -> None:
        log.warning(
            "upstream %s (%s) attempt %d for %s: no credential -> %s: %s",
            self._settings.name,
            self.platform.name,
            call.attempt,
            call.model.upstream_id,
            error.code,
            error.message,
        )

    def _logged(self, key: UpstreamKey, call: ProviderCall, error: GatewayError, status: int | None) -> GatewayError:
        log.warning(
            "upstream %s key %s attempt %d for %s: %s -> %s (upstream request id %s)",
            self._settings.name,
            key.alias,
            call.attempt,
            call.model.upstream_id,
            f"HTTP {status}" if status else type(error).__name__,
            error.code,
            error.upstream_request_id or "-",
        )
        return error

    async def list_models(self) -> list[dict[str, Any]]:
        """Every entry of the upstream's Models API (all pages), as sent. Raises ``GatewayError``."""
        entries: list[dict[str, Any]] = []
        after = ""
        for _ in range(MAX_MODEL_PAGES):
            url = self._models_url + "?limit=1000" + (f"&after_id={quote(after)}" if after else "")
            status, headers, body = await self._get(url)
            if status != 200:
                raise error_from_response(status, headers, body, secrets=self._secrets)
            try:
                page = json_object(body)
                data = page.get("data")
                if not isinstance(data, list):
                    raise Malformed("`data` is not a list")
            except Malformed as exc:
                raise malformed_event("model list") from exc
            entries.extend(entry for entry in data if isinstance(entry, dict))
            after = page.get("last_id") or ""
            if not page.get("has_more") or not isinstance(after, str) or not after:
                break
        return entries

    async def _get(self, url: str) -> tuple[int, Mapping[str, str], bytes]:
        key = self.keys.acquire()
        headers = {**self._headers, "x-api-key": key.value}
        try:
            response = await self._client.get(url, headers, CHECK_TIMEOUTS)
            try:
                return response.status, response.headers, await response.read()
            finally:
                await response.aclose()
        except TransportError as exc:
            raise error_from_transport(exc, started_stream=False) from exc
        finally:
            self.keys.released(key)  # a listing says nothing about the key's health for chat calls

    async def count_tokens(self, call: ProviderCall) -> int:
        """`POST /v1/messages/count_tokens` with the request as it would be sent (prompt parts only)."""
        mapped = to_anthropic(call, stream=False, version=self._settings.api_version)
        account = self._translated_account(call, mapped)
        answer = await self._whole(self.platform.counted(mapped, call), call, record_headers, account)
        tokens = json_object(answer).get("input_tokens") if answer else None
        if not isinstance(tokens, int):
            raise malformed_event("count")
        return tokens

    # --- the native API, bytes through ----------------------------------------------

    async def relay(self, call: ProviderCall) -> bytes:
        out = self.platform.native(call)
        account, out = self._native_account(call, out)
        answer = await self._whole(out, call, record_native_headers, account)
        if isinstance(call.request, NativeRequest) and call.request.operation == "messages":
            try:
                record_answer(json_object(answer), call.exchange)
            except Malformed as exc:
                raise malformed_event("message") from exc
        return answer

    def relay_stream(self, call: ProviderCall) -> AsyncIterator[bytes]:
        out = self.platform.native(call)

        def reader(response: UpstreamResponse) -> AsyncIterator[bytes]:
            return passed_through(response, call, self._secrets)

        account, out = self._native_account(call, out)
        return self._streamed(out, call, record_native_headers, reader, account)

    # --- one upstream exchange, whole or streamed, for every call above ----------------

    async def _whole(self, out: Outgoing, call: ProviderCall, record: Recorder, account: str = "") -> bytes:
        """Sends with a key from the pool and reads the whole answer; the key learns how it went.

        Returns the body of a 200; raises the mapped ``GatewayError`` for anything else."""
        response, key = await self._post(out, call, account)
        started = time.monotonic()
        try:
            record(call.upstream, response.headers)
            answer = await response.read()
        except TransportError as exc:
            raise self._failed(key, call, transport_error(exc, call, started_stream=False)) from exc
        except BaseException:
            self.keys.released(key)
            raise
        finally:
            call.upstream.seconds += time.monotonic() - started
            await response.aclose()
        if response.status != 200:
            raise self._rejected(key, call, response.status, answer, response.headers)
        self.keys.succeeded(key, call.exchange.caller.name)
        return answer

    async def _streamed(
        self,
        out: Outgoing,
        call: ProviderCall,
        record: Recorder,
        reader: Callable[[UpstreamResponse], AsyncIterator[T]],
        account: str = "",
    ) -> AsyncIterator[T]:
        """Sends with a key from the pool and yields what ``reader`` makes of the answer as it arrives.

        Before the first item, a non-200 or the first-byte timeout raises (the core may retry);
        after it, failures raise as stream errors. However it ends, the upstream connection is closed."""
        key: UpstreamKey | None = None
        response: UpstreamResponse | None = None
        try:
            watched = self._watchdog.watch(self._settings.first_byte_timeout)
            try:
                response, key = await self._post(out, call, account)
                record(call.upstream, response.headers)
                if response.status != 200:
                    raise self._rejected(key, call, response.status, await response.read(), response.headers)
                items = reader(response)
                first = await anext(items, None)
            except asyncio.CancelledError:
                if not self._watchdog.release(watched):
                    raise
                error = UpstreamTimeout(
                    f"The upstream sent nothing within {self._settings.first_byte_timeout:g} s.", transient=True
                )
                raise (self._failed(key, call, error) if key is not None else error) from None
            finally:
                self._watchdog.release(watched)
            self.keys.succeeded(key, call.exchange.caller.name)
            if first is not None:
                yield first
                async for item in items:
                    yield item
        except TransportError as exc:
            assert key is not None
            raise self._failed(key, call, transport_error(exc, call, started_stream=True)) from exc
        except UpstreamOverloaded:
            # An overload event inside a started stream counts against the breaker here; an
            # overload answer before it (a non-200) was already counted by `_rejected`.
            if key is not None and response is not None and response.status == 200:
                self.keys.failed(key, call.exchange.request_id, call.exchange.caller.name)
            raise
        finally:
            # A probe always leaves with a verdict: one cancelled before its first byte, or ended
            # by an error event that says nothing of the upstream's health, is released here.
            if key is not None and call.probe and key.probing:
                self.keys.released(key)
            # Runs on completion, on error, and on cancellation or aclose() when
            # the client leaves: an unfinished upstream connection is closed at once.
            if response is not None:
                await response.aclose()

    async def complete(self, call: ProviderCall) -> chat_pb2.ChatCompletion:
        mapped = to_anthropic(call, stream=False, version=self._settings.api_version)
        account = self._translated_account(call, mapped)
        body = await self._whole(self.platform.translated(mapped, call, stream=False), call, record_headers, account)
        try:
            return completion_from_message(json_object(body), json_tool=mapped.json_tool)
        except Malformed as exc:  # anything else raised while mapping is our own bug
            raise malformed_event("message") from exc

    def stream(self, call: ProviderCall) -> AsyncIterator[Batch]:
        mapped = to_anthropic(call, stream=True, version=self._settings.api_version)

        def reader(response: UpstreamResponse) -> AsyncIterator[Batch]:
            return translate(response, mapped.json_tool, call.upstream, self._secrets)

        account = self._translated_account(call, mapped)
        out = self.platform.translated(mapped, call, stream=True)
        return self._streamed(out, call, record_headers, reader, account)

    # --- thinking affinity (only for a key pool that spans accounts) ----------------

    def _translated_account(self, call: ProviderCall, mapped: AnthropicRequest) -> str:
        """The account a translated request with signed thinking must go to ('' for any)."""
        if self._affinity is None:
            return ""
        assert not isinstance(call.request, NativeRequest)
        account, drop = self._thinking_account(call, self._affinity.account_of(call.request))
        if drop and strip_thinking(mapped.body.get("messages")):
            self._dropped_thinking(call)
        return account

    def _native_account(self, call: ProviderCall, out: Outgoing) -> tuple[str, Outgoing]:
        """The same for a native body, which loses its thinking blocks only when it must."""
        if self._affinity is None:
            return "", out
        account, drop = self._thinking_account(call, self._affinity.account_in(out.body))
        if drop:
            parsed = orjson.loads(out.body)
            if isinstance(parsed, dict) and strip_thinking(parsed.get("messages")):
                self._dropped_thinking(call)
                out = replace(out, body=orjson.dumps(parsed))
        return account, out

    def _thinking_account(self, call: ProviderCall, signer: str) -> tuple[str, bool]:
        """(the account to prefer, whether the thinking must be dropped). A signer with no usable
        key cannot be preferred; its thinking is dropped only on a model that binds it to the
        account, which would refuse it from another (other models accept it anywhere)."""
        if not signer or self.keys.usable_in(signer):
            return signer, False
        return "", traits_of(call.model).account_bound

    def _dropped_thinking(self, call: ProviderCall) -> None:
        log.warning("%s: no usable key of the account that signed its thinking; the thinking is dropped", call.model.id)
        call.report.note(
            "messages",
            f"{call.model.id} accepts thinking only from the account that produced it, which has no usable key; "
            "the thinking blocks were left out",
            shown="thinking_dropped",
        )


async def timed_reads(response: UpstreamResponse, upstream: UpstreamInfo) -> AsyncGenerator[bytes, None]:
    """The response's reads as they arrive; the time spent waiting for each counts as upstream time.

    Use it closed (``contextlib.aclosing``): a stream ends at `message_stop`, before the connection
    does, and the reader closed then is done with at once. Left open, the event loop's finalizer
    would close it later, in a task of its own scheduled through the loop's wake-up socket: a task
    and a system call per stream."""
    reads = response.chunks().__aiter__()
    try:
        while True:
            waited = time.monotonic()
            try:
                raw = await anext(reads)
            except StopAsyncIteration:
                return
            finally:
                upstream.seconds += time.monotonic() - waited
            yield raw
    finally:
        await close(reads)


async def translate(
    response: UpstreamResponse, json_tool: str | None, upstream: UpstreamInfo, secrets: tuple[str, ...] = ()
) -> AsyncIterator[Batch]:
    """One batch per upstream read; the time spent waiting for reads counts as upstream time."""
    translator = StreamTranslator(json_tool=json_tool, request_id=response.headers.get("request-id"), secrets=secrets)
    decoder = SSEDecoder()
    read = translator.read
    try:
        async with contextlib.aclosing(timed_reads(response, upstream)) as reads:
            async for raw in reads:
                batch: Batch = []
                try:
                    read(decoder.feed(raw), batch)
                except Exception:
                    if batch:  # what arrived before the failure is delivered first
                        yield batch
                    raise
                if batch:
                    yield batch
                if translator.finished:
                    return  # the answer is complete: do not wait for the upstream to close the connection
    except Malformed as exc:  # anything else raised while translating is our own bug
        raise malformed_event(translator.event) from exc
    translator.check_complete()


async def passed_through(
    response: UpstreamResponse, call: ProviderCall, secrets: tuple[str, ...]
) -> AsyncIterator[bytes]:
    """The upstream's stream bytes as read, watched for usage, the end and errors on the way.

    ``message_stop`` ends the stream at once; a connection that ends before it is an
    incomplete stream. An upstream error event is not passed on as sent: the bytes before
    it are, then the error is raised and the edge writes it in the same shape, scrubbed of
    keys and internal addresses like every upstream error text."""
    watcher = StreamWatcher(call.exchange, response.headers.get("request-id"), secrets)
    async with contextlib.aclosing(timed_reads(response, call.upstream)) as reads:
        async for raw in reads:
            try:
                watcher.feed(raw)
            except Malformed as exc:
                raise malformed_event("stream") from exc
            if watcher.error is not None:
                before = raw[: error_start(raw)]
                if before:
                    yield before
                raise watcher.error
            yield raw
            if watcher.finished:
                return
    raise IncompleteStream("The upstream stream ended before `message_stop`.", upstream_request_id=watcher.request_id)


def is_error_answer(body: bytes) -> bool:
    """Whether a body is an Anthropic error answer (`{"type": "error", "error": {...}}`), not a proxy's page."""
    return parsed_error(body)[0]


def error_start(raw: bytes) -> int:
    """Where the error event begins in a read (0 when it began in an earlier one)."""
    found = [i for i in (raw.find(b"event: error"), raw.find(b"event:error")) if i >= 0]
    return min(found) if found else 0


def transport_error(exc: TransportError, call: ProviderCall, *, started_stream: bool) -> GatewayError:
    """A timeout that the client's own deadline caused is the client's deadline, not a slow upstream.

    Event-loop timers may fire a little early, hence the slack."""
    if call.deadline is not None and time.monotonic() >= call.deadline - DEADLINE_SLACK:
        return DeadlineExceeded("The request's deadline passed while waiting for the upstream.")
    return error_from_transport(exc, started_stream=started_stream)
