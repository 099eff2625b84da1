"""The stream translator over recorded Anthropic streams, one fixture per scenario."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from chatgate.v1 import chat_pb2
from service.core.chunks import TextDelta, as_chunk
from service.core.errors import IncompleteStream, UpstreamOverloaded
from service.providers.anthropic.stream import StreamTranslator
from service.transport.sse import SSEDecoder
from tests.support import FIXTURES

STOP, LENGTH, TOOLS = chat_pb2.FINISH_REASON_STOP, chat_pb2.FINISH_REASON_LENGTH, chat_pb2.FINISH_REASON_TOOL_CALLS


@dataclass
class Result:
    chunks: list[chat_pb2.ChatCompletionChunk] = field(default_factory=list)
    content: str = ""
    reasoning: str = ""
    tools: dict[int, dict[str, str]] = field(default_factory=dict)
    thinking_blocks: list[chat_pb2.ThinkingBlock] = field(default_factory=list)
    finish: int = 0
    usage: chat_pb2.Usage | None = None


def translate(name: str, *, json_tool: str | None = None, step: int = 0) -> Result:
    raw = (FIXTURES / f"{name}.sse").read_bytes()
    decoder, translator, result = SSEDecoder(), StreamTranslator(json_tool=json_tool), Result()
    reads = [raw] if not step else [raw[i : i + step] for i in range(0, len(raw), step)]
    for read in reads:
        for event in decoder.feed(read):
            item = translator.feed(event.event, event.data)
            chunk = as_chunk(item) if item is not None else None
            if chunk is not None and chunk.choices:
                result.chunks.append(chunk)
                absorb(result, chunk)
    translator.check_complete()
    return result


def absorb(result: Result, chunk: chat_pb2.ChatCompletionChunk) -> None:
    choice = chunk.choices[0]
    result.content += choice.delta.content
    result.reasoning += choice.delta.reasoning_content
    result.thinking_blocks.extend(choice.delta.thinking_blocks)
    for call in choice.delta.tool_calls:
        entry = result.tools.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
        entry["id"] = entry["id"] or call.id
        entry["name"] = entry["name"] or call.function.name
        entry["arguments"] += call.function.arguments
    if choice.finish_reason:
        result.finish = choice.finish_reason
        result.usage = chunk.usage


@pytest.mark.parametrize("step", [0, 1, 7], ids=["whole", "byte_by_byte", "seven_bytes"])
def test_text(step: int) -> None:
    result = translate("text", step=step)
    assert result.chunks[0].choices[0].delta.role == chat_pb2.ROLE_ASSISTANT
    assert result.content == "Hello! How can I help you today?"
    assert result.finish == STOP
    assert result.usage is not None and result.usage.prompt_tokens == 25 and result.usage.completion_tokens == 12
    assert {c.id for c in result.chunks} == {"chatcmpl-msg_01Text"}


def test_text_deltas_come_as_text_deltas_sharing_the_streams_identity() -> None:
    translator = StreamTranslator()
    items = [translator.feed(e.event, e.data) for e in SSEDecoder().feed((FIXTURES / "text.sse").read_bytes())]
    deltas = [item for item in items if isinstance(item, TextDelta)]
    others = [item for item in items if item is not None and not isinstance(item, TextDelta)]
    assert len(deltas) > 1 and len({id(d.identity) for d in deltas}) == 1
    assert "".join(d.text for d in deltas) == "Hello! How can I help you today?"
    assert others[0].choices[0].delta.role == chat_pb2.ROLE_ASSISTANT  # the role chunk stays protobuf
    built = deltas[0].to_chunk()
    assert built == chat_pb2.ChatCompletionChunk(
        id=others[0].id,
        created=others[0].created,
        model=others[0].model,
        choices=[chat_pb2.ChunkChoice(index=0, delta=chat_pb2.Delta(content=deltas[0].text))],
    )
    assert deltas[0] == built and deltas[0] != deltas[1]


@pytest.mark.parametrize(
    ("name", "content", "finish"),
    [
        ("several_text_blocks", "First block. Second block. Third block.", STOP),
        ("stop_sequence", "Counting: 1, 2, ", STOP),
        ("max_tokens", "This answer is cut", LENGTH),
        ("refusal", "I can't help with that.", chat_pb2.FINISH_REASON_CONTENT_FILTER),
        ("ping_unknown_events", "Still here.", STOP),
        ("no_space_after_colon", " leading space kept", STOP),
        ("long_text", "".join(f"word{i} " for i in range(200)), STOP),
    ],
)
def test_text_scenarios(name: str, content: str, finish: int) -> None:
    result = translate(name)
    assert (result.content, result.finish) == (content, finish)


def test_parallel_tools_are_indexed_by_our_own_counter_and_reassemble_split_arguments() -> None:
    result = translate("parallel_tools", step=5)
    assert result.tools == {
        0: {"id": "toolu_01P", "name": "get_weather", "arguments": '{"location": "Paris"}'},
        1: {"id": "toolu_01Q", "name": "get_time", "arguments": '{"zone": "Europe\\/Paris", "note": "say \\"hi\\""}'},
    }
    assert result.finish == TOOLS


def test_tool_index_counts_tools_only_when_text_comes_first() -> None:
    result = translate("text_then_tool")
    assert result.content == "Let me check the weather."
    assert list(result.tools) == [0]
    assert result.tools[0]["arguments"] == '{"location": "Oslo"}'


def test_a_tool_with_no_argument_bytes_gets_an_empty_object() -> None:
    assert translate("tool_no_arguments").tools[0]["arguments"] == "{}"


def test_thinking_streams_as_reasoning_and_ends_with_the_signed_block() -> None:
    result = translate("thinking_text")
    assert result.reasoning == "Let me think. 2 + 2 is 4."
    assert result.content == "The answer is 4."
    assert [(b.type, b.thinking, b.signature) for b in result.thinking_blocks] == [
        (chat_pb2.THINKING_BLOCK_TYPE_THINKING, "Let me think. 2 + 2 is 4.", "c2lnbmF0dXJlLW9uZQ==")
    ]


def test_thinking_then_tool_keeps_tool_index_zero() -> None:
    result = translate("thinking_tool")
    assert list(result.tools) == [0] and result.finish == TOOLS
    assert result.thinking_blocks[0].signature == "c2lnbmF0dXJlLXR3bw=="


def test_redacted_thinking_is_passed_on_whole() -> None:
    blocks = translate("redacted_thinking").thinking_blocks
    assert [b.type for b in blocks] == [chat_pb2.THINKING_BLOCK_TYPE_THINKING, chat_pb2.THINKING_BLOCK_TYPE_REDACTED]
    assert blocks[1].data.startswith("EmwKAhgB")


def test_cache_usage_counts_cached_tokens_inside_prompt_tokens() -> None:
    usage = translate("cache_usage").usage
    assert usage is not None
    assert (
        usage.prompt_tokens,
        usage.prompt_tokens_details.cached_tokens,
        usage.prompt_tokens_details.cache_creation_tokens,
        usage.total_tokens,
    ) == (2010, 1800, 200, 2015)


def test_a_cut_stream_is_an_error_never_a_normal_end() -> None:
    with pytest.raises(IncompleteStream):
        translate("cut_stream")


def test_an_error_event_mid_stream_raises_the_classified_error() -> None:
    with pytest.raises(UpstreamOverloaded) as caught:
        translate("error_midstream")
    assert caught.value.code == "server_overloaded"


def test_json_mode_tool_input_streams_as_content() -> None:
    result = translate("one_tool", json_tool="get_weather")
    assert result.content == '{"location": "Paris, FR"}'
    assert result.tools == {} and result.finish == STOP
