"""The neutral OpenAI Chat codec, both directions: what one side writes, the other reads back unchanged."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from chatgate.v1 import chat_pb2, chat_service_pb2
from service.codecs.openai_chat import OPTION_FIELDS, _read_options, chunk_json, completion_json, request_from_json
from service.core.chunks import TextDelta, as_chunk
from service.core.errors import InvalidRequest
from tests.codecs.openai_upstream import chunk_from_json, completion_from_json, request_to_json
from tests.support import FIXTURES

RICH_REQUEST: dict[str, Any] = {
    "model": "claude-haiku-4-5",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {
            "role": "developer",
            "content": [{"type": "text", "text": "Cache me", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        },
        {
            "role": "user",
            "name": "ann",
            "content": [
                {"type": "text", "text": "Look"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "high"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}],
            "thinking_blocks": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ],
    "max_completion_tokens": 100,
    "max_tokens": 90,
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 40,
    "stop": ["END", "STOP"],
    "n": 2,
    "stream_options": {"include_usage": True},
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "f",
                "description": "d",
                "parameters": {"type": "object", "properties": {}},
                "strict": True,
            },
            "cache_control": {"type": "ephemeral"},
        }
    ],
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "parallel_tool_calls": False,
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "s", "schema": {"type": "object"}, "strict": True},
    },
    "reasoning_effort": "high",
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "user": "u-1",
    "compatibility": "strict",
    "seed": 7,
    "logprobs": True,
    "top_logprobs": 2,
    "logit_bias": {"50256": -100},
    "presence_penalty": 0.1,
    "frequency_penalty": 0.2,
    "store": False,
    "metadata": {"team": "a"},
    "service_tier": "auto",
    "modalities": ["text"],
    "audio": {"voice": "x"},
    "prediction": {"type": "content", "content": "y"},
}


@pytest.mark.parametrize("stream", [False, True])
def test_a_request_survives_both_directions(stream: bool) -> None:
    request, streamed, ignored = request_from_json({**RICH_REQUEST, "stream": stream})
    assert streamed == stream and ignored == []
    body = request_to_json(request, stream=stream)
    again, streamed_again, _ = request_from_json(orjson.loads(orjson.dumps(body)))
    assert again == request and streamed_again == stream


@pytest.mark.parametrize("choice", ["auto", "none", "required"])
def test_tool_choice_modes_survive(choice: str) -> None:
    request, _, _ = request_from_json({**RICH_REQUEST, "tool_choice": choice})
    assert request_from_json(request_to_json(request))[0] == request


@pytest.mark.parametrize("name", ["text", "parallel_tools", "refusal", "thinking_text", "several_text_blocks"])
def test_a_completion_survives_both_directions(name: str) -> None:
    from service.providers.anthropic.response import completion_from_message

    completion = completion_from_message(orjson.loads((FIXTURES / f"{name}.json").read_bytes()))
    assert completion_from_json(orjson.loads(orjson.dumps(completion_json(completion)))) == completion


@pytest.mark.parametrize("name", ["text", "parallel_tools", "thinking_tool", "cache_usage", "tool_no_arguments"])
def test_stream_chunks_survive_both_directions(name: str) -> None:
    from service.providers.anthropic.stream import StreamTranslator
    from service.transport import SSEDecoder

    translator = StreamTranslator()
    items = [
        translator.feed(event.event, event.data) for event in SSEDecoder().feed((FIXTURES / f"{name}.sse").read_bytes())
    ]
    chunks = [
        chunk for item in items if item is not None and ((chunk := as_chunk(item)).choices or chunk.HasField("usage"))
    ]
    assert chunks
    for chunk in chunks:
        assert chunk_from_json(orjson.loads(orjson.dumps(chunk_json(chunk)))) == chunk


def test_enum_strings_outside_the_closed_sets_name_the_param() -> None:
    bad = {**RICH_REQUEST, "tools": [{"type": "web_search", "function": {"name": "f"}}]}
    with pytest.raises(InvalidRequest) as caught:
        request_from_json(bad)
    assert caught.value.param == "tools[0].type"


def test_a_usage_only_chunk_reads_back() -> None:
    usage = chat_pb2.Usage(
        prompt_tokens=5,
        completion_tokens=3,
        total_tokens=8,
        prompt_tokens_details=chat_pb2.PromptTokensDetails(cached_tokens=2, cache_creation_tokens=1),
        completion_tokens_details=chat_pb2.CompletionTokensDetails(reasoning_tokens=1),
    )
    chunk = chat_pb2.ChatCompletionChunk(id="c", created=1, model="m", usage=usage)
    assert chunk_from_json(chunk_json(chunk)) == chunk


@pytest.mark.parametrize("text", ["Hello", "", 'quote " back \\ slash', "line\nbreak\ttab", "é 😀 \u2028", "\x00\x1f"])
def test_the_text_delta_frame_is_exactly_the_general_one(text: str) -> None:
    from service.http_api.openai_chat import frame

    identity = chat_pb2.ChatCompletionChunk(id='chatcmpl-"x"', created=1700000000, model="claude-haiku-4-5")
    identity.choices.add()
    delta = TextDelta(identity, text, index=2)
    chunk = delta.to_chunk()
    assert chunk.choices[0].index == 2 and chunk.choices[0].delta.content == text and chunk.id == identity.id
    assert frame(delta) == frame(chunk) == b"data: " + orjson.dumps(chunk_json(chunk)) + b"\n\n"


def test_text_delta_frames_of_interleaved_streams_keep_their_own_identity() -> None:
    from service.http_api.openai_chat import frame

    deltas = []
    for n, (cid, model, index) in enumerate([("a", "m1", 0), ("b", "m1", 0), ("a", "m2", 0), ("a", "m1", 1)] * 2):
        identity = chat_pb2.ChatCompletionChunk(id=cid, created=1700000000 + n % 2, model=model)
        identity.choices.add()
        deltas.append(TextDelta(identity, f"t{n}", index=index))
    for delta in deltas:
        assert frame(delta) == b"data: " + orjson.dumps(chunk_json(delta.to_chunk())) + b"\n\n"


class Probed(dict[str, Any]):
    """A body that notes every key a reader asks about."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return super().__contains__(key)


