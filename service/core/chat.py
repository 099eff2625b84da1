"""The use case: validate a request, resolve its model, route it to that model's provider, whole or streamed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from chatgate.v1 import chat_pb2, chat_service_pb2

from .admission import Admission
from .chunks import Batch, Chunk, TextDelta, as_chunks
from .compat import Adjustment, CompatReport
from .errors import (
    DeadlineExceeded,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    PermissionDenied,
    UpstreamOverloaded,
    UpstreamTimeout,
)
from .exchange import ANONYMOUS, Caller, Exchange, internal
from .limits import Limiter, Quota, Ticket
from .models import ModelCatalog, ModelInfo
from .provider import ChatProvider, NativeProvider, NativeRequest, ProviderCall, TokenCounter, UpstreamInfo
from .retry import RetryPolicy, falls_back
from .watchdog import Watchdog

log = logging.getLogger("chatgate")
MIN_DEADLINE = 0.02  # seconds: a deadline closer than this is treated as already gone
_retired_warned: set[str] = set()
Request = chat_service_pb2.ChatCompletionRequest
B = TypeVar("B")  # what one upstream read becomes: chunks, or the upstream's own bytes
# Finish reasons by OpenAI's names (the proto's enum names, lower-cased, without the prefix).
FINISH_NAMES = {
    value.number: value.name.removeprefix("FINISH_REASON_").lower()
    for value in chat_pb2.FinishReason.DESCRIPTOR.values
    if value.number
}
STRICT = chat_pb2.COMPATIBILITY_STRICT
LENIENT = chat_pb2.COMPATIBILITY_LENIENT


def own_time_ms(started: float, upstream_seconds: float) -> float:
    """The gateway's own time since ``started`` (monotonic): total minus time waiting on the upstream."""
    return max(0.0, (time.monotonic() - started - upstream_seconds) * 1000)


@dataclass(slots=True)
class ChatResult:
    """A whole completion and what the edges report beside it."""

    completion: chat_pb2.ChatCompletion
    adjustments: list[Adjustment]
    upstream: UpstreamInfo
    started: float

    def overhead_ms(self) -> float:
        """The gateway's own time: total minus time spent waiting on the upstream."""
        return own_time_ms(self.started, self.upstream.seconds)


@dataclass(slots=True)
class RelayResult:
    """A whole native answer: the upstream's bytes, and what the edges report beside them."""

    body: bytes
    adjustments: list[Adjustment]
    upstream: UpstreamInfo
    started: float

    def overhead_ms(self) -> float:
        return own_time_ms(self.started, self.upstream.seconds)


class UpstreamStream(Generic[B]):
    """A streamed answer. Iterate it for batches; ``aclose`` releases the upstream.

    A batch is what one upstream read produced, in order: nothing waits to fill a
    batch, but an edge can write what is already there in one go. The first
    ``__anext__`` starts the upstream call, so errors before generation surface
    there, before an edge has sent anything.
    """

    def __init__(
        self,
        batches: AsyncIterator[B],
        report: CompatReport,
        upstream: UpstreamInfo,
        *,
        expires: float | None = None,
        deadline: float | None = None,
        on_close: Callable[[], None] | None = None,
        overload_retry_after: float | None = None,
    ) -> None:
        self._deadline = deadline
        self._overload_retry_after = overload_retry_after
        self._batches = batches
        self._report = report
        self.upstream = upstream
        self.started = time.monotonic()
        self._expires = expires
        self._on_close = on_close

    @property
    def adjustments(self) -> list[Adjustment]:
        return self._report.items

    def overhead_ms(self) -> float:
        """The gateway's own time so far: total minus time spent waiting on the upstream."""
        return own_time_ms(self.started, self.upstream.seconds)

    def __aiter__(self) -> UpstreamStream[B]:
        return self

    async def __anext__(self) -> B:
        if self._expires is not None:  # between batches; silences are bounded by the read timeout
            now = time.monotonic()
            if self._deadline is not None and now > self._deadline:
                raise DeadlineExceeded("The request's deadline passed before the reply finished.")
            if now > self._expires:
                raise UpstreamTimeout("The reply did not finish within the gateway's request timeout.")
        try:
            return await anext(self._batches)
        except UpstreamOverloaded as error:  # mid-stream: still tell the client when to come back
            if error.retry_after is None:
                error.retry_after = self._overload_retry_after
            raise

    async def aclose(self) -> None:
        try:
            await close(self._batches)
        finally:
            if self._on_close is not None:
                on_close, self._on_close = self._on_close, None
                on_close()


