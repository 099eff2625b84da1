"""Stored responses, as the Responses surface needs them (OpenAI's `store: true`).

The surface depends on this protocol; the store layer implements it over SQLite or
PostgreSQL (``service.store.responses``), so any replica can continue any response.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from chatgate.v1 import chat_service_pb2

Json = dict[str, Any]


class Turn(Protocol):
    """One Responses request as the pipeline's conversation steps see it (the codec makes it)."""

    @property
    def request(self) -> chat_service_pb2.ChatCompletionRequest:
        """The core request without its messages (they come with the history): its compatibility mode."""
        ...

    @property
    def store(self) -> bool: ...

    @property
    def previous_response_id(self) -> str | None: ...

    @property
    def input_items(self) -> list[Json]: ...

    # The stored conversation, once read (``ChatService.history``); None: not read yet.
    known_history: list[Json] | None

    def chat_request(
        self, history: Iterable[Json] = (), *, strict: bool = False
    ) -> chat_service_pb2.ChatCompletionRequest:
        """The core request: the stored conversation (``history``) in front of this turn's items."""
        ...


class ResponseArchive(Protocol):
    """Responses kept per caller until they expire. Lookups raise ``NotFound`` for a response that
    does not exist, expired, or belongs to another caller (the three look the same), and
    ``UpstreamUnavailable`` while the store cannot be reached."""

    async def save(self, caller: str, previous_id: str | None, input_items: list[Json], response: Json) -> bool:
        """Keeps a finished response; False (logged and counted) when the store is down."""
        ...

    async def history(self, response_id: str, caller: str) -> list[Json]:
        """The items a continuation of ``response_id`` starts from: every earlier input and output, in order."""
        ...

    async def get(self, response_id: str, caller: str) -> Json: ...

    async def input_items(self, response_id: str, caller: str) -> list[Json]: ...

    async def delete(self, response_id: str, caller: str) -> None: ...
