"""An upstream answer with no content blocks (`content: []`, e.g. Claude's immediate `end_turn`) is an
answer, not an error, on every surface, whole and streamed."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest

from service.core import ChatService, ModelCatalog
from service.providers.anthropic import CLAUDE_MODELS
from service.providers.anthropic.response import completion_from_message
from tests.inprocess import NO_RETRIES, FakeUpstreamClient, anthropic_provider, asgi_client

MESSAGE = {
    "id": "msg_empty",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5-20251001",
    "content": [],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 5, "output_tokens": 1},
}
STARTED = {**MESSAGE, "stop_reason": None}
STREAM = b"".join(
    [
        b"event: message_start\ndata: " + orjson.dumps({"type": "message_start", "message": STARTED}) + b"\n\n",
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn",'
        b'"stop_sequence":null},"usage":{"output_tokens":1}}\n\n',
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    ]
)
CHAT = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "Hi"}]}
RESPONSES = {"model": "claude-haiku-4-5", "input": "Hi"}


def test_an_empty_message_maps_to_an_empty_stop() -> None:
    completion = completion_from_message(MESSAGE)
    assert completion.choices[0].message.content[0].text == ""
    assert completion.usage.prompt_tokens == 5


def post(path: str, body: dict[str, object], stream: bool) -> httpx.Response:
    upstream = FakeUpstreamClient()
    upstream.reply(200, STREAM if stream else orjson.dumps(MESSAGE), stream=stream)
    chat = ChatService(
        ModelCatalog(CLAUDE_MODELS),
        {"anthropic": anthropic_provider(upstream)},
        strict_by_default=False,
        limits=NO_RETRIES,
    )

    async def scenario() -> httpx.Response:
        async with asgi_client(chat) as client:
            return await client.post(path, json={**body, "stream": stream} if stream else body)

    return asyncio.run(scenario())


def test_chat_completions_answers_an_empty_message() -> None:
    reply = post("/v1/chat/completions", CHAT, stream=False)
    assert reply.status_code == 200, reply.text
    choice = reply.json()["choices"][0]
    assert choice["message"]["content"] == "" and choice["finish_reason"] == "stop"


def test_responses_answers_an_empty_message_as_completed() -> None:
    reply = post("/v1/responses", RESPONSES, stream=False)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["status"] == "completed"
    texts = [part.get("text", "") for item in body["output"] for part in item.get("content", [])]
    assert "".join(texts) == ""


@pytest.mark.parametrize(("path", "body"), [("/v1/chat/completions", CHAT), ("/v1/responses", RESPONSES)])
def test_an_empty_streamed_message_completes(path: str, body: dict[str, object]) -> None:
    reply = post(path, body, stream=True)
    assert reply.status_code == 200
    if path == "/v1/chat/completions":
        assert '"error":{' not in reply.text and reply.text.endswith("data: [DONE]\n\n")
    else:
        assert "event: response.completed" in reply.text and "event: response.failed" not in reply.text
