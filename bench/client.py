"""A minimal asyncio HTTP/1.1 keep-alive client: one write per request, chunk timestamps, little overhead.

It exists because per-chunk timing and a thousand concurrent streams from one
process need a client far cheaper than the gateway it measures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


def post(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "host: 127.0.0.1", f"content-length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Reply:
    status: int
    body: bytes
    started: float
    # (perf_counter, bytes) for each piece of body as it arrived.
    pieces: list[tuple[float, bytes]] = field(default_factory=list)

    def first(self, marker: bytes) -> float | None:
        """Seconds from sending to the first piece containing ``marker``."""
        return next((t - self.started for t, data in self.pieces if marker in data), None)


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
        return cls(reader, writer)

    def close(self) -> None:
        self.writer.close()

    async def request(
        self, raw: bytes, *, keep_pieces: bool = False, on_piece: Callable[[float, bytes], None] | None = None
    ) -> Reply:
        started = time.perf_counter()
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        headers = head.lower()
        reply = Reply(status, b"", started)
        if b"transfer-encoding: chunked" in headers:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
                data = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                now = time.perf_counter()
                if keep_pieces:
                    reply.pieces.append((now, data[:-2]))
                if on_piece is not None:
                    on_piece(now, data[:-2])
                parts.append(data[:-2])
            reply.body = b"".join(parts)
        else:
            length = int(headers.split(b"content-length: ")[1].split(b"\r\n")[0])
            reply.body = await self.reader.readexactly(length)
        return reply


async def closed_loop(port: int, raw: bytes, concurrency: int, seconds: float) -> tuple[float, int]:
    """Requests per second from ``concurrency`` connections each sending back to back; and the errors."""
    done = errors = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done, errors
        connection = await Connection.open(port)
        try:
            while time.perf_counter() < stop:
                reply = await connection.request(raw)
                if reply.status == 200:
                    done += 1
                else:
                    errors += 1
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - started), errors
