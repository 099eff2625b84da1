"""The gRPC floor: chatgate.v1 unary and streaming calls on a bare grpc.aio server, one upstream call each.

python -m bench.floors.grpc_floor --port P --upstream URL --key KEY
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import orjson
import uvloop

from chatgate.v1 import chat_pb2, chat_service_pb2, chat_service_pb2_grpc

from .common import FINISH, Upstream, anthropic_body, events, now, text_of

ROLES = {chat_pb2.ROLE_SYSTEM: "system", chat_pb2.ROLE_USER: "user", chat_pb2.ROLE_ASSISTANT: "assistant"}
FINISH_ENUM = {
    "stop": chat_pb2.FINISH_REASON_STOP,
    "length": chat_pb2.FINISH_REASON_LENGTH,
    "tool_calls": chat_pb2.FINISH_REASON_TOOL_CALLS,
}


def upstream_body(request: chat_service_pb2.ChatCompletionRequest, stream: bool) -> dict[str, Any]:
    messages = [(ROLES.get(m.role, "user"), "".join(p.text for p in m.content)) for m in request.messages]
    return anthropic_body(request.model, request.max_tokens, messages, stream)


class Floor(chat_service_pb2_grpc.ChatCompletionServiceServicer):
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    async def CreateChatCompletion(self, request: Any, context: Any) -> chat_pb2.ChatCompletion:
        async with self.upstream.post(upstream_body(request, stream=False)) as response:
            reply = orjson.loads(await response.read())
        usage = reply["usage"]
        out = chat_pb2.ChatCompletion(id="chatcmpl-" + reply["id"], created=now(), model=reply["model"])
        choice = out.choices.add(index=0, finish_reason=FINISH_ENUM[FINISH.get(reply["stop_reason"], "stop")])
        choice.message.role = chat_pb2.ROLE_ASSISTANT
        choice.message.content.add(text=text_of(reply))
        out.usage.prompt_tokens, out.usage.completion_tokens = usage["input_tokens"], usage["output_tokens"]
        out.usage.total_tokens = usage["input_tokens"] + usage["output_tokens"]
        return out

    async def StreamChatCompletion(self, request: Any, context: Any) -> AsyncIterator[chat_pb2.ChatCompletionChunk]:
        async with self.upstream.post(upstream_body(request, stream=True)) as response:
            head = chat_pb2.ChatCompletionChunk(created=now())
            async for batch in events(response):
                for event in batch:
                    kind = event["type"]
                    if kind == "content_block_delta" and event["delta"]["type"] == "text_delta":
                        chunk = chat_pb2.ChatCompletionChunk(id=head.id, created=head.created, model=head.model)
                        chunk.choices.add(index=0).delta.content = event["delta"]["text"]
                        yield chunk
                    elif kind == "message_start":
                        head.id, head.model = "chatcmpl-" + event["message"]["id"], event["message"]["model"]
                    elif kind == "message_delta":
                        chunk = chat_pb2.ChatCompletionChunk(id=head.id, created=head.created, model=head.model)
                        reason = FINISH.get(event["delta"].get("stop_reason"), "stop")
                        chunk.choices.add(index=0, finish_reason=FINISH_ENUM[reason])
                        yield chunk


async def serve(port: int, upstream: Upstream) -> None:
    await upstream.start()
    server = grpc.aio.server()
    chat_service_pb2_grpc.add_ChatCompletionServiceServicer_to_server(Floor(upstream), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--key", required=True)
    options = parser.parse_args()
    uvloop.install()
    asyncio.run(serve(options.port, Upstream(options.upstream, options.key)))


if __name__ == "__main__":
    main()