class ChatStream(UpstreamStream[Batch]):
    """A streamed completion: batches of chunks."""


class RelayStream(UpstreamStream[bytes]):
    """A native stream: the upstream's bytes, as read."""


@dataclass(frozen=True, slots=True)
class Limits:
    """How much a request may ask for and how long it may take, and how failures are retried."""

    max_choices: int
    request_timeout: float  # seconds for a whole request, streams included
    retry: RetryPolicy


AttemptHook = Callable[[ProviderCall, str], None]
# Starts a trace span for one upstream attempt and returns what ends it with the outcome.
AttemptSpan = Callable[[ProviderCall], Callable[[str], None]]
T = TypeVar("T")


class ChatService:
    """Chat completions, the same for every edge: each request goes to the provider its model names.

    Before the first byte a failed attempt is retried (``RetryPolicy``) and then,
    if the model has a fallback chain, tried on the next model; after the first
    byte nothing is retried, so a client never sees text twice.
    """

    def __init__(
        self,
        catalog: ModelCatalog,
        providers: Mapping[str, ChatProvider],
        *,
        strict_by_default: bool,
        limits: Limits,
        admission: Admission | None = None,
        on_attempt: AttemptHook | None = None,
        trace_attempt: AttemptSpan | None = None,
        limiter: Limiter | None = None,
        default_quota: Quota | None = None,
    ) -> None:
        missing = sorted({m.provider for m in catalog} - set(providers))
        if missing:
            raise ValueError(f"models name providers that are not configured: {', '.join(missing)}")
        self.catalog = catalog
        self.providers = dict(providers)
        self.strict_by_default = strict_by_default
        self.limits = limits
        self.admission = admission or Admission(0)
        self._on_attempt = on_attempt
        self._trace_attempt = trace_attempt
        self.limiter = limiter
        self.default_quota = default_quota or Quota()
        self._watchdog = Watchdog()

    @property
    def max_choices(self) -> int:
        return self.limits.max_choices

    @property
    def ready(self) -> bool:
        """Every provider can take calls (a provider whose keys are all out makes the process unready)."""
        return all(provider.ready for provider in self.providers.values())

    async def aclose(self) -> None:
        """Releases every provider's connections."""
        for provider in self.providers.values():
            await provider.aclose()
        close_limiter = getattr(self.limiter, "aclose", None)  # a shared store's connections
        if close_limiter is not None:
            await close_limiter()

    def list_models(self, caller: Caller = ANONYMOUS) -> list[ModelInfo]:
        """The models this caller may use."""
        return [model for model in self.catalog if caller.may_use(model.id)]

    def get_model(self, name: str, caller: Caller = ANONYMOUS) -> ModelInfo:
        model = self.catalog.resolve(name)
        if not caller.may_use(model.id):  # as if it did not exist, like the models list
            raise ModelNotFound(f"The model `{name}` does not exist or you do not have access to it.", param="model")
        return model

    async def complete(
        self, request: Request, *, deadline: float | None = None, exchange: Exchange | None = None
    ) -> ChatResult:
        started = time.monotonic()
        exchange = exchange or internal()
        calls = self._prepare(request, deadline, exchange)

        async def run() -> chat_pb2.ChatCompletion:
            if len(calls) == 1:
                completion = await self._complete(calls[0])
            else:
                completion = merge_completions(await asyncio.gather(*(self._complete(c) for c in calls)))
            exchange.usage = completion.usage  # before the limiter settles
            return completion

        estimate = lambda: request.ByteSize() // 4 * len(calls)  # noqa: E731 (sized only for limited callers)
        completion = await self._bounded(run, exchange, estimate, calls[0].upstream)
        exchange.finish_reasons = tuple(FINISH_NAMES.get(c.finish_reason, "") for c in completion.choices)
        exchange.upstream_request_id = calls[0].upstream.request_id
        return ChatResult(completion, calls[0].report.items, calls[0].upstream, started)

    def stream(
        self, request: Request, *, deadline: float | None = None, exchange: Exchange | None = None
    ) -> ChatStream:
        exchange = exchange or internal()
        calls = self._prepare(request, deadline, exchange)
        self.admission.enter()
        include_usage = request.stream_options.include_usage
        batches = self._stream(calls[0]) if len(calls) == 1 else merge_streams([self._stream(c) for c in calls])
        batches = with_usage_policy(batches, include_usage, exchange)
        if self._limits_apply(exchange):
            batches = self._limited(batches, exchange, request.ByteSize() // 4 * len(calls), calls[0].upstream)
        return ChatStream(
            batches,
            calls[0].report,
            calls[0].upstream,
            expires=time.monotonic() + self.limits.request_timeout,
            deadline=deadline,
            on_close=self.admission.leave,
            overload_retry_after=self.limits.retry.computed_retry_after(1),
        )

    async def _complete(self, call: ProviderCall) -> chat_pb2.ChatCompletion:
        return await self._with_retries(call, self._complete_once)

    def _complete_once(self, attempt: ProviderCall) -> Awaitable[chat_pb2.ChatCompletion]:
        return self.providers[attempt.model.provider].complete(attempt)

    def _stream(self, call: ProviderCall) -> AsyncIterator[Batch]:
        return self._stream_with(call, self._open)  # no generator of its own: one hop less per batch

    async def _stream_with(
        self, call: ProviderCall, opener: Callable[[ProviderCall], Awaitable[tuple[AsyncIterator[B], B | None]]]
    ) -> AsyncIterator[B]:
        batches, first = await self._with_retries(call, opener)
        call.exchange.upstream_request_id = call.upstream.request_id
        try:
            if first is None:
                return
            yield first
            async for batch in batches:  # past the first byte: nothing is retried
                yield batch
        finally:
            await close(batches)

    async def _open(self, attempt: ProviderCall) -> tuple[AsyncIterator[Batch], Batch | None]:
        return await first_of(self.providers[attempt.model.provider].stream(attempt))

    async def _open_native(self, attempt: ProviderCall) -> tuple[AsyncIterator[bytes], bytes | None]:
        return await first_of(self._native(attempt).relay_stream(attempt))

    def _relay_once(self, attempt: ProviderCall) -> Awaitable[bytes]:
        return self._native(attempt).relay(attempt)

    def _native(self, call: ProviderCall) -> NativeProvider:
        provider = self.providers[call.model.provider]
        if not hasattr(provider, "relay"):
            raise ModelNotFound(
                f"The model `{call.model.id}` is not served by an upstream that speaks this API.", param="model"
            )
        return provider  # type: ignore[return-value]

    async def count_tokens(
        self, request: Request, *, deadline: float | None = None, exchange: Exchange | None = None
    ) -> tuple[int, str]:
        """The input tokens of ``request`` as it would be sent, and the model that would serve it."""
        exchange = exchange or internal()
        call = self._prepare(request, deadline, exchange)[0]
        self.admission.enter()
        try:
            tokens = await self._with_retries(call, self._count_once)
        finally:
            self.admission.leave()
        return tokens, exchange.model_served

    def _count_once(self, attempt: ProviderCall) -> Awaitable[int]:
        provider = self.providers[attempt.model.provider]
        if not isinstance(provider, TokenCounter):
            raise ModelNotFound(f"The upstream of `{attempt.model.id}` cannot count tokens.", param="model")
        return provider.count_tokens(attempt)

    # --- native requests (bytes through) -------------------------------------------

    async def relay(
        self, native: NativeRequest, *, strict: bool, deadline: float | None = None, exchange: Exchange | None = None
    ) -> RelayResult:
        """A native request, whole: the same model resolution, retries, limits and accounting as a chat call."""
        started = time.monotonic()
        exchange = exchange or internal()
        call = self._prepare_native(native, strict, deadline, exchange)
        body = await self._bounded(
            lambda: self._with_retries(call, self._relay_once), exchange, lambda: len(native.body) // 4, call.upstream
        )
        exchange.upstream_request_id = call.upstream.request_id
        return RelayResult(body, call.report.items, call.upstream, started)

    def relay_stream(
        self, native: NativeRequest, *, strict: bool, deadline: float | None = None, exchange: Exchange | None = None
    ) -> RelayStream:
        exchange = exchange or internal()
        call = self._prepare_native(native, strict, deadline, exchange)
        self.admission.enter()
        relayed = self._stream_with(call, self._open_native)
        if self._limits_apply(exchange):
            relayed = self._limited(relayed, exchange, len(native.body) // 4, call.upstream)
        return RelayStream(
            relayed,
            call.report,
            call.upstream,
            expires=time.monotonic() + self.limits.request_timeout,
            deadline=deadline,
            on_close=self.admission.leave,
            overload_retry_after=self.limits.retry.computed_retry_after(1),
        )

    async def _bounded(
        self, run: Callable[[], Awaitable[T]], exchange: Exchange, estimate: Callable[[], int], upstream: UpstreamInfo
    ) -> T:
        """A whole answer under its caller's limits, the in-flight limit and the request timeout."""
        ticket = await self._admit(exchange, estimate(), stream=False) if self._limits_apply(exchange) else None
        self.admission.enter()
        watched = self._watchdog.watch(self.limits.request_timeout)
        try:
            result = await run()
        except asyncio.CancelledError:
            if not self._watchdog.release(watched):
                raise
            raise UpstreamTimeout("The reply did not finish within the gateway's request timeout.") from None
        finally:
            self._watchdog.release(watched)
            self.admission.leave()
            await self._settle(ticket, exchange)
        if ticket is not None:
            upstream.headers.update(ticket.headers)
        return result

    # --- per-caller limits ---------------------------------------------------------

    def _limits_apply(self, exchange: Exchange) -> bool:
        """Whether this caller has limits (without any, a request costs nothing extra)."""
        return self.limiter is not None and (exchange.caller.quota or self.default_quota).active

    async def _admit(self, exchange: Exchange, estimate: int, *, stream: bool) -> Ticket | None:
        """Admits the request under its caller's limits (raising ``RateLimited``), before any upstream call."""
        if not self._limits_apply(exchange):
            return None
        assert self.limiter is not None
        quota = exchange.caller.quota or self.default_quota
        return await self.limiter.admit(exchange.caller.name, quota, estimate, stream=stream)

    async def _settle(self, ticket: Ticket | None, exchange: Exchange) -> None:
        """Charges the real usage (zero for a refused request) and releases a stream's lease."""
        if ticket is None or self.limiter is None:
            return
        usage = exchange.usage
        tokens = usage.prompt_tokens + usage.completion_tokens if usage is not None else 0
        cost = 0.0
        if ticket.quota.budget_usd and usage is not None:  # priced only when a budget needs it
            model = self.catalog.find(exchange.model_served)
            cost = model.prices.cost(usage) if model is not None and model.prices is not None else 0.0
        try:
            if tokens != ticket.estimate or cost:
                await self.limiter.settle(ticket, tokens, cost)
            if ticket.lease:
                await self.limiter.release(ticket)
        except Exception:  # a limiter store that went away must not turn an answer into an error
            log.warning("could not settle the usage of %s with the limiter", exchange.request_id, exc_info=True)

    async def _limited(
        self, batches: AsyncIterator[B], exchange: Exchange, estimate: int, upstream: UpstreamInfo
    ) -> AsyncIterator[B]:
        """A stream under its caller's limits: admitted (a lease held) before the upstream call,
        settled and released when it ends, however it ends."""
        ticket = await self._admit(exchange, estimate, stream=True)
        try:
            first = True
            async for batch in batches:
                if first and ticket is not None:  # the edges send headers after the first batch
                    upstream.headers.update(ticket.headers)
                first = False
                yield batch
        finally:
            await close(batches)
            await self._settle(ticket, exchange)

    def _prepare_native(
        self, native: NativeRequest, strict: bool, deadline: float | None, exchange: Exchange
    ) -> ProviderCall:
        exchange.model_asked = native.model
        if not native.model:
            raise InvalidRequest(
                "You must provide a model parameter.", param="model", code="missing_required_parameter"
            )
        if deadline is not None and deadline - time.monotonic() < MIN_DEADLINE:
            raise DeadlineExceeded("The request's deadline passed (or is too close) before it reached the upstream.")
        report = CompatReport(strict=strict)
        model = self._serving(self.catalog.resolve(native.model), report)
        if not exchange.caller.may_use(model.id):
            raise PermissionDenied(
                f"This gateway key may not use the model `{model.id}`.", param="model", code="model_access_denied"
            )
        call = ProviderCall(Request(model=native.model), model, report, deadline, exchange=exchange, native=native)
        self._native(call)  # fails now, not after admission, when the upstream cannot relay
        return call

    async def _with_retries(self, call: ProviderCall, run: Callable[[ProviderCall], Awaitable[T]]) -> T:
        """Runs ``run`` for each attempt: retries of the model, then each model of its fallback chain."""
        fallback = call.model.fallback
        chain = [call.model, *(self.catalog.resolve(name) for name in fallback)] if fallback else [call.model]
        for index, model in enumerate(chain):
            attempt = call if index == 0 else replace(call, model=model, attempt=1)
            while True:
                attempt.upstream.headers.clear()  # a failed attempt's headers must not reach the client
                call.exchange.attempts += 1
                end_span = self._trace_attempt(attempt) if self._trace_attempt is not None else None
                try:
                    result = await run(attempt)
                except BaseException as failure:
                    if end_span is not None:
                        end_span(failure.code if isinstance(failure, GatewayError) else type(failure).__name__)
                    if not isinstance(failure, GatewayError):
                        raise
                    error = failure
                    self._attempted(attempt, error.code)
                    wait = self.limits.retry.delay(attempt.attempt, error, attempt.deadline)
                    if wait is not None:
                        log.warning(
                            "attempt %d at %s failed (%s); retrying in %.2f s",
                            attempt.attempt,
                            attempt.model.id,
                            error.code,
                            wait,
                        )
                        await asyncio.sleep(wait)
                        attempt = replace(attempt, attempt=attempt.attempt + 1)
                        continue
                    if index + 1 < len(chain) and falls_back(error):
                        served_by = chain[index + 1].id
                        log.warning("%s failed (%s); falling back to %s", model.id, error.code, served_by)
                        call.report.note("model", f"{model.id} failed ({error.code}); {served_by} answered instead")
                        break
                    if isinstance(error, UpstreamOverloaded) and error.retry_after is None:
                        error.retry_after = self.limits.retry.computed_retry_after(attempt.attempt)
                    raise
                if end_span is not None:
                    end_span("ok")
                call.exchange.model_served = model.id
                return result
        raise AssertionError("unreachable: the last model's last attempt returns or raises")  # pragma: no cover

    def _attempted(self, attempt: ProviderCall, outcome: str) -> None:
        if self._on_attempt is not None:
            self._on_attempt(attempt, outcome)

    def _prepare(self, request: Request, deadline: float | None, exchange: Exchange) -> list[ProviderCall]:
        exchange.model_asked = request.model
        validate(request, self.limits.max_choices)
        if deadline is not None and deadline - time.monotonic() < MIN_DEADLINE:
            # Too close to be met by any upstream call: spending tokens on it would be waste.
            raise DeadlineExceeded("The request's deadline passed (or is too close) before it reached the upstream.")
        strict = request.compatibility == STRICT or (request.compatibility != LENIENT and self.strict_by_default)
        report = CompatReport(strict=strict)
        model = self._serving(self.catalog.resolve(request.model), report)
        if not exchange.caller.may_use(model.id):
            raise PermissionDenied(
                f"This gateway key may not use the model `{model.id}`.", param="model", code="model_access_denied"
            )
        n = request.n if request.HasField("n") else 1
        # All fan-out calls share one report, so each adjustment is listed once.
        return [ProviderCall(request, model, report, deadline, exchange=exchange) for _ in range(n)]

    def _serving(self, model: ModelInfo, report: CompatReport) -> ModelInfo:
        """A retired model is served by its successor (lenient, reported as `model=OLD->NEW`) or
        refused with `model_retired` naming the successor (strict)."""
        if not model.is_retired():
            return model
        successor = self.catalog.successor_of(model)
        if successor is None:
            if model.id not in _retired_warned:
                _retired_warned.add(model.id)
                log.warning("model %s was retired upstream on %s and has no successor", model.id, model.retired)
            return model
        if report.strict:
            raise ModelNotFound(
                f"The model `{model.id}` was retired on {model.retired}; use `{successor.id}` instead.",
                param="model",
                code="model_retired",
            )
        report.note(
            "model",
            f"{model.id} was retired on {model.retired}; {successor.id} answered instead",
            shown=f"{model.id}->{successor.id}",
        )
        return successor


async def first_of(batches: AsyncIterator[B]) -> tuple[AsyncIterator[B], B | None]:
    """Starts a stream and waits for its first batch: the last moment a retry is invisible."""
    try:
        return batches, await anext(batches, None)
    except BaseException:
        await close(batches)
        raise


async def close(batches: AsyncIterator[Any]) -> None:
    """Closes an async iterator that can be closed (an async generator releases its upstream)."""
    aclose = getattr(batches, "aclose", None)
    if aclose is not None:
        await aclose()


def validate(request: Request, max_choices: int) -> None:
    """Checks that hold whatever the upstream; the provider checks Claude's own rules."""
    if not request.model:
        raise InvalidRequest("You must provide a model parameter.", param="model", code="missing_required_parameter")
    if not request.messages:
        raise InvalidRequest(
            "`messages` must contain at least one message.", param="messages", code="missing_required_parameter"
        )
    for i, message in enumerate(request.messages):
        if message.role == chat_pb2.ROLE_UNSPECIFIED:
            raise InvalidRequest(f"messages[{i}] has no role.", param=f"messages[{i}].role")
    if request.HasField("n") and not 1 <= request.n <= max_choices:
        raise InvalidRequest(f"`n` must be between 1 and {max_choices} on this gateway.", param="n")
    for name in ("max_completion_tokens", "max_tokens"):
        if request.HasField(name) and getattr(request, name) < 1:
            raise InvalidRequest(f"`{name}` must be at least 1.", param=name)
    _check_range(request, "temperature", 0.0, 2.0)
    _check_range(request, "top_p", 0.0, 1.0)
    if request.HasField("top_k") and request.top_k < 0:
        raise InvalidRequest("`top_k` must not be negative.", param="top_k")


def _check_range(request: Request, name: str, low: float, high: float) -> None:
    if request.HasField(name) and not low <= getattr(request, name) <= high:
        raise InvalidRequest(f"`{name}` must be between {low:g} and {high:g}.", param=name)


def merge_completions(replies: Sequence[chat_pb2.ChatCompletion]) -> chat_pb2.ChatCompletion:
    """Joins fan-out replies into one completion with choices 0..n-1 and summed usage.

    Usage is the sum of every upstream call, because each one is billed.
    """
    merged = chat_pb2.ChatCompletion()
    merged.CopyFrom(replies[0])
    del merged.choices[:]
    for index, reply in enumerate(replies):
        choice = merged.choices.add()
        choice.CopyFrom(reply.choices[0])
        choice.index = index
    merged.usage.CopyFrom(sum_usage(r.usage for r in replies))
    return merged


def sum_usage(usages: object) -> chat_pb2.Usage:
    total = chat_pb2.Usage()
    for usage in usages:  # type: ignore[attr-defined]
        total.prompt_tokens += usage.prompt_tokens
        total.completion_tokens += usage.completion_tokens
        total.total_tokens += usage.total_tokens
        details = total.prompt_tokens_details
        details.cached_tokens += usage.prompt_tokens_details.cached_tokens
        details.cache_creation_tokens += usage.prompt_tokens_details.cache_creation_tokens
        details.cache_write_5m_tokens += usage.prompt_tokens_details.cache_write_5m_tokens
        details.cache_write_1h_tokens += usage.prompt_tokens_details.cache_write_1h_tokens
        total.completion_tokens_details.reasoning_tokens += usage.completion_tokens_details.reasoning_tokens
    return total


async def with_usage_policy(
    batches: AsyncIterator[Batch], include_usage: bool, exchange: Exchange
) -> AsyncIterator[Batch]:
    """Moves the usage that providers attach to finishing chunks into OpenAI's
    separate usage-only last chunk, or drops it when the client did not ask.
    The exchange gets the usage and finish reasons either way, for logs and metrics."""
    usages: list[chat_pb2.Usage] = []
    template: Chunk | None = None
    try:
        async for batch in batches:
            for chunk in batch:
                if isinstance(chunk, TextDelta):
                    continue  # content only: no usage, and the stream's identity came before
                if chunk.HasField("usage"):  # the finishing chunk of a choice
                    usages.append(chat_pb2.Usage())
                    usages[-1].CopyFrom(chunk.usage)
                    chunk.ClearField("usage")
                    exchange.usage = sum_usage(usages)
                    exchange.finish_reasons += tuple(
                        FINISH_NAMES.get(c.finish_reason, "") for c in chunk.choices if c.finish_reason
                    )
                if template is None and chunk.id:  # id, created and model hold for the whole stream
                    template = chunk
            yield batch
    finally:
        with contextlib.suppress(RuntimeError):
            await close(batches)
    if include_usage and template is not None:
        yield [Chunk(id=template.id, created=template.created, model=template.model, usage=sum_usage(usages))]


_DONE = object()


async def merge_streams(streams: Sequence[AsyncIterator[Batch]]) -> AsyncIterator[Batch]:
    """Interleaves fan-out streams as choices 0..n-1 of one completion.

    The first failure cancels every other stream and is raised; closing the
    merged stream closes them all.
    """
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=4 * len(streams))

    async def pump(index: int, stream: AsyncIterator[Batch]) -> None:
        try:
            async for items in stream:
                batch = as_chunks(items)  # fan-out is rare: its deltas become chunks to be renumbered
                for chunk in batch:
                    for choice in chunk.choices:
                        choice.index = index
                await queue.put(batch)
        except Exception as exc:
            await queue.put(exc)
        finally:
            await queue.put(_DONE)

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    identity: Chunk | None = None
    try:
        running = len(tasks)
        while running:
            item = await queue.get()
            if item is _DONE:
                running -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                assert isinstance(item, list)
                for chunk in item:
                    if not chunk.id:
                        continue  # a keep-alive
                    if identity is None:
                        identity = chunk
                    else:  # one id, time and model for the whole completion
                        chunk.id, chunk.created, chunk.model = identity.id, identity.created, identity.model
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for stream in streams:
            with contextlib.suppress(Exception):
                await close(stream)
