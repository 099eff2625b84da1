"""The Responses codec, in process: request reading, items -> messages, output items and stream events."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from chatgate.v1 import chat_pb2
from service.codecs.openai_responses import (
    REASONING_PREFIX,
    ResponsesRequest,
    messages_from_items,
    reasoning_block,
    reasoning_content,
    request_from_json,
)
from service.codecs.responses_output import CustomInput, Envelope, OutputBuilder, custom_input
from service.core.compat import CompatReport
from service.core.errors import InvalidRequest

MODEL = "claude-haiku-4-5"


def parse(**body: Any) -> ResponsesRequest:
    return request_from_json({"model": MODEL, "input": "hi", **body})


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi"}, "model"),
        ({"model": MODEL}, "input"),
        ({"model": MODEL, "input": 3}, "input"),
        ({"model": MODEL, "input": [{"role": "boss", "content": "x"}]}, "input[0].role"),
        ({"model": MODEL, "input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
        ({"model": MODEL, "input": [{"type": "function_call", "call_id": "c"}]}, "input[0].name"),
        (
            {"model": MODEL, "input": [{"role": "user", "content": [{"type": "input_image"}]}]},
            "input[0].content[0].image_url",
        ),
        (
            {"model": MODEL, "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0].file_data",
        ),
        ({"model": MODEL, "input": [{"type": "item_reference", "id": "x"}]}, "input[0]"),
        ({"model": MODEL, "input": "x", "conversation": "conv_1"}, "conversation"),
        ({"model": MODEL, "input": "x", "prompt": {"id": "p"}}, "prompt"),
        ({"model": MODEL, "input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
        (
            {"model": MODEL, "input": "x", "tools": [{"type": "custom", "name": "t", "format": {"type": "xml"}}]},
            "tools[0].format.type",
        ),
        (
            {"model": MODEL, "input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}},
            "text.format.schema",
        ),
        ({"model": MODEL, "input": "x", "reasoning": {"effort": "huge"}}, "reasoning.effort"),
        ({"model": MODEL, "input": "x", "reasoning": {"summary": "long"}}, "reasoning.summary"),
        ({"model": MODEL, "input": "x", "include": ["everything"]}, "include[0]"),
        ({"model": MODEL, "input": "x", "truncation": "sometimes"}, "truncation"),
        ({"model": MODEL, "input": "x", "temperature": "hot"}, "temperature"),
        (
            {"model": MODEL, "input": [{"type": "reasoning", "encrypted_content": REASONING_PREFIX + "!!"}]},
            "input[0].encrypted_content",
        ),
    ],
)
def test_bad_requests_name_the_param(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        request_from_json(body)
    assert caught.value.param == param


def test_a_string_input_is_one_user_message_with_an_id() -> None:
    request = parse(instructions="Be brief")
    assert [i["type"] for i in request.input_items] == ["message"]
    assert request.input_items[0]["id"].startswith("msg_")
    core = request.chat_request()
    assert [m.role for m in core.messages] == [chat_pb2.ROLE_SYSTEM, chat_pb2.ROLE_USER]
    assert core.messages[0].content[0].text == "Be brief"
    assert core.stream_options.include_usage  # the response object always reports usage


def test_settings_map_to_the_core_request() -> None:
    request = parse(
        max_output_tokens=100,
        temperature=0.5,
        top_p=0.9,
        parallel_tool_calls=False,
        user="u1",
        safety_identifier="s1",
        service_tier="flex",
        reasoning={"effort": "high", "summary": "auto"},
        text={"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": True}},
        metadata={"k": "v"},
        store=False,
        stream=True,
    )
    core = request.chat_request()
    assert core.max_completion_tokens == 100 and core.temperature == 0.5 and core.top_p == pytest.approx(0.9)
    assert core.HasField("parallel_tool_calls") and not core.parallel_tool_calls
    assert (core.user, core.safety_identifier, core.service_tier) == ("u1", "s1", "flex")
    assert core.reasoning_effort == chat_pb2.REASONING_EFFORT_HIGH
    assert core.anthropic.thinking.display == chat_pb2.THINKING_DISPLAY_SUMMARIZED
    assert core.response_format.type == chat_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA
    assert core.response_format.json_schema.name == "w" and core.response_format.json_schema.strict
    assert not core.metadata  # kept on the response object, never sent to the model
    assert request.echo["metadata"] == {"k": "v"} and request.echo["store"] is False
    assert request.stream and not request.store and request.summaries


def test_function_custom_and_web_search_tools() -> None:
    request = parse(
        tools=[
            {"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}, "strict": True},
            {"type": "custom", "name": "apply_patch", "description": "Patch files"},
            {"type": "web_search", "user_location": {"type": "approximate", "city": "Rome"}},
            {"type": "file_search", "vector_store_ids": ["v"]},
        ],
        tool_choice={"type": "custom", "name": "apply_patch"},
    )
    core = request.chat_request()
    assert [t.function.name for t in core.tools] == ["f", "apply_patch"]
    assert core.tools[0].function.strict
    schema = core.tools[1].function.parameters
    assert schema["properties"]["input"]["type"] == "string" and list(schema["required"]) == ["input"]
    assert core.web_search_options.user_location.city == "Rome"
    assert core.tool_choice.function_name == "apply_patch"
    assert request.custom_tools == frozenset({"apply_patch"})
    assert [str(a) for a in request.report.items] == [
        "tools[3]=dropped: the `file_search` tool has no Claude equivalent here"
    ]


def test_a_grammar_goes_into_the_description_and_is_reported() -> None:
    tool = {"type": "custom", "name": "p", "format": {"type": "grammar", "syntax": "lark", "definition": "start: /x/"}}
    request = parse(tools=[tool])
    assert "start: /x/" in request.chat_request().tools[0].function.description
    assert [a.param for a in request.report.items] == ["tools[0].format"]


def test_strict_refuses_what_lenient_reports() -> None:
    request = parse(truncation="auto")
    assert [a.param for a in request.report.items] == ["truncation"]
    with pytest.raises(InvalidRequest) as caught:
        parse(truncation="auto").chat_request(strict=True)
    assert caught.value.param == "truncation"


def test_assistant_items_become_one_message_and_outputs_tool_messages() -> None:
    block = chat_pb2.ThinkingBlock(thinking="plan", signature="sig")
    items = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go"}]},
        {"type": "reasoning", "summary": [], "encrypted_content": reasoning_content(block)},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "calling"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a":1}'},
        {"type": "custom_tool_call", "call_id": "c2", "name": "apply_patch", "input": "*** Begin Patch\n"},
        {"type": "function_call_output", "call_id": "c1", "output": "one"},
        {"type": "custom_tool_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "done"}]},
    ]
    messages = messages_from_items(items, frozenset({"apply_patch"}), CompatReport(strict=False))
    assert [m.role for m in messages] == [
        chat_pb2.ROLE_USER,
        chat_pb2.ROLE_ASSISTANT,
        chat_pb2.ROLE_TOOL,
        chat_pb2.ROLE_TOOL,
    ]
    assistant = messages[1]
    assert assistant.thinking_blocks[0].signature == "sig" and assistant.content[0].text == "calling"
    assert [c.id for c in assistant.tool_calls] == ["c1", "c2"]
    assert orjson.loads(assistant.tool_calls[1].function.arguments) == {"input": "*** Begin Patch\n"}
    assert messages[3].tool_call_id == "c2" and messages[3].content[0].text == "done"


def test_foreign_reasoning_is_dropped_and_reported() -> None:
    report = CompatReport(strict=False)
    items = [{"type": "reasoning", "summary": [], "encrypted_content": "gAAAAB-openai-blob"}]
    assert messages_from_items(items, frozenset(), report)[0].thinking_blocks == []
    assert [a.param for a in report.items] == ["input[0]"]


@pytest.mark.parametrize(
    "block",
    [
        chat_pb2.ThinkingBlock(type=chat_pb2.THINKING_BLOCK_TYPE_THINKING, thinking='a\nb "c" é', signature="s+/="),
        chat_pb2.ThinkingBlock(type=chat_pb2.THINKING_BLOCK_TYPE_THINKING, thinking="", signature="only"),
        chat_pb2.ThinkingBlock(type=chat_pb2.THINKING_BLOCK_TYPE_REDACTED, data="opaque=="),
    ],
)
def test_encrypted_content_round_trips_a_thinking_block(block: chat_pb2.ThinkingBlock) -> None:
    content = reasoning_content(block)
    assert content.startswith(REASONING_PREFIX) and "{" not in content  # opaque: no JSON shows
    assert reasoning_block({"encrypted_content": content}, "input[0]") == block


PATCH = '*** Begin Patch\n*** Add File: a.txt\n+tab\there "quoted" \\ back\n+emoji 😀 é\n*** End Patch'


@pytest.mark.parametrize("split", range(1, 12))
def test_custom_input_streams_as_decoded_text_at_any_split(split: int) -> None:
    raw = orjson.dumps({"input": PATCH}).decode().replace("😀", "\\ud83d\\ude00")
    decoder = CustomInput()
    text = "".join(decoder.feed(raw[i : i + split]) for i in range(0, len(raw), split))
    assert text == PATCH
    assert decoder.rest(custom_input(raw)) == ""


def test_custom_input_falls_back_to_the_whole_arguments() -> None:
    assert custom_input('{"patch": "x"}') == '{"patch": "x"}'
    assert custom_input("") == "" and custom_input("not json") == "not json"
    decoder = CustomInput()
    assert decoder.feed('{"other": 1, ') == "" and decoder.rest("whole") == "whole"


# --- output ---------------------------------------------------------------------------


def chunk(**delta: Any) -> chat_pb2.ChatCompletionChunk:
    out = chat_pb2.ChatCompletionChunk(id="c", model=MODEL)
    out.choices.add(index=0, delta=chat_pb2.Delta(**delta))
    return out


def stream_of_every_kind() -> list[chat_pb2.ChatCompletionChunk]:
    block = chat_pb2.ThinkingBlock(thinking="I think.", signature="sig", index=0)
    usage = chat_pb2.ChatCompletionChunk(id="c", model=MODEL)
    usage.usage.prompt_tokens, usage.usage.completion_tokens, usage.usage.total_tokens = 10, 5, 15
    finish = chunk()
    finish.choices[0].finish_reason = chat_pb2.FINISH_REASON_TOOL_CALLS
    return [
        chunk(role=chat_pb2.ROLE_ASSISTANT),
        chunk(reasoning_content="I "),
        chunk(reasoning_content="think."),
        chunk(thinking_blocks=[block]),
        chunk(content="Hello "),
        chunk(content="world"),
        chunk(tool_calls=[chat_pb2.ToolCall(index=0, id="call_1", function=chat_pb2.FunctionCall(name="f"))]),
        chunk(tool_calls=[chat_pb2.ToolCall(index=0, function=chat_pb2.FunctionCall(arguments='{"a":'))]),
        chunk(tool_calls=[chat_pb2.ToolCall(index=0, function=chat_pb2.FunctionCall(arguments="1}"))]),
        chunk(tool_calls=[chat_pb2.ToolCall(index=1, id="call_2", function=chat_pb2.FunctionCall(name="apply_patch"))]),
        chunk(tool_calls=[chat_pb2.ToolCall(index=1, function=chat_pb2.FunctionCall(arguments='{"input": "+x\\n'))]),
        chunk(tool_calls=[chat_pb2.ToolCall(index=1, function=chat_pb2.FunctionCall(arguments='+y"}'))]),
        finish,
        usage,
    ]


def events_of(body: bytes) -> list[dict[str, Any]]:
    out = []
    for frame in body.decode().split("\n\n"):
        if not frame:
            continue
        kind, data = frame.split("\n")
        event = orjson.loads(data.removeprefix("data: "))
        assert kind == "event: " + event["type"]
        out.append(event)
    return out


def test_stream_events_are_ordered_numbered_and_agree_with_the_items() -> None:
    envelope = Envelope.new(MODEL, parse().echo)
    builder = OutputBuilder(envelope, frozenset({"apply_patch"}), summaries=True)
    builder.started()
    for piece in stream_of_every_kind():
        builder.chunk(piece)
    final = builder.finished()
    events = events_of(builder.take())
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert kinds.count("response.output_item.added") == kinds.count("response.output_item.done") == 4
    open_items: set[int] = set()
    for e in events:  # every item closes before the next opens
        if e["type"] == "response.output_item.added":
            assert not open_items
            open_items.add(e["output_index"])
        elif e["type"] == "response.output_item.done":
            open_items.remove(e["output_index"])
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert done == final["output"]
    reasoning, message, call, custom = final["output"]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "I think."}]
    expected = chat_pb2.ThinkingBlock(type=chat_pb2.THINKING_BLOCK_TYPE_THINKING, thinking="I think.", signature="sig")
    assert reasoning_block(reasoning, "x") == expected
    assert message["content"][0]["text"] == "Hello world"
    assert (call["type"], call["arguments"], call["call_id"]) == ("function_call", '{"a":1}', "call_1")
    assert (custom["type"], custom["input"], custom["name"]) == ("custom_tool_call", "+x\n+y", "apply_patch")
    custom_deltas = "".join(e["delta"] for e in events if e["type"] == "response.custom_tool_call_input.delta")
    assert custom_deltas == "+x\n+y"
    assert final["usage"]["input_tokens"] == 10 and final["usage"]["total_tokens"] == 15


def test_the_whole_answer_has_the_same_items_as_the_stream() -> None:
    completion = chat_pb2.ChatCompletion(id="c", model=MODEL)
    choice = completion.choices.add(index=0, finish_reason=chat_pb2.FINISH_REASON_TOOL_CALLS)
    choice.message.thinking_blocks.add(thinking="I think.", signature="sig")
    choice.message.content.add(text="Hello world")
    choice.message.tool_calls.add(id="call_1", function=chat_pb2.FunctionCall(name="f", arguments='{"a":1}'))
    choice.message.tool_calls.add(
        id="call_2", function=chat_pb2.FunctionCall(name="apply_patch", arguments='{"input": "+x\\n+y"}')
    )
    whole = OutputBuilder(Envelope.new(MODEL, {}), frozenset({"apply_patch"}), summaries=True, events=False)
    whole.whole(completion)
    streamed = OutputBuilder(Envelope.new(MODEL, {}), frozenset({"apply_patch"}), summaries=True)
    for piece in stream_of_every_kind():
        streamed.chunk(piece)
    strip = lambda items: [{k: v for k, v in i.items() if k != "id"} for i in items]  # noqa: E731
    assert strip(whole.finished()["output"]) == strip(streamed.finished()["output"])
    assert whole.take() == b""  # no events for a whole answer


def test_without_summaries_the_reasoning_item_keeps_only_its_encrypted_content() -> None:
    builder = OutputBuilder(Envelope.new(MODEL, {}), frozenset(), summaries=False)
    for piece in stream_of_every_kind()[:4]:
        builder.chunk(piece)
    item = builder.finished()["output"][0]
    assert item["summary"] == [] and item["encrypted_content"].startswith(REASONING_PREFIX)
    assert b"reasoning_summary" not in builder.take()


def test_length_is_incomplete_and_a_failure_ends_with_error_then_failed() -> None:
    builder = OutputBuilder(Envelope.new(MODEL, {}), frozenset(), summaries=False)
    builder.started()
    builder.chunk(chunk(content="partial"))
    stop = chunk()
    stop.choices[0].finish_reason = chat_pb2.FINISH_REASON_LENGTH
    builder.chunk(stop)
    response = builder.finished()
    assert response["status"] == "incomplete" and response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events_of(builder.take())[-1]["type"] == "response.incomplete"

    failing = OutputBuilder(Envelope.new(MODEL, {}), frozenset(), summaries=False)
    failing.started()
    failing.chunk(chunk(content="partial"))
    failing.failed("upstream_overloaded", "Overloaded", None)
    events = events_of(failing.take())
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-1]["response"]["error"] == {"code": "upstream_overloaded", "message": "Overloaded"}
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
