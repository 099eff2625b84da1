"""The operations the edges call, each a short recipe over the one pipeline (``pipeline.py``).

Every operation plans, admits, attempts, settles and records the same way; what differs is
how one attempt calls the provider (translate a chat request, or relay the client's native
bytes) and what the answer reports on the way out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

from chatgate.v1 import chat_pb2, chat_service_pb2

from .admission import Admission
from .chunks import FINISH_NAMES, Batch
from .compat import Adjustment
from .errors import InvalidRequest, ModelNotFound
from .exchange import ANONYMOUS, Caller, Exchange, internal
from .fanout import complete_all, merge_streams, with_usage_policy
from .limits import Limiter, Quota
from .models import ModelCatalog, ModelInfo
from .pipeline import AttemptHook, AttemptSpan, Limits, Pipeline, Plan
from .provider import ChatProvider, NativeProvider, NativeRequest, ProviderCall, TokenCounter, UpstreamInfo
from .responses import Json, ResponseArchive, Turn
from .streams import ChatStream, RelayStream, first_of, own_time_ms
from .validation import is_strict, validate

Request = chat_service_pb2.ChatCompletionRequest


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


class ChatService:
    """Chat completions, native relays and token counts, the same for every edge.

    Before the first byte a failed attempt is retried (``RetryPolicy``) and then,
    if the model has a fallback chain, tried on the next model the caller may use;
    after the first byte nothing is retried, so a client never sees text twice.
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
        archive: ResponseArchive | None = None,
    ) -> None:
        missing = sorted({m.provider for m in catalog} - set(providers))
        if missing:
            raise ValueError(f"models name providers that are not configured: {', '.join(missing)}")
        self.strict_by_default = strict_by_default
        self.archive = archive  # stored responses (`store: true`); None: none are kept
        self.pipeline = Pipeline(
            catalog,
            providers,
            limits=limits,
            admission=admission or Admission(0),
            limiter=limiter,
            default_quota=default_quota or Quota(),
            on_attempt=on_attempt,
            trace_attempt=trace_attempt,
        )

    # What the composition root and the edges read (the catalog is replaced on refresh).
    @property
    def catalog(self) -> ModelCatalog:
        return self.pipeline.catalog

    @catalog.setter
    def catalog(self, catalog: ModelCatalog) -> None:
        self.pipeline.catalog = catalog

    @property
    def providers(self) -> dict[str, ChatProvider]:
        return self.pipeline.providers

    @property
    def limits(self) -> Limits:
        return self.pipeline.limits

    @property
    def admission(self) -> Admission:
        return self.pipeline.admission

    @property
    def limiter(self) -> Limiter | None:
        return self.pipeline.limiter

    @property
    def max_choices(self) -> int:
        return self.pipeline.limits.max_choices

    def upstream_status(self) -> dict[str, object]:
        """Each upstream's state (keys by alias, breakers), for operators: never part of readiness,
        which is about this process, not the upstream every replica shares."""
        status: dict[str, object] = {}
        for name, provider in self.providers.items():
            describe = getattr(provider, "status", None)
            status[name] = describe() if describe is not None else {}
        return status

    async def aclose(self) -> None:
        """Releases every provider's connections."""
        for provider in self.providers.values():
            await provider.aclose()
        close_limiter = getattr(self.limiter, "aclose", None)  # a shared store's connections
        if close_limiter is not None:
            await close_limiter()

    def list_models(self, caller: Caller = ANONYMOUS) -> list[chat_pb2.Model]:
        """Every name this caller may use, one entry each: ids, aliases and the upstream's dated
        ids alike, as OpenAI's list carries aliases beside snapshots (clients validate a
        configured name against the list)."""
        return [model.to_proto(name) for model in self.catalog if caller.may_use(model.id) for name in model.names]

    def get_model(self, name: str, caller: Caller = ANONYMOUS) -> ModelInfo:
        model = self.catalog.resolve(name)
        if not caller.may_use(model.id):  # as if it did not exist, like the models list
            raise ModelNotFound(f"The model `{name}` does not exist or you do not have access to it.", param="model")
        return model

    def strict(self, request: Request) -> bool:
        return is_strict(request.compatibility, self.strict_by_default)

    # --- chat, translated ----------------------------------------------------------------

    async def complete(
        self, request: Request, *, deadline: float | None = None, exchange: Exchange | None = None
    ) -> ChatResult:
        exchange = exchange or internal()
        exchange.model_asked = request.model
        validate(request, self.max_choices)
        pipeline = self.pipeline
        plan = pipeline.plan(request, request.model, exchange, strict=self.strict(request), deadline=deadline)
        calls = plan.calls(request.n if request.HasField("n") else 1)

        async def run() -> chat_pb2.ChatCompletion:
            if len(calls) == 1:
                completion = await pipeline.attempt(calls[0], self._complete_once)
            else:
                completion = await complete_all(calls, lambda c: pipeline.attempt(c, self._complete_once), exchange)
            exchange.usage = completion.usage  # before the limiter settles
            return completion

        estimate = lambda: request.ByteSize() // 4 * len(calls)  # noqa: E731 (sized only for limited callers)
        upstream = calls[0].upstream
        completion = await pipeline.whole(plan, run, estimate, upstream)
        exchange.finish_reasons = tuple([FINISH_NAMES.get(c.finish_reason, "") for c in completion.choices[:]])
        exchange.upstream_request_id = upstream.request_id
        return ChatResult(completion, plan.report.items, upstream, plan.started)

    def stream(
        self, request: Request, *, deadline: float | None = None, exchange: Exchange | None = None
    ) -> ChatStream:
        exchange = exchange or internal()
        exchange.model_asked = request.model
        validate(request, self.max_choices)
        pipeline = self.pipeline
        plan = pipeline.plan(request, request.model, exchange, strict=self.strict(request), deadline=deadline)
        calls = plan.calls(request.n if request.HasField("n") else 1)
        if len(calls) == 1:  # no generator of its own: one hop less per batch
            batches: AsyncIterator[Batch] = pipeline.opened(calls[0], self._open)
        else:
            batches = merge_streams([pipeline.opened(call, self._open) for call in calls])
        batches = with_usage_policy(batches, request.stream_options.include_usage, exchange)
        return pipeline.streamed(plan, batches, request.ByteSize() // 4 * len(calls), ChatStream, calls[0].upstream)

    def _complete_once(self, attempt: ProviderCall) -> Awaitable[chat_pb2.ChatCompletion]:
        return self.providers[attempt.model.provider].complete(attempt)

    async def _open(self, attempt: ProviderCall) -> tuple[AsyncIterator[Batch], Batch | None]:
        return await first_of(self.providers[attempt.model.provider].stream(attempt))

    # --- a Responses turn: a chat call between the stored-conversation steps ------------

    async def history(self, turn: Turn, caller: Caller) -> list[Json]:
        """The stored conversation the turn continues ([] for a new one), read from the archive once."""
        if turn.known_history is None:
            found: list[Json] = []
            if turn.previous_response_id and self.archive is not None:
                found = await self.archive.history(turn.previous_response_id, caller.name)
            turn.known_history = found
        return turn.known_history

    async def recall(self, turn: Turn, caller: Caller) -> Request:
        """The step before planning: the stored conversation the turn continues, in front of its items."""
        return turn.chat_request(await self.history(turn, caller), strict=self.strict(turn.request))

    async def keep(self, turn: Turn, caller: Caller, response: Json) -> None:
        """The step after the answer: the finished response kept, when the turn asked for it (before the
        client hears the answer is complete, so a continuation at once finds it)."""
        if turn.store and self.archive is not None:
            await self.archive.save(caller.name, turn.previous_response_id, turn.input_items, response)

    async def respond(
        self,
        turn: Turn,
        render: Callable[[ChatResult], Json],
        *,
        deadline: float | None = None,
        exchange: Exchange | None = None,
    ) -> tuple[ChatResult, Json]:
        """A whole Responses turn: recall, the chat pipeline, the surface's rendering, keep."""
        exchange = exchange or internal()
        request = await self.recall(turn, exchange.caller)
        result = await self.complete(request, deadline=deadline, exchange=exchange)
        response = render(result)
        await self.keep(turn, exchange.caller, response)
        return result, response

    # --- token counting ------------------------------------------------------------------

    async def count_tokens(
        self, request: Request, *, deadline: float | None = None, exchange: Exchange | None = None
    ) -> tuple[int, str]:
        """The input tokens of ``request`` as it would be sent, and the model that would serve it.

        Admitted, limited (one request, no tokens: nothing is generated) and timed out like any call."""
        exchange = exchange or internal()
        exchange.model_asked = request.model
        validate(request, self.max_choices)
        pipeline = self.pipeline
        plan = pipeline.plan(request, request.model, exchange, strict=self.strict(request), deadline=deadline)
        call = plan.calls()[0]
        tokens = await pipeline.whole(plan, lambda: pipeline.attempt(call, self._count_once), lambda: 0, call.upstream)
        return tokens, exchange.model_served

    def _count_once(self, attempt: ProviderCall) -> Awaitable[int]:
        provider = self.providers[attempt.model.provider]
        if not isinstance(provider, TokenCounter):
            raise ModelNotFound(f"The upstream of `{attempt.model.id}` cannot count tokens.", param="model")
        return provider.count_tokens(attempt)

    # --- native requests (bytes through: the identity translator) -----------------------

    async def relay(
        self, native: NativeRequest, *, strict: bool, deadline: float | None = None, exchange: Exchange | None = None
    ) -> RelayResult:
        """A native request, whole: the same pipeline as a chat call; the answer passes through."""
        exchange = exchange or internal()
        plan = self._native_plan(native, strict, deadline, exchange)
        call = plan.calls()[0]
        pipeline = self.pipeline
        body = await pipeline.whole(
            plan, lambda: pipeline.attempt(call, self._relay_once), lambda: len(native.body) // 4, call.upstream
        )
        exchange.upstream_request_id = call.upstream.request_id
        return RelayResult(body, plan.report.items, call.upstream, plan.started)

    def relay_stream(
        self, native: NativeRequest, *, strict: bool, deadline: float | None = None, exchange: Exchange | None = None
    ) -> RelayStream:
        exchange = exchange or internal()
        plan = self._native_plan(native, strict, deadline, exchange)
        call = plan.calls()[0]
        relayed = self.pipeline.opened(call, self._open_native)
        return self.pipeline.streamed(plan, relayed, len(native.body) // 4, RelayStream, call.upstream)

    def _native_plan(self, native: NativeRequest, strict: bool, deadline: float | None, exchange: Exchange) -> Plan:
        exchange.model_asked = native.model
        if not native.model:
            raise InvalidRequest(
                "You must provide a model parameter.", param="model", code="missing_required_parameter"
            )
        return self.pipeline.plan(native, native.model, exchange, strict=strict, deadline=deadline, serves=self._relays)

    def _relays(self, model: ModelInfo) -> bool:
        """Whether the model's upstream speaks the native API (fails before admission when it does not)."""
        return hasattr(self.providers[model.provider], "relay")

    def _native(self, call: ProviderCall) -> NativeProvider:
        provider = self.providers[call.model.provider]
        assert hasattr(provider, "relay")  # planned with `_relays`
        return provider  # type: ignore[return-value]

    def _relay_once(self, attempt: ProviderCall) -> Awaitable[bytes]:
        return self._native(attempt).relay(attempt)

    async def _open_native(self, attempt: ProviderCall) -> tuple[AsyncIterator[bytes], bytes | None]:
        return await first_of(self._native(attempt).relay_stream(attempt))
