"""A scripted provider: replies, streams and failures given up front.

It is the second implementation of ``ChatProvider``: core and edge tests run
on it without sockets, and it keeps the interface from becoming Anthropic-shaped.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from chatgate.v1 import chat_pb2
from service.core import ProviderCall

Step = chat_pb2.ChatCompletionChunk | list[chat_pb2.ChatCompletionChunk] | Exception | float


@dataclass
class ScriptedProvider:
    """``completion`` answers ``complete``; ``steps`` drive ``stream``: a chunk is
    yielded as a batch of one, a list as one batch, an exception raised (a
    ``GatewayError``, or any other to play a bug), a float slept (seconds).
    ``calls`` records every call."""

    completion: chat_pb2.ChatCompletion | Exception | None = None
    steps: Sequence[Step] = ()
    calls: list[ProviderCall] = field(default_factory=list)
    opened_streams: int = 0
    closed_streams: int = 0

    async def complete(self, call: ProviderCall) -> chat_pb2.ChatCompletion:
        self.calls.append(call)
        if isinstance(self.completion, Exception):
            raise self.completion
        if self.completion is None:
            raise AssertionError("no completion scripted")
        reply = chat_pb2.ChatCompletion()
        reply.CopyFrom(self.completion)
        return reply

    async def stream(self, call: ProviderCall) -> AsyncIterator[list[chat_pb2.ChatCompletionChunk]]:
        self.calls.append(call)
        self.opened_streams += 1
        try:
            for step in self.steps:
                if isinstance(step, Exception):
                    raise step
                if isinstance(step, float):
                    await asyncio.sleep(step)
                    continue
                batch = []
                for original in step if isinstance(step, list) else [step]:
                    chunk = chat_pb2.ChatCompletionChunk()
                    chunk.CopyFrom(original)
                    batch.append(chunk)
                yield batch
        finally:
            self.closed_streams += 1

    async def aclose(self) -> None:
        return None
