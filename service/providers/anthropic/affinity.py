"""Thinking affinity: a conversation with signed thinking goes back to the account that signed it.

Anthropic binds thinking blocks to the model and conversation, and on some models (Haiku 5.5)
to the account whose key produced them: sent with another account's key they are refused. A key
pool that spans accounts (`account=key` entries) must therefore send a request that carries
thinking to a key of the account that produced it. This module remembers, per signature, which
account answered with it, and finds the account again in a later request.

It reads raw bytes with one regular expression, so whole answers, stream events and native
request bodies are handled alike without parsing. It costs nothing in a pool without accounts:
the provider does not call it then. The memory is per process and bounded (the newest
signatures are kept); a conversation whose signatures this process never saw (another replica,
a restart) is sent like any other request, and the upstream's own answer decides.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from chatgate.v1 import chat_service_pb2
from service.transport import UpstreamResponse

# A JSON member `"signature": "..."`: thinking blocks in answers and requests, `signature_delta` events.
SIGNATURE = re.compile(rb'"signature"\s*:\s*"([^"\\]{16,})"')
TAIL = 48  # the signature's last characters identify it (signatures are long and random)
MAX_REMEMBERED = 50_000  # about 5 MB at most
CARRY = 16_384  # bytes kept from one read for a signature split across two reads
THINKING_BLOCKS = frozenset({"thinking", "redacted_thinking"})


class ThinkingAffinity:
    """Which account answered with each thinking signature, for the newest ``limit`` signatures."""

    def __init__(self, limit: int = MAX_REMEMBERED) -> None:
        self._origins: OrderedDict[bytes, str] = OrderedDict()
        self._limit = limit

    def remember(self, data: bytes, account: str) -> None:
        """Notes every signature in ``data`` (an answer, or part of a stream) as ``account``'s."""
        origins = self._origins
        for match in SIGNATURE.finditer(data):
            tail = match.group(1)[-TAIL:]
            origins[tail] = account
            origins.move_to_end(tail)
        while len(origins) > self._limit:
            origins.popitem(last=False)

    def account_in(self, body: bytes) -> str:
        """The account that produced the newest known signature in a request body ('' for none)."""
        return self._latest(match.group(1) for match in SIGNATURE.finditer(body))

    def account_of(self, request: chat_service_pb2.ChatCompletionRequest) -> str:
        """The same, for a translated request: its assistant turns' thinking blocks."""
        return self._latest(
            block.signature.encode() for message in request.messages for block in message.thinking_blocks
        )

    def _latest(self, signatures: Iterable[bytes]) -> str:
        found = ""
        for signature in signatures:
            found = self._origins.get(signature[-TAIL:], found)
        return found

    def watch(self, response: UpstreamResponse, account: str) -> UpstreamResponse:
        """``response``, its bytes noted for ``account`` as they are read."""
        return WatchedResponse(response, self, account)


class WatchedResponse:
    """An upstream response whose reads are scanned for signatures on their way through."""

    __slots__ = ("_account", "_affinity", "_response")

    def __init__(self, response: UpstreamResponse, affinity: ThinkingAffinity, account: str) -> None:
        self._response, self._affinity, self._account = response, affinity, account

    @property
    def status(self) -> int:
        return self._response.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    async def read(self) -> bytes:
        body = await self._response.read()
        if self._response.status == 200:
            self._affinity.remember(body, self._account)
        return body

    async def chunks(self) -> AsyncIterator[bytes]:
        carry = b""
        async for raw in self._response.chunks():
            seen = carry + raw
            if b'"signature' in seen:
                self._affinity.remember(seen, self._account)
                carry = seen[-CARRY:] if seen.rfind(b'"signature') > len(seen) - CARRY else b""
            else:
                carry = raw[-16:]  # enough to catch a `"signature` cut in two
            yield raw

    async def aclose(self) -> None:
        await self._response.aclose()


def strip_thinking(messages: Any) -> int:
    """Removes thinking blocks from the assistant turns of Messages-API ``messages`` (in place),
    for a request that cannot reach the account they are bound to; returns how many went."""
    removed = 0
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        if message.get("role") != "assistant" or not isinstance(content, list):
            continue
        kept = [b for b in content if not (isinstance(b, dict) and b.get("type") in THINKING_BLOCKS)]
        if len(kept) < len(content) and kept:  # a turn of thinking alone keeps it: it may not be empty
            removed += len(content) - len(kept)
            message["content"] = kept
    return removed