def test_the_options_reader_asks_only_for_fields_the_skip_knows() -> None:
    """`request_from_json` skips `_read_options` for a body with none of OPTION_FIELDS: every field
    that reader asks for must be among them, or a request with only that field would lose it."""
    body = Probed()
    _read_options(body, chat_service_pb2.ChatCompletionRequest())
    assert body.asked and body.asked <= OPTION_FIELDS


# Fields that cannot sit in the rich request beside the others (`functions` beside `tools`, say).
OTHER_OPTIONS: dict[str, Any] = {
    "functions": [{"name": "g", "parameters": {"type": "object", "properties": {}}}],
    "function_call": "auto",
    "moderation": {"model": "omni"},
    "prompt_cache_options": {"mode": "explicit", "ttl": "1h"},
    "web_search_options": {"search_context_size": "low", "user_location": {"approximate": {"city": "Oslo"}}},
}


@pytest.mark.parametrize("field", sorted(OPTION_FIELDS))
def test_each_option_alone_is_read(field: str) -> None:
    """Each optional field, sent as the only option, is read: none is lost to the skip."""
    value = RICH_REQUEST[field] if field in RICH_REQUEST else OTHER_OPTIONS[field]
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    alone, _, ignored = request_from_json({**base, field: value})
    assert ignored == []
    assert alone != request_from_json(base)[0], f"{field} was not read"
    if field in RICH_REQUEST:  # read alone exactly as among all the others
        rich, _, _ = request_from_json(RICH_REQUEST)
        for descriptor, read in alone.ListFields():
            if descriptor.name not in ("model", "messages"):
                assert read == getattr(rich, descriptor.name), descriptor.name


@pytest.mark.parametrize(
    "message",
    [
        {"role": "user", "name": "ann"},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "assistant", "content": "x", "thinking_blocks": [{"type": "redacted_thinking", "data": "d"}]},
    ],
)
def test_message_fields_beside_role_and_content_are_read_with_or_without_content(message: dict[str, Any]) -> None:
    request, _, _ = request_from_json({"model": "m", "messages": [message]})
    back = request_to_json(request)["messages"][0]
    for key, value in message.items():
        if key != "content":
            assert back[key] == value, key


@pytest.mark.parametrize(
    ("second", "param", "code"),
    [
        ("hi", "messages[1]", "invalid_type"),
        ({"content": "hi"}, "messages[1].role", "missing_required_parameter"),
        ({"role": None, "content": "hi"}, "messages[1].role", "missing_required_parameter"),
        ({"role": 5, "content": "hi"}, "messages[1].role", "invalid_type"),
        ({"role": "wizard", "content": "hi"}, "messages[1].role", "invalid_value"),
        ({"role": "user", "content": 5}, "messages[1].content", "invalid_type"),
        ({"role": "user", "content": ["hi"]}, "messages[1].content[0]", "invalid_type"),
        ({"role": "user", "content": [{"type": 5}]}, "messages[1].content[0].type", "invalid_type"),
        ({"role": "user", "content": [{"type": "video"}]}, "messages[1].content[0].type", "invalid_value"),
        ({"role": "user", "content": [{"type": "text", "text": 5}]}, "messages[1].content[0].text", "invalid_type"),
        (
            {"role": "user", "content": [{"type": "text", "text": "a", "cache_control": 1}]},
            "messages[1].content[0].cache_control",
            "invalid_type",
        ),
        ({"role": "user", "content": "hi", "name": 5}, "messages[1].name", "invalid_type"),
        ({"role": "assistant", "tool_calls": {}}, "messages[1].tool_calls", "invalid_type"),
    ],
)
def test_a_bad_message_is_named_by_its_index(second: Any, param: str, code: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        request_from_json({"model": "m", "messages": [{"role": "user", "content": "ok"}, second]})
    assert (caught.value.param, caught.value.code) == (param, code)
