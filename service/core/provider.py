"""The provider protocol: the one seam between the use case and an upstream API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from chatgate.v1 import chat_pb2, chat_service_pb2

from .chunks import Batch
from .compat import CompatReport
from .exchange import Exchange, internal
from .models import ModelInfo


@dataclass(slots=True)
class UpstreamInfo:
    """What the provider learned from the upstream response, for the edges."""

    # Headers safe to pass to the client (rate limits, upstream request id).
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds spent waiting on the upstream, for the gateway's own overhead.
    seconds: float = 0.0
    # The upstream's own id for the answer that was used.
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class NativeRequest:
    """A request in the upstream's own API, relayed as the client wrote it (bytes through).

    The use case reads nothing of the body but the model name; the provider swaps in
    the resolved model and sends the rest unchanged."""

    operation: str  # "messages" or "count_tokens"
    model: str  # as the client named it
    body: bytes
    stream: bool = False
    # Protocol headers the client sent for the upstream (its API version, betas).
    headers: tuple[tuple[str, str], ...] = ()
    # The query string the client sent (`beta=true`, as Claude Code sends), forwarded as is.
    query: str = ""


# What a call carries: a chat request to translate, or a native one to relay bytes through.
ProviderRequest = chat_service_pb2.ChatCompletionRequest | NativeRequest


@dataclass(slots=True)
class ProviderCall:
    """Everything a provider needs for one upstream call."""

    request: ProviderRequest
    model: ModelInfo
    report: CompatReport
    # `time.monotonic()` value after which the call must be abandoned, if any.
    deadline: float | None = None
    upstream: UpstreamInfo = field(default_factory=UpstreamInfo)
    # 1 for the first attempt at this model; retries before the first byte count up.
    attempt: int = 1
    # The client request this call serves: its id goes upstream, for correlation.
    exchange: Exchange = field(default_factory=internal)
    # The alias of the upstream key the latest attempt used (never the key), for metrics.
    key: str = ""
    # Whether the latest attempt was its key's half-open breaker probe.
    probe: bool = False
    # The models that may serve the request, in order (this one first); the use case falls back along it.
    chain: tuple[ModelInfo, ...] = ()
    # The retired model the chain's first model stands in for: reported once that model answered.
    replaces: ModelInfo | None = None
    # Serves the first model if the upstream, which lists it, answers 404 for it after all.
    stand_in: ModelInfo | None = None


class ChatProvider(Protocol):
    """An upstream that completes chats.

    ``complete`` returns one whole completion with a single choice (index 0).
    ``stream`` yields non-empty batches of chunks for a single choice (index 0),
    a batch being what one upstream read produced (never held back to fill it):
    the first chunk carries ``delta.role``, the last carries ``finish_reason`` and
    the whole call's ``usage``. A chunk with no choices and no usage is a
    keep-alive; one that only adds content may come as a ``TextDelta``. Either
    raises a ``GatewayError``; a stream that cannot reach its natural end raises
    rather than stopping early. Closing the stream iterator
    (or cancelling its task) must release the upstream request at once.
    """

    async def complete(self, call: ProviderCall) -> chat_pb2.ChatCompletion: ...

    def stream(self, call: ProviderCall) -> AsyncIterator[Batch]: ...

    async def aclose(self) -> None: ...


class NativeProvider(Protocol):
    """A provider that also relays requests in its upstream's own API, bytes through.

    ``relay`` returns the upstream's whole answer body; ``relay_stream`` yields the
    upstream's stream bytes as read. Both read usage and the stop reason off the answer
    into ``call.exchange`` for logs, metrics and accounting, and raise ``GatewayError``
    for an upstream refusal (before anything was sent) as the chat calls do, and for a
    failure inside a started stream after yielding the bytes that came before it.
    """

    async def relay(self, call: ProviderCall) -> bytes: ...

    def relay_stream(self, call: ProviderCall) -> AsyncIterator[bytes]: ...


@runtime_checkable
class TokenCounter(Protocol):
    """A provider that can count a request's input tokens without generating (Anthropic's
    `count_tokens`). Raises ``GatewayError`` as the chat calls do."""

    async def count_tokens(self, call: ProviderCall) -> int: ...
