"""The one request pipeline every operation goes through (docs/architecture.md draws it):

    plan:    resolve the model in one catalog snapshot, apply retirement, authorize every model
             that may serve (the fallbacks too), check the deadline
    admit:   this process's admission first (in flight, draining), then the caller's limits, so a
             request the process refuses never spends the caller's rpm or tpm
    attempt: the operation's upstream call, retried before the first byte, then each authorized
             fallback in turn
    settle:  the caller's limits charged with the real usage, the admission slot released
    record:  usage, finish reasons, the model that served and the upstream's id on the exchange,
             which the access log, metrics, trace and ledger read when the edge closes it

An operation (chat whole or streamed, native relay, token counting, Responses) supplies only
what differs: how one attempt calls the provider and what the answer reports.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from .admission import Admission
from .compat import CompatReport
from .errors import (
    DeadlineExceeded,
    GatewayError,
    ModelNotFound,
    PermissionDenied,
    RateLimited,
    UpstreamAuthFailed,
    UpstreamOverloaded,
    UpstreamTimeout,
)
from .exchange import Caller, Exchange
from .limits import Limiter, Quota, Ticket
from .models import ModelCatalog, ModelInfo
from .provider import ChatProvider, ProviderCall, ProviderRequest, UpstreamInfo
from .retry import RetryPolicy, falls_back
from .streams import UpstreamStream, close
from .watchdog import Watchdog

log = logging.getLogger("chatgate")
MIN_DEADLINE = 0.02  # seconds: a deadline closer than this is treated as already gone
_retired_warned: set[str] = set()
T = TypeVar("T")
B = TypeVar("B")
S = TypeVar("S", bound=UpstreamStream)  # type: ignore[type-arg]

AttemptHook = Callable[[ProviderCall, str], None]
# Starts a trace span for one upstream attempt and returns what ends it with the outcome.
AttemptSpan = Callable[[ProviderCall], Callable[[str], None]]
# Whether a model's provider can serve an operation (the native relay needs one that speaks its API).
Serves = Callable[[ModelInfo], bool]


@dataclass(frozen=True, slots=True)
class Limits:
    """How much a request may ask for and how long it may take, and how failures are retried."""

    max_choices: int
    request_timeout: float  # seconds for a whole request, streams included
    retry: RetryPolicy


@dataclass(slots=True)
class Plan:
    """One request, prepared: the catalog snapshot it reads from start to end, and the models
    that may serve it, in order, every one of them allowed to the caller."""

    request: ProviderRequest
    exchange: Exchange
    catalog: ModelCatalog
    chain: tuple[ModelInfo, ...]
    report: CompatReport
    deadline: float | None
    started: float = field(default_factory=time.monotonic)
    replaces: ModelInfo | None = None  # the retired model asked for, when its successor serves
    stand_in: ModelInfo | None = None  # serves a listed model the upstream answers 404 for after all

    @property
    def model(self) -> ModelInfo:
        return self.chain[0]

    def calls(self, count: int = 1) -> list[ProviderCall]:
        """The upstream calls this request makes (one per choice); they share one report."""
        return [
            ProviderCall(
                self.request,
                self.model,
                self.report,
                self.deadline,
                exchange=self.exchange,
                chain=self.chain,
                replaces=self.replaces,
                stand_in=self.stand_in,
            )
            for _ in range(count)
        ]


class Pipeline:
    """The steps every request takes, whatever its surface and operation."""

    def __init__(
        self,
        catalog: ModelCatalog,
        providers: Mapping[str, ChatProvider],
        *,
        limits: Limits,
        admission: Admission,
        limiter: Limiter | None,
        default_quota: Quota,
        on_attempt: AttemptHook | None,
        trace_attempt: AttemptSpan | None,
    ) -> None:
        self.catalog = catalog
        self.providers = dict(providers)
        self.limits = limits
        self.admission = admission
        self.limiter = limiter
        self.default_quota = default_quota
        self._on_attempt = on_attempt
        self._trace_attempt = trace_attempt
        self._watchdog = Watchdog()

    # --- plan -----------------------------------------------------------------------

    def plan(
        self,
        request: ProviderRequest,
        model_name: str,
        exchange: Exchange,
        *,
        strict: bool,
        deadline: float | None,
        serves: Serves | None = None,
    ) -> Plan:
        if deadline is not None and deadline - time.monotonic() < MIN_DEADLINE:
            # Too close to be met by any upstream call: spending tokens on it would be waste.
            raise DeadlineExceeded("The request's deadline passed (or is too close) before it reached the upstream.")
        catalog = self.catalog  # one snapshot: a refresh mid-request must not mix two tables
        report = CompatReport(strict=strict)
        asked = catalog.resolve(model_name)
        model = serving(catalog, asked, report)
        chain = authorized(catalog, model, exchange.caller)
        stand_in = catalog.stand_in(model)
        if stand_in is not None and not exchange.caller.may_use(stand_in.id):
            stand_in = None
        if serves is not None:
            if not serves(model):
                raise ModelNotFound(
                    f"The model `{model.id}` is not served by an upstream that speaks this API.", param="model"
                )
            if len(chain) > 1:
                chain = tuple(m for m in chain if serves(m))
        replaces = asked if model is not asked else None
        return Plan(request, exchange, catalog, chain, report, deadline, replaces=replaces, stand_in=stand_in)

    # --- admit, settle ----------------------------------------------------------------

    def _limits_apply(self, exchange: Exchange) -> bool:
        """Whether this caller has limits (without any, a request costs nothing extra)."""
        return self.limiter is not None and (exchange.caller.quota or self.default_quota).active

    async def _charge(self, exchange: Exchange, estimate: int, *, stream: bool) -> Ticket | None:
        """Admits the request under its caller's limits (raising ``RateLimited``), before any upstream call."""
        if not self._limits_apply(exchange):
            return None
        assert self.limiter is not None
        quota = exchange.caller.quota or self.default_quota
        return await self.limiter.admit(exchange.caller.name, quota, estimate, stream=stream)

    async def _settle(self, ticket: Ticket | None, plan: Plan) -> None:
        """Charges the real usage (zero for a refused request) and releases a stream's lease."""
        if ticket is None or self.limiter is None:
            return
        exchange = plan.exchange
        usage = exchange.usage
        tokens = usage.prompt_tokens + usage.completion_tokens if usage is not None else 0
        cost = 0.0
        if ticket.quota.budget_usd and usage is not None:  # priced only when a budget needs it
            prices = exchange.prices
            cost = prices.cost(usage) if prices is not None else 0.0
        try:
            if tokens != ticket.estimate or cost:
                await self.limiter.settle(ticket, tokens, cost)
            if ticket.lease:
                await self.limiter.release(ticket)
        except Exception:  # a limiter store that went away must not turn an answer into an error
            log.warning("could not settle the usage of %s with the limiter", exchange.request_id, exc_info=True)

    # --- a whole answer -----------------------------------------------------------------

    async def whole(
        self, plan: Plan, run: Callable[[], Awaitable[T]], estimate: Callable[[], int], upstream: UpstreamInfo
    ) -> T:
        """A whole answer: admitted, bounded by the request timeout, settled however it ends."""
        self.admission.enter()  # refused here, nothing is charged to the caller
        try:
            ticket = (
                await self._charge(plan.exchange, estimate(), stream=False)
                if self._limits_apply(plan.exchange)
                else None
            )
        except BaseException:
            self.admission.leave()
            raise
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
            await self._settle(ticket, plan)
        if ticket is not None:
            upstream.headers.update(ticket.headers)
        return result

    # --- a streamed answer --------------------------------------------------------------

    def streamed(
        self, plan: Plan, batches: AsyncIterator[B], estimate: int, kind: type[S], upstream: UpstreamInfo
    ) -> S:
        """A streamed answer: admitted now (the slot is released when the stream closes), its
        caller's limits charged as it starts and settled however it ends."""
        self.admission.enter()
        if self._limits_apply(plan.exchange):
            batches = self._limited(batches, plan, estimate, upstream)
        return kind(
            batches,
            plan.report,
            upstream,
            expires=time.monotonic() + self.limits.request_timeout,
            deadline=plan.deadline,
            on_close=self.admission.leave,
            overload_retry_after=self.limits.retry.computed_retry_after(1),
        )

    async def _limited(
        self, batches: AsyncIterator[B], plan: Plan, estimate: int, upstream: UpstreamInfo
    ) -> AsyncIterator[B]:
        """A stream under its caller's limits: admitted (a lease held) before the upstream call,
        settled and released when it ends, however it ends."""
        ticket = await self._charge(plan.exchange, estimate, stream=True)
        try:
            first = True
            async for batch in batches:
                if first and ticket is not None:  # the edges send headers after the first batch
                    upstream.headers.update(ticket.headers)
                first = False
                yield batch
        finally:
            await close(batches)
            await self._settle(ticket, plan)

    async def opened(
        self, call: ProviderCall, opener: Callable[[ProviderCall], Awaitable[tuple[AsyncIterator[B], B | None]]]
    ) -> AsyncIterator[B]:
        """One stream, opened with retries before its first batch; past it nothing is retried."""
        batches, first = await self.attempt(call, opener)
        call.exchange.upstream_request_id = call.upstream.request_id
        try:
            if first is None:
                return
            yield first
            async for batch in batches:
                yield batch
        finally:
            await close(batches)

    # --- attempt ------------------------------------------------------------------------

    async def attempt(self, call: ProviderCall, run: Callable[[ProviderCall], Awaitable[T]]) -> T:
        """Runs ``run`` for each attempt: retries of the model, then each authorized model of its
        fallback chain (the plan's, read from the request's catalog snapshot)."""
        chain = call.chain or (call.model,)
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
                    # Another route of the same model is there: it takes the request now, without a wait.
                    last_route = index + 1 == len(chain) or chain[index + 1].id != model.id
                    rerouted = not last_route and hands_off(error)
                    wait = None if rerouted else self.limits.retry.delay(attempt.attempt, error, attempt.deadline)
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
                    if model.id == chain[0].id and last_route and call.stand_in is not None and gone(error):
                        # Listed, but every route answers 404: retired after all; its successor serves.
                        return await self._stood_in(call, run, model, call.stand_in, error)
                    if index + 1 < len(chain) and self._moves_on(model, chain[index + 1], error, call):
                        break
                    if attempt.attempt > 1 or index > 0:  # retried, or fallen back: the client need not
                        error.retries_spent = True
                    if isinstance(error, UpstreamOverloaded) and error.retry_after is None:
                        error.retry_after = self.limits.retry.computed_retry_after(attempt.attempt)
                    raise
                if end_span is not None:
                    end_span("ok")
                if call.replaces is not None and model.id == chain[0].id:  # on whichever of its routes
                    retired_answered(call.replaces, model, call.report)
                call.exchange.model_served = model.id
                call.exchange.upstream = model.provider
                call.exchange.prices = model.route_prices
                return result
        raise AssertionError("unreachable: the last model's last attempt returns or raises")  # pragma: no cover

    async def _stood_in(
        self,
        call: ProviderCall,
        run: Callable[[ProviderCall], Awaitable[T]],
        model: ModelInfo,
        stand_in: ModelInfo,
        error: GatewayError,
    ) -> T:
        log.warning("the upstream lists %s but answered 404 for it; %s serves it", model.id, stand_in.id)
        if call.report.strict:
            raise ModelNotFound(
                f"The model `{model.id}` is no longer served upstream; use `{stand_in.id}` instead.",
                param="model",
                code="model_retired",
            ) from error
        retired = replace(model, retired=model.table_retired)
        return await self.attempt(
            replace(call, model=stand_in, chain=(stand_in,), attempt=1, replaces=retired, stand_in=None), run
        )

    @staticmethod
    def _moves_on(model: ModelInfo, following: ModelInfo, error: GatewayError, call: ProviderCall) -> bool:
        """Whether the next entry of the chain takes over after ``error``, reported when it does:
        another route of the same model (the failure was the route's), or a fallback model."""
        if following.id == model.id:
            if not hands_off(error):
                return False
            log.warning(
                "%s via %s failed (%s); trying it via %s", model.id, model.provider, error.code, following.provider
            )
            call.report.note(
                "route",
                f"{model.id} via {model.provider} failed ({error.code}); {following.provider} was tried next",
                shown=f"{model.provider}->{following.provider}",
            )
            return True
        if not falls_back(error):
            return False
        log.warning("%s failed (%s); falling back to %s", model.id, error.code, following.id)
        call.report.note("model", f"{model.id} failed ({error.code}); {following.id} answered instead")
        return True

    def _attempted(self, attempt: ProviderCall, outcome: str) -> None:
        if self._on_attempt is not None:
            self._on_attempt(attempt, outcome)


