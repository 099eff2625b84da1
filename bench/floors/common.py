"""What both floors share: the upstream call and the smallest translation that answers correctly."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import orjson

FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


class Upstream:
    """One pooled aiohttp session to Anthropic's Messages API (the simulator in the benchmark)."""

    def __init__(self, base_url: str, key: str) -> None:
        self.url = base_url.rstrip("/") + "/v1/messages"
        self.headers = {"x-api-key": key, "anthropic-version": "2023-06-01", "content-type": "application/json"}
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), skip_auto_headers=("User-Agent",))

    def post(self, body: dict[str, Any]) -> Any:
        assert self.session is not None
        return self.session.post(self.url, data=orjson.dumps(body), headers=self.headers)


def anthropic_body(model: str, max_tokens: int, messages: list[tuple[str, str]], stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens or 4096}
    system = [text for role, text in messages if role == "system"]
    if system:
        body["system"] = "\n".join(system)
    body["messages"] = [{"role": role, "content": text} for role, text in messages if role != "system"]
    if stream:
        body["stream"] = True
    return body


def text_of(message: dict[str, Any]) -> str:
    return "".join(block.get("text", "") for block in message["content"] if block["type"] == "text")


def now() -> int:
    return int(time.time())


async def events(response: Any) -> Any:
    """The upstream's SSE `data:` payloads, parsed, as whole events arrive (one list per read)."""
    buffer = b""
    async for piece in response.content.iter_any():
        buffer += piece
        *frames, buffer = buffer.split(b"\n\n")
        batch = []
        for frame in frames:
            for line in frame.split(b"\n"):
                if line.startswith(b"data:"):
                    batch.append(orjson.loads(line[5:]))
        if batch:
            yield batch
