"""In-process wiring for edge and provider tests: a fake upstream client, the Anthropic
provider over it, the scripted provider, and both edges without subprocesses."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from chatgate.v1 import chat_pb2
from service.core import ChatProvider, ChatService, Limits, ModelCatalog, ModelInfo, RetryPolicy
from service.core.auth import KeyChecker
from service.core.lifecycle import Lifecycle
from service.http_api import HttpSettings, create_app
from service.providers.anthropic import CLAUDE_MODELS, AnthropicProvider, AnthropicSettings
from service.providers.scripted import ScriptedProvider
from service.transport import Timeouts, TransportError
from service.transport.keys import BreakerSettings
from tests.support import FIXTURES

MAX_BODY = 1024 * 1024


@dataclass
class FakeResponse:
    """An upstream reply given up front: status, headers, and the body in reads."""

    status: int
    headers: Mapping[str, str]
    reads: Sequence[bytes | TransportError]
    stream: bool | None = None  # answers only streamed (True) or whole (False) requests; None: either
    closed: bool = False
    readers: list[AsyncGenerator[bytes, None]] = field(default_factory=list)  # what `chunks` handed out

    async def read(self) -> bytes:
        body = b""
        async for data in self._reads():
            body += data
        return body

    def chunks(self) -> AsyncIterator[bytes]:
        reader = self._reads()
        self.readers.append(reader)
        return reader

    async def _reads(self) -> AsyncGenerator[bytes, None]:
        for read in self.reads:
            if isinstance(read, TransportError):
                raise read
            yield read

    async def aclose(self) -> None:
        self.closed = True


@dataclass
class FakeUpstreamClient:
    """An ``UpstreamClient`` that answers from a queue of replies and records what it was sent."""

    replies: list[FakeResponse] = field(default_factory=list)
    sent: list[tuple[str, bytes, Mapping[str, str]]] = field(default_factory=list)
    responses: list[FakeResponse] = field(default_factory=list)

    def reply(
        self,
        status: int,
        body: bytes,
        *,
        reads: int = 1,
        headers: Mapping[str, str] | None = None,
        stream: bool | None = None,
    ) -> None:
        step = max(1, len(body) // reads)
        parts = [body[i : i + step] for i in range(0, len(body), step)] or [b""]
        self.replies.append(FakeResponse(status, {"request-id": "req_fake", **(headers or {})}, parts, stream))

    def reply_fixture(self, name: str, *, reads: int = 1) -> None:
        self.reply(200, (FIXTURES / name).read_bytes(), reads=reads, stream=name.endswith(".sse"))

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeouts: Timeouts) -> FakeResponse:
        self.sent.append((url, body, headers))
        streamed = bool(orjson.loads(body).get("stream"))
        index = next(i for i, r in enumerate(self.replies) if r.stream in (None, streamed))
        response = self.replies.pop(index)
        self.responses.append(response)
        return response

    async def aclose(self) -> None:
        return None


def anthropic_provider(client: FakeUpstreamClient, keys: tuple[str, ...] = ("sk-ant-fake",)) -> AnthropicProvider:
    settings = AnthropicSettings(
        name="anthropic",
        base_url="http://upstream.invalid",
        api_keys=keys,
        timeouts=Timeouts(connect=1, read=5, pool=1),
        first_byte_timeout=5,
        breaker=BreakerSettings(failures=5, cooldown=30),
        max_connections=10,
        client="aiohttp",
    )
    return AnthropicProvider(settings, client=client)


NO_RETRIES = Limits(max_choices=4, request_timeout=60, retry=RetryPolicy(1, 0.0, 0.0, 0.0))


def limits(attempts: int = 1) -> Limits:
    return Limits(max_choices=4, request_timeout=60, retry=RetryPolicy(attempts, 0.0, 0.0, 0.0))


HOUSE_MODEL = ModelInfo("house-model", "house-model-v1", "House model", 1000, provider="house", owned_by="us")


def routed_chat(anthropic: ChatProvider, house: ChatProvider) -> ChatService:
    """The Anthropic provider and a second one, registered under another name, with a model routed to it."""
    catalog = ModelCatalog([*CLAUDE_MODELS, HOUSE_MODEL])
    return ChatService(catalog, {"anthropic": anthropic, "house": house}, strict_by_default=False, limits=NO_RETRIES)


def scripted_chat(provider: ScriptedProvider, attempts: int = 1) -> ChatService:
    return ChatService(
        ModelCatalog(CLAUDE_MODELS), {"anthropic": provider}, strict_by_default=False, limits=limits(attempts)
    )


def asgi_client(chat: ChatService, keys: Sequence[str] = ()) -> httpx.AsyncClient:
    lifecycle = Lifecycle()
    lifecycle.started = True
    app = create_app(chat, KeyChecker(keys), lifecycle, HttpSettings(max_body_bytes=MAX_BODY))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test")


def text_chunks(text: str, *, model: str = "claude-haiku-4-5") -> list[chat_pb2.ChatCompletionChunk]:
    """What a provider streams for a plain text reply: role, one chunk per word, finish with usage."""

    def chunk(delta: chat_pb2.Delta, reason: int = 0) -> chat_pb2.ChatCompletionChunk:
        choice = chat_pb2.ChunkChoice(index=0, delta=delta, finish_reason=reason)  # type: ignore[arg-type]
        return chat_pb2.ChatCompletionChunk(id="chatcmpl-s", created=1, model=model, choices=[choice])

    chunks = [chunk(chat_pb2.Delta(role=chat_pb2.ROLE_ASSISTANT))]
    chunks += [chunk(chat_pb2.Delta(content=word)) for word in words(text)]
    last = chunk(chat_pb2.Delta(), chat_pb2.FINISH_REASON_STOP)
    last.usage.CopyFrom(chat_pb2.Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5))
    return [*chunks, last]


def words(text: str) -> Iterator[str]:
    parts = text.split(" ")
    for i, part in enumerate(parts):
        yield part if i == len(parts) - 1 else part + " "


def text_completion(text: str, *, model: str = "claude-haiku-4-5") -> chat_pb2.ChatCompletion:
    message = chat_pb2.ChatMessage(role=chat_pb2.ROLE_ASSISTANT, content=[chat_pb2.ContentPart(text=text)])
    return chat_pb2.ChatCompletion(
        id="chatcmpl-s",
        created=1,
        model=model,
        choices=[chat_pb2.Choice(index=0, message=message, finish_reason=chat_pb2.FINISH_REASON_STOP)],
        usage=chat_pb2.Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5),
    )


def fixture_path(name: str) -> Path:
    return FIXTURES / name
