"""Plain-ASGI helpers every HTTP surface shares: headers, a bounded body read, tracked sends, disconnects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from service.core.errors import RequestTooLarge
from service.core.exchange import Exchange

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
JSON_TYPE = b"application/json"


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class ClientGone(Exception):
    """The client disconnected before the request body arrived in full."""


async def read_body(receive: Receive, scope: Scope, limit: int) -> bytes:
    """Reads the body, refusing it with 413 before buffering more than ``limit`` bytes."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"The request body is larger than this gateway's limit of {limit} bytes.")
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"The request body is larger than this gateway's limit of {limit} bytes.")
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


class TrackedSend:
    """The ASGI ``send``, remembering how far the response got: the error boundary
    chooses a JSON error (nothing sent yet), an error frame (a stream started) or
    nothing (the answer is complete) from this.

    It also stamps the request id on the response and notes, for the exchange,
    the status, the bytes sent and when the first answer byte left."""

    __slots__ = ("also", "exchange", "finished", "send", "started")

    def __init__(self, send: Send, exchange: Exchange, also: bytes | None = None) -> None:
        self.send = send
        self.exchange = exchange
        self.started = self.finished = False
        self.also = also  # a dialect's own request id header, unless the answer already has one

    async def __call__(self, message: Message) -> None:
        exchange = self.exchange
        if message["type"] == "http.response.start":
            self.started = True
            exchange.status = str(message["status"])
            headers = [*message["headers"], (b"x-request-id", exchange.request_id.encode())]
            if self.also is not None and all(name != self.also for name, _ in headers):
                headers.append((self.also, exchange.request_id.encode()))
            message["headers"] = headers
        else:
            body = message.get("body", b"")
            if body:
                if not exchange.first_byte:
                    exchange.first_byte = time.monotonic()
                exchange.bytes_out += len(body)
            if not message.get("more_body", False):
                self.finished = True
        await self.send(message)


async def send_json(send: Send, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    raw = [(b"content-type", JSON_TYPE), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class DisconnectWatcher:
    """Cancels the request's task when the client disconnects, so the upstream
    call is abandoned at once, whether it is still waiting for the first token,
    streaming, or producing a whole reply.

    Once the reply is complete the watcher ends by itself: the server's ``receive``
    reports ``http.disconnect`` when the reply is complete or the connection is
    lost (uvicorn wakes it then). It is not cancelled, because a cancelled task
    keeps its ``CancelledError``, whose traceback holds the frames that refer back
    to this watcher, the request's task and the server's request cycle: a cycle
    of about 20 objects per request that only the garbage collector frees, and at
    64 concurrent requests those collections cost about a tenth of the CPU.
    """

    __slots__ = ("_task", "_watcher", "finished", "gone")

    def __init__(self, receive: Receive) -> None:
        self._task = asyncio.current_task()
        self.gone = False
        self.finished = False
        self._watcher = asyncio.create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if not self.finished and self._task is not None:
            self.gone = True
            self._task.cancel()

    def close(self) -> None:
        """Call before the last send: the server reports a disconnect once the reply is complete."""
        self.finished = True

    def abandon(self) -> None:
        """Stops watching now, for a request that ends without completing its reply."""
        self.finished = True
        self._watcher.cancel()
