"""The same request gives the same answer over HTTP and gRPC: one core, two thin edges."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from chatgate.v1 import chat_pb2, chat_service_pb2_grpc
from service.codecs.openai_chat import FINISH_REASONS, request_from_json
from tests.support import MODEL

CASES: list[dict[str, Any]] = [
    {"messages": [{"role": "user", "content": "Parity please"}]},
    {
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Longer sim:words=30"}],
        "max_tokens": 20,
    },
    {"messages": [{"role": "user", "content": "Count: 1, 2, 3, 4"}], "stop": ["3"]},
    {
        "messages": [{"role": "user", "content": "Use it"}],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "parameters": {"type": "object", "properties": {"q": {"type": "string"}, "n": {"type": "integer"}}},
                },
            }
        ],
    },
    {"messages": [{"role": "user", "content": "Think first"}], "reasoning_effort": "low"},
]


def summary_from_sdk(reply: Any) -> dict[str, Any]:
    message = reply.choices[0].message
    return {
        "content": message.content,
        "finish": reply.choices[0].finish_reason,
        "tools": [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []],
        "usage": (reply.usage.prompt_tokens, reply.usage.completion_tokens),
    }


def summary_from_grpc(reply: chat_pb2.ChatCompletion) -> dict[str, Any]:
    message = reply.choices[0].message
    return {
        "content": "".join(p.text for p in message.content) if message.content else None,
        "finish": FINISH_REASONS[reply.choices[0].finish_reason],
        "tools": [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls],
        "usage": (reply.usage.prompt_tokens, reply.usage.completion_tokens),
    }


def summary_from_grpc_stream(chunks: list[chat_pb2.ChatCompletionChunk]) -> dict[str, Any]:
    content, tools, finish = "", {}, None
    for chunk in chunks:
        for choice in chunk.choices:
            content += choice.delta.content
            for call in choice.delta.tool_calls:
                entry = tools.setdefault(call.index, [call.function.name, ""])
                entry[1] += call.function.arguments
            finish = FINISH_REASONS[choice.finish_reason] or finish
    usage = chunks[-1].usage
    return {
        "content": content or None,
        "finish": finish,
        "tools": [(name, json.loads(arguments)) for name, arguments in tools.values()],
        "usage": (usage.prompt_tokens, usage.completion_tokens),
    }


@pytest.mark.parametrize("case", CASES, ids=["text", "system_max_tokens", "stop", "tools", "reasoning"])
def test_same_answer_over_both_protocols(
    case: dict[str, Any], client: openai.OpenAI, stub: chat_service_pb2_grpc.ChatCompletionServiceStub
) -> None:
    body = {"model": MODEL, **case}
    request, _, _ = request_from_json(body)
    http_reply = summary_from_sdk(client.chat.completions.create(**body))
    grpc_reply = summary_from_grpc(stub.CreateChatCompletion(request, timeout=10))
    request.stream_options.include_usage = True
    grpc_stream = summary_from_grpc_stream(list(stub.StreamChatCompletion(request, timeout=10)))
    assert http_reply == grpc_reply == grpc_stream
