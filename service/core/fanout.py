"""Fan-out (`n > 1`): one upstream call per choice, joined into one answer.

Each choice is billed upstream, so whatever ends the fan-out, the usage of every
choice that finished is recorded on the exchange. A failed choice cancels its
siblings at once: nothing keeps running (and billing) after the client has its error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence

from chatgate.v1 import chat_pb2

from .chunks import FINISH_NAMES, Batch, Chunk, TextDelta, as_chunks
from .exchange import Exchange
from .provider import ProviderCall
from .streams import close

Completion = chat_pb2.ChatCompletion


async def complete_all(
    calls: Sequence[ProviderCall], run: Callable[[ProviderCall], Awaitable[Completion]], exchange: Exchange
) -> Completion:
    """Every call at once in a task group; the first failure cancels the others and is raised.

    Before it is raised, the usage of the choices that did finish goes onto the exchange, so
    the ledger and the caller's limits count what the upstream billed."""
    replies: list[Completion | None] = [None] * len(calls)

    async def one(index: int, call: ProviderCall) -> None:
        replies[index] = await run(call)

    try:
        async with asyncio.TaskGroup() as group:
            for index, call in enumerate(calls):
                group.create_task(one(index, call))
    except BaseExceptionGroup as failed:
        raise first_failure(failed) from None
    finally:
        finished = [reply for reply in replies if reply is not None]
        if finished and len(finished) < len(replies):
            exchange.usage = sum_usage(reply.usage for reply in finished)
    return merge_completions([reply for reply in replies if reply is not None])


def first_failure(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The failure that ended the group: the first that is not a sibling's cancellation."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return first_failure(error)
        if not isinstance(error, asyncio.CancelledError):
            return error
    return group.exceptions[0]


def merge_completions(replies: Sequence[Completion]) -> Completion:
    """Joins fan-out replies into one completion with choices 0..n-1 and summed usage.

    Usage is the sum of every upstream call, because each one is billed.
    """
    if len(replies) == 1:
        return replies[0]
    merged = Completion()
    merged.CopyFrom(replies[0])
    del merged.choices[:]
    for index, reply in enumerate(replies):
        choice = merged.choices.add()
        choice.CopyFrom(reply.choices[0])
        choice.index = index
    merged.usage.CopyFrom(sum_usage(r.usage for r in replies))
    return merged


def sum_usage(usages: Iterable[chat_pb2.Usage]) -> chat_pb2.Usage:
    total = chat_pb2.Usage()
    for usage in usages:
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
