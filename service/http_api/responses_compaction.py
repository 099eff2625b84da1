"""Compaction on the Responses surface: `POST /v1/responses/compact`, and `context_management` on
`POST /v1/responses`, which compacts a conversation grown past a threshold before answering.

Claude writes the summary: the conversation goes upstream through the same pipeline as any request
(limits, retries, ledger), followed by an instruction to summarize it. The result is OpenAI's shape:
the user's own messages, then one `compaction` item that carries the summary, opaque to the client
(``codecs.openai_responses.compaction_item``). A later request that sends those items back instead
of the turns they replace continues the conversation with Claude reading the summary, and far
fewer input tokens. Anthropic's own compaction (a beta) is not used: the summary is the model's
answer, so it works the same for every model and upstream.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import orjson

from chatgate.v1 import chat_pb2
from service.codecs.openai_responses import ResponsesRequest, compaction_item, new_id, summarizing, user_messages
from service.codecs.responses_output import usage_json
from service.core import ChatService
from service.core.exchange import Caller, Exchange
from service.core.fanout import sum_usage
from service.core.provider import UpstreamInfo
from service.core.responses import Json

COMPACT_PATH = "/v1/responses/compact"
# Without a `compact_threshold`, a conversation is compacted past this share of the model's context.
DEFAULT_SHARE = 0.8


@dataclass(slots=True)
class Compaction:
    """A conversation compacted: the items that replace it, and what the summary cost."""

    items: list[Json]  # the user's messages, then the compaction item
    item: Json  # the compaction item itself
    usage: chat_pb2.Usage
    upstream: UpstreamInfo


async def conversation(chat: ChatService, turn: ResponsesRequest, caller: Caller) -> list[Json]:
    """Every item of the turn's conversation: the stored chain it continues (read once a turn: the
    turn's own recall reuses it), then its input."""
    return [*await chat.history(turn, caller), *turn.input_items]


async def summarize(
    chat: ChatService, turn: ResponsesRequest, items: list[Json], exchange: Exchange, deadline: float | None
) -> Compaction:
    """Claude's summary of ``items`` (a conversation), as the items that stand in for them."""
    standalone = replace(turn, input_items=items, previous_response_id=None, known_history=[])
    request = await chat.recall(standalone, exchange.caller)
    result = await chat.complete(summarizing(request), deadline=deadline, exchange=exchange)
    message = result.completion.choices[0].message if result.completion.choices else chat_pb2.ChatMessage()
    summary = "".join(part.text for part in message.content).strip()
    item = compaction_item(summary)
    return Compaction([*user_messages(items), item], item, result.completion.usage, result.upstream)


async def compact_if_due(
    chat: ChatService, turn: ResponsesRequest, exchange: Exchange, deadline: float | None
) -> Compaction | None:
    """`context_management`: when the conversation is estimated past the threshold, everything before
    this turn's last user message is compacted, and the turn continues from the compacted items."""
    if turn.compact_threshold is None:
        return None
    items = await conversation(chat, turn, exchange.caller)
    threshold = turn.compact_threshold or int(
        chat.get_model(turn.model, exchange.caller).context_window * DEFAULT_SHARE
    )
    if len(orjson.dumps(items)) // 4 <= threshold:  # about four bytes a token: an estimate, never a call
        return None
    current = max((i for i, item in enumerate(items) if is_user_message(item)), default=0)
    if current == 0:
        return None  # nothing before this turn to compact
    compaction = await summarize(chat, turn, items[:current], exchange, deadline)
    turn.compacted([*compaction.items, *items[current:]])
    return compaction


def is_user_message(item: Json) -> bool:
    return item.get("type") == "message" and item.get("role") == "user"


def add_usage(exchange: Exchange, compaction: Compaction | None) -> None:
    """The summary's tokens counted with the answer's, for the ledger."""
    if compaction is not None and exchange.usage is not None:
        exchange.usage = sum_usage([exchange.usage, compaction.usage])


def compacted_response(compaction: Compaction) -> bytes:
    """The body of `POST /v1/responses/compact` (`response.compaction`)."""
    body = {
        "id": new_id("resp_"),
        "object": "response.compaction",
        "created_at": int(time.time()),
        "output": compaction.items,
        "usage": usage_json(compaction.usage),
    }
    return orjson.dumps(body)