def gone(error: GatewayError) -> bool:
    """The upstream said the model does not exist (404), as it says of a retired one."""
    return isinstance(error, ModelNotFound) and error.upstream_status == 404


def authorized(catalog: ModelCatalog, model: ModelInfo, caller: Caller) -> tuple[ModelInfo, ...]:
    """The models that may serve a request for ``model``, in order: it, then its fallbacks.

    The caller must be allowed the model it asked for (or its successor); a fallback it is not
    allowed is left out of the chain, so a key limited to one model is never served another
    when that model fails: it gets the failure."""
    if not caller.may_use(model.id):
        raise PermissionDenied(
            f"This gateway key may not use the model `{model.id}`.", param="model", code="model_access_denied"
        )
    if not model.fallback:
        return catalog.on_routes(model)
    chain = [*catalog.on_routes(model)]
    for name in model.fallback:
        fallback = catalog.find(name)
        if fallback is not None and caller.may_use(fallback.id) and fallback not in chain:
            chain.extend(catalog.on_routes(fallback))
    return tuple(chain)


def hands_off(error: GatewayError) -> bool:
    """A failure of the route rather than of the request: another route of the same model may
    serve it (its own keys, region, quota and health). The upstream's refusal of the gateway's
    credentials counts too; a request it found invalid would be refused on every route."""
    return (
        falls_back(error)
        or isinstance(error, UpstreamAuthFailed | RateLimited)
        or (isinstance(error, PermissionDenied | ModelNotFound) and error.upstream_status is not None)
    )


def serving(catalog: ModelCatalog, model: ModelInfo, report: CompatReport) -> ModelInfo:
    """A retired model is served by its successor (lenient, reported as `model=OLD->NEW` once
    the successor answered) or refused with `model_retired` naming the successor (strict)."""
    if not model.is_retired():
        return model
    successor = catalog.successor_of(model)
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
    return successor  # reported once it answered (``retired_answered``): a failure is not a stand-in


def retired_answered(retired: ModelInfo, successor: ModelInfo, report: CompatReport) -> None:
    report.note(
        "model",
        f"{retired.id} was retired on {retired.retired}; {successor.id} answered instead",
        shown=f"{retired.id}->{successor.id}",
    )
