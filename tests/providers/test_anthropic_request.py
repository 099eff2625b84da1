"""Request mapping, one row of the request table in docs/mapping.md per case, on the exact upstream JSON."""

from __future__ import annotations

from typing import Any

import pytest

from service.codecs.openai_chat import request_from_json
from service.core import CompatReport, ModelCatalog, ProviderCall
from service.core.errors import InvalidRequest
from service.providers.anthropic import CLAUDE_MODELS
from service.providers.anthropic.request import JSON_TOOL_NAME, to_anthropic

CATALOG = ModelCatalog(CLAUDE_MODELS)
USER = {"role": "user", "content": "Hi"}
PNG = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)


def mapped(
    body: dict[str, Any], *, model: str = "claude-haiku-4-5", strict: bool = False, stream: bool = False
) -> tuple[dict[str, Any], CompatReport]:
    request, _, _ = request_from_json({"model": model, **body})
    report = CompatReport(strict=strict)
    result = to_anthropic(ProviderCall(request, CATALOG.resolve(model), report), stream=stream)
    return result.body, report


def adjusted(report: CompatReport) -> list[str]:
    return [f"{a.param}={a.action}" for a in report.items]


def test_minimal_request_uses_the_upstream_id_and_the_models_maximum_output() -> None:
    body, report = mapped({"messages": [USER]})
    assert body == {
        "model": "claude-haiku-4-5-20251001",
        "max_tokens": 64000,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
    }
    assert report.items == []


def test_system_and_developer_messages_become_system_blocks_in_order() -> None:
    body, _ = mapped(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                USER,
                {
                    "role": "developer",
                    "content": [{"type": "text", "text": "Use French.", "cache_control": {"type": "ephemeral"}}],
                },
            ]
        }
    )
    assert body["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "Use French.", "cache_control": {"type": "ephemeral"}},
    ]
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"max_tokens": 100}, 100),
        ({"max_completion_tokens": 50, "max_tokens": 100}, 50),
        ({}, 64000),
    ],
    ids=["max_tokens", "max_completion_tokens_wins", "absent_means_model_maximum"],
)
def test_max_tokens(fields: dict[str, Any], expected: int) -> None:
    body, _ = mapped({"messages": [USER], **fields})
    assert body["max_tokens"] == expected


def test_max_tokens_above_the_model_limit_is_lowered_and_reported() -> None:
    body, report = mapped({"messages": [USER], "max_tokens": 999_999})
    assert body["max_tokens"] == 64000
    assert adjusted(report) == ["max_tokens=adjusted"]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"temperature": 0.3}, {"temperature": 0.3}),
        ({"top_p": 0.9}, {"top_p": 0.9}),
        ({"top_k": 40}, {"top_k": 40}),
        ({"stop": "END"}, {"stop_sequences": ["END"]}),
        ({"stop": ["a", "b"]}, {"stop_sequences": ["a", "b"]}),
        ({"user": "user-42"}, {"metadata": {"user_id": "user-42"}}),
    ],
    ids=["temperature", "top_p", "top_k", "stop_string", "stop_list", "user"],
)
def test_sampling_and_stop_rows(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    body, report = mapped({"messages": [USER], **fields})
    assert {k: body[k] for k in expected} == expected
    assert report.items == []


def test_stream_flag_is_sent_only_when_streaming() -> None:
    assert mapped({"messages": [USER]}, stream=True)[0]["stream"] is True
    assert "stream" not in mapped({"messages": [USER]})[0]


def test_temperature_above_one_is_clamped_when_lenient_and_rejected_when_strict() -> None:
    body, report = mapped({"messages": [USER], "temperature": 1.7})
    assert body["temperature"] == 1.0
    assert adjusted(report) == ["temperature=adjusted"]
    with pytest.raises(InvalidRequest) as caught:
        mapped({"messages": [USER], "temperature": 1.7}, strict=True)
    assert caught.value.param == "temperature"


def test_whitespace_only_stop_sequences_are_dropped_and_reported() -> None:
    body, report = mapped({"messages": [USER], "stop": ["\n", "END", "  "]})
    assert body["stop_sequences"] == ["END"]
    assert adjusted(report) == ["stop[0]=dropped", "stop[2]=dropped"]


def test_tool_definitions_keep_every_schema_key_and_whole_numbers() -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "minLength": 2, "x-extra": True},
            "days": {"type": "integer", "maximum": 14},
        },
        "required": ["city"],
        "additionalProperties": False,
    }
    body, _ = mapped(
        {
            "messages": [USER],
            "tools": [
                {"type": "function", "function": {"name": "forecast", "description": "Weather", "parameters": schema}},
                {"type": "function", "function": {"name": "now"}},
            ],
        }
    )
    assert body["tools"] == [
        {"name": "forecast", "description": "Weather", "input_schema": schema},
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert isinstance(body["tools"][0]["input_schema"]["properties"]["days"]["maximum"], int)


TOOLS = [{"type": "function", "function": {"name": "f"}}]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"tool_choice": "auto"}, {"type": "auto"}),
        ({"tool_choice": "none"}, {"type": "none"}),
        ({"tool_choice": "required"}, {"type": "any"}),
        ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, {"type": "tool", "name": "f"}),
        ({"parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
        ({"tool_choice": "required", "parallel_tool_calls": False}, {"type": "any", "disable_parallel_tool_use": True}),
    ],
    ids=["auto", "none", "required", "named", "no_parallel", "required_no_parallel"],
)
def test_tool_choice(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    body, _ = mapped({"messages": [USER], "tools": TOOLS, **fields})
    assert body["tool_choice"] == expected


def test_assistant_tool_calls_and_consecutive_tool_results_merge_into_turns() -> None:
    body, _ = mapped(
        {
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
                        {"id": "call_2", "type": "function", "function": {"name": "f", "arguments": ""}},
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "one"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "two"}]},
            ],
            "tools": TOOLS,
        }
    )
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
                {"type": "tool_use", "id": "call_2", "name": "f", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "one"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "two"},
            ],
        },
    ]


def test_invalid_tool_arguments_name_the_message() -> None:
    with pytest.raises(InvalidRequest) as caught:
        mapped(
            {
                "messages": [
                    USER,
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
                        ],
                    },
                ]
            }
        )
    assert caught.value.param == "messages[1].tool_calls[0].function.arguments"


def test_images_by_data_url_and_by_https_url() -> None:
    body, _ = mapped(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Compare"},
                        {"type": "image_url", "image_url": {"url": PNG}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                    ],
                }
            ]
        }
    )
    assert body["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG.split(",")[1]}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


@pytest.mark.parametrize("url", ["data:image/bmp;base64,Qk0=", "file:///etc/passwd", "ftp://host/x.png"])
def test_unsupported_images_are_rejected_naming_the_part(url: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        mapped({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]})
    assert caught.value.param == "messages[0].content[0].image_url"


TEXT_A = {"type": "text", "text": "a"}
AUDIO = {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}
LIST_ARGUMENTS = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}


@pytest.mark.parametrize(
    ("message", "param"),
    [
        (
            {"role": "user", "content": [TEXT_A, {"type": "image_url", "image_url": {"url": "ftp://x"}}]},
            "messages[2].content[1].image_url",
        ),
        (
            {"role": "system", "content": [TEXT_A, {"type": "image_url", "image_url": {"url": PNG}}]},
            "messages[2].content[1]",
        ),
        ({"role": "tool", "tool_call_id": "c", "content": [AUDIO]}, "messages[2].content[0].input_audio"),
        ({"role": "assistant", "tool_calls": [LIST_ARGUMENTS]}, "messages[2].tool_calls[0].function.arguments"),
    ],
)
def test_parts_deep_in_a_conversation_are_named_by_message_and_part(message: dict[str, object], param: str) -> None:
    before = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    with pytest.raises(InvalidRequest) as caught:
        mapped({"messages": [*before, message, {"role": "user", "content": "c"}]})
    assert caught.value.param == param


def test_pdf_file_parts_become_document_blocks() -> None:
    body, _ = mapped(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "file",
                            "file": {"file_data": "data:application/pdf;base64,JVBERi0xLjQK", "filename": "a.pdf"},
                        }
                    ],
                }
            ]
        }
    )
    assert body["messages"][0]["content"] == [
        {
            "type": "document",
            "title": "a.pdf",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"},
        }
    ]


def test_empty_text_parts_are_dropped_and_an_empty_message_is_an_error() -> None:
    body, _ = mapped(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "x"}]}]}
    )
    assert body["messages"][0]["content"] == [{"type": "text", "text": "x"}]
    with pytest.raises(InvalidRequest) as caught:
        mapped({"messages": [{"role": "user", "content": ""}]})
    assert caught.value.param == "messages[0].content"


@pytest.mark.parametrize(
    "field",
    [
        {"seed": 1},
        {"logprobs": True},
        {"presence_penalty": 0.5},
        {"frequency_penalty": 0.5},
        {"logit_bias": {"50256": -100}},
        {"store": True},
        {"metadata": {"k": "v"}},
        {"service_tier": "flex"},
        {"verbosity": "low"},
        {"prompt_cache_key": "tenant-1"},
        {"prompt_cache_retention": "24h"},
        {"moderation": {"model": "omni-moderation-latest"}},
    ],
    ids=lambda f: next(iter(f)),
)
def test_fields_without_equivalent_are_dropped_or_rejected(field: dict[str, Any]) -> None:
    name = next(iter(field))
    body, report = mapped({"messages": [USER], **field})
    assert name not in body
    assert adjusted(report) == [f"{name}=dropped"]
    with pytest.raises(InvalidRequest) as caught:
        mapped({"messages": [USER], **field}, strict=True)
    assert caught.value.param == name


def test_reasoning_effort_sets_a_thinking_budget_and_drops_forbidden_sampling() -> None:
    body, report = mapped({"messages": [USER], "reasoning_effort": "low", "temperature": 0.2}, model="claude-opus-4-1")
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert "temperature" not in body
    assert adjusted(report) == ["temperature=dropped"]


def test_reasoning_effort_on_an_adaptive_model_uses_effort() -> None:
    body, _ = mapped({"messages": [USER], "reasoning_effort": "high"}, model="claude-opus-4-6")
    assert body["thinking"] == {"type": "adaptive"}
    assert body["output_config"] == {"effort": "high"}


def test_small_max_tokens_is_raised_to_hold_the_thinking_budget() -> None:
    body, report = mapped({"messages": [USER], "reasoning_effort": "medium", "max_tokens": 500})
    assert body["max_tokens"] == 8192 + 500
    assert adjusted(report) == ["max_tokens=adjusted"]


def test_json_schema_uses_native_structured_output_where_supported() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    body, _ = mapped(
        {"messages": [USER], "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}
    )
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


def test_json_object_uses_a_forced_tool_on_models_without_structured_output() -> None:
    body, _ = mapped({"messages": [USER], "response_format": {"type": "json_object"}}, model="claude-3.5-haiku")
    assert body["tool_choice"] == {"type": "tool", "name": JSON_TOOL_NAME}
    assert body["tools"][-1]["name"] == JSON_TOOL_NAME


def test_assistant_thinking_blocks_go_first_and_verbatim() -> None:
    body, _ = mapped(
        {
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "content": "Answer.",
                    "thinking_blocks": [
                        {"type": "thinking", "thinking": "hmm", "signature": "sig=="},
                        {"type": "redacted_thinking", "data": "opaque"},
                    ],
                },
                {"role": "user", "content": "More"},
            ]
        }
    )
    assert body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "hmm", "signature": "sig=="},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Answer."},
    ]


def test_json_schema_uses_a_forced_tool_on_models_without_structured_output() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    body, _ = mapped(
        {
            "messages": [USER],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "count", "description": "A count.", "schema": schema},
            },
        },
        model="claude-3.5-haiku",
    )
    assert body["tools"] == [{"name": JSON_TOOL_NAME, "description": "A count.", "input_schema": schema}]
    assert body["tool_choice"] == {"type": "tool", "name": JSON_TOOL_NAME}
    assert "output_config" not in body


@pytest.mark.parametrize(
    "field",
    [
        {"audio": {"voice": "alloy", "format": "wav"}},
        {"prediction": {"type": "content", "content": "x"}},
        {"modalities": ["text", "audio"]},
    ],
    ids=lambda f: next(iter(f)),
)
def test_output_modalities_claude_lacks_are_dropped_or_rejected(field: dict[str, Any]) -> None:
    name = next(iter(field))
    body, report = mapped({"messages": [USER], **field})
    assert name not in body and adjusted(report) == [f"{name}=dropped"]
    with pytest.raises(InvalidRequest):
        mapped({"messages": [USER], **field}, strict=True)


def test_text_only_modalities_are_not_an_adjustment() -> None:
    assert mapped({"messages": [USER], "modalities": ["text"]})[1].items == []


@pytest.mark.parametrize(
    ("thinking", "model", "expected", "report"),
    [
        (
            {"type": "enabled", "budget_tokens": 4000},
            "claude-haiku-4-5",
            {"type": "enabled", "budget_tokens": 4000},
            [],
        ),
        ({"type": "disabled"}, "claude-haiku-4-5", {"type": "disabled"}, []),
        ({"type": "adaptive"}, "claude-opus-4-6", {"type": "adaptive"}, []),
        ({"type": "adaptive"}, "claude-haiku-4-5", {"type": "enabled", "budget_tokens": 8192}, ["thinking=adjusted"]),
    ],
    ids=["enabled", "disabled", "adaptive", "adaptive_unsupported"],
)
def test_the_anthropic_thinking_extension_wins_over_reasoning_effort(
    thinking: dict[str, Any], model: str, expected: dict[str, Any], report: list[str]
) -> None:
    body, compat = mapped({"messages": [USER], "thinking": thinking, "reasoning_effort": "high"}, model=model)
    assert body["thinking"] == expected
    assert adjusted(compat) == report


def test_a_thinking_budget_below_the_minimum_is_rejected() -> None:
    with pytest.raises(InvalidRequest) as caught:
        mapped({"messages": [USER], "thinking": {"type": "enabled", "budget_tokens": 100}})
    assert caught.value.param == "thinking.budget_tokens"


def test_thinking_turns_a_forced_tool_choice_into_auto() -> None:
    body, report = mapped({"messages": [USER], "tools": TOOLS, "tool_choice": "required", "reasoning_effort": "low"})
    assert body["tool_choice"] == {"type": "auto"}
    assert adjusted(report) == ["tool_choice=adjusted"]


def test_models_that_take_one_sampling_knob_drop_top_p() -> None:
    body, report = mapped({"messages": [USER], "temperature": 0.5, "top_p": 0.9}, model="claude-opus-4-6")
    assert (body["temperature"], "top_p" in body) == (0.5, False)
    assert adjusted(report) == ["top_p=dropped"]


def test_message_names_are_dropped_and_reported() -> None:
    body, report = mapped({"messages": [{"role": "user", "content": "Hi", "name": "ann"}]})
    assert "name" not in str(body) and adjusted(report) == ["messages[0].name=dropped"]


# --- late-2026 rules, from the catalog -------------------------------------------------------

TOOL: dict[str, Any] = {
    "type": "function",
    "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}},
}


@pytest.mark.parametrize(
    ("model", "effort", "thinking", "config", "reports"),
    [
        ("claude-opus-4-7", "low", {"type": "adaptive", "display": "summarized"}, {"effort": "low"}, []),
        ("claude-opus-4-7", "xhigh", {"type": "adaptive", "display": "summarized"}, {"effort": "xhigh"}, []),
        (
            "claude-opus-4-7",
            "minimal",
            {"type": "adaptive", "display": "summarized"},
            {"effort": "low"},
            ["reasoning_effort=adjusted"],
        ),
        ("claude-sonnet-4-6", "max", {"type": "adaptive"}, {"effort": "high"}, ["reasoning_effort=adjusted"]),
        ("claude-sonnet-4-6", "xhigh", {"type": "adaptive"}, {"effort": "high"}, ["reasoning_effort=adjusted"]),
        ("claude-opus-4-6", "max", {"type": "adaptive"}, {"effort": "max"}, []),
        ("claude-haiku-4-5", "xhigh", {"type": "enabled", "budget_tokens": 32768}, None, []),
        ("claude-haiku-4-5", "max", {"type": "enabled", "budget_tokens": 62976}, None, ["reasoning_effort=adjusted"]),
        ("claude-opus-4-7", "none", None, None, []),
        ("claude-sonnet-4-6", "none", {"type": "disabled"}, None, []),
        ("claude-fable-5", "none", None, None, ["reasoning_effort=adjusted"]),
    ],
)
def test_reasoning_effort_follows_the_models_thinking_style(
    model: str, effort: str, thinking: Any, config: Any, reports: list[str]
) -> None:
    body, report = mapped({"messages": [USER], "reasoning_effort": effort}, model=model)
    assert body.get("thinking") == thinking
    assert body.get("output_config") == config
    assert adjusted(report) == reports


def test_a_budget_for_an_adaptive_only_model_becomes_adaptive_and_strict_rejects_it() -> None:
    asked = {"messages": [USER], "thinking": {"type": "enabled", "budget_tokens": 2048}}
    body, report = mapped(asked, model="claude-opus-4-7")
    assert body["thinking"] == {"type": "adaptive", "display": "summarized"}
    assert adjusted(report) == ["thinking=adjusted"]
    with pytest.raises(InvalidRequest):
        mapped(asked, model="claude-opus-4-7", strict=True)


def test_an_explicit_display_wins() -> None:
    body, _ = mapped(
        {"messages": [USER], "thinking": {"type": "adaptive", "display": "omitted"}}, model="claude-opus-4-7"
    )
    assert body["thinking"] == {"type": "adaptive", "display": "omitted"}


@pytest.mark.parametrize(
    ("fields", "reports"),
    [
        ({"temperature": 0.2}, ["temperature=dropped"]),
        ({"top_p": 0.5, "top_k": 3}, ["top_p=dropped", "top_k=dropped"]),
        ({"temperature": 1.0, "top_p": 1.0}, []),
    ],
)
def test_models_without_sampling_never_receive_it(fields: dict[str, Any], reports: list[str]) -> None:
    body, report = mapped({"messages": [USER], **fields}, model="claude-opus-4-7")
    assert not {"temperature", "top_p", "top_k"} & set(body)
    assert adjusted(report) == reports


def breakpoint_part(text: str, ttl: str | None = None) -> dict[str, Any]:
    mark: dict[str, Any] = {"mode": "explicit"}
    if ttl:
        mark["ttl"] = ttl
    return {"type": "text", "text": text, "prompt_cache_breakpoint": mark}


def test_prompt_cache_breakpoints_map_their_ttls_and_report_the_changes() -> None:
    body, report = mapped(
        {
            "messages": [
                {"role": "system", "content": [breakpoint_part("a", "30m")]},
                {"role": "user", "content": [breakpoint_part("b", "12h")]},
            ]
        }
    )
    assert body["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert body["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert adjusted(report) == [
        "messages[0].content[0].cache_control.ttl=adjusted",
        "messages[1].content[0].cache_control.ttl=adjusted",
    ]
    assert "cache_control" not in body  # no prompt_cache_options: no automatic caching


def test_only_the_latest_four_breakpoints_count_and_implicit_mode_takes_one() -> None:
    parts = [breakpoint_part(str(k)) for k in range(5)]
    body, report = mapped({"messages": [{"role": "user", "content": parts}]})
    marked = [b for b in body["messages"][0]["content"] if "cache_control" in b]
    assert [b["text"] for b in marked] == ["1", "2", "3", "4"]
    assert adjusted(report) == ["messages[0].content[0].cache_control=dropped"]
    body, report = mapped(
        {"messages": [{"role": "user", "content": parts}], "prompt_cache_options": {"mode": "implicit", "ttl": "30m"}}
    )
    assert [b["text"] for b in body["messages"][0]["content"] if "cache_control" in b] == ["2", "3", "4"]
    assert body["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert all(
        b["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
        for b in body["messages"][0]["content"]
        if "cache_control" in b
    )
    assert "__param__" not in str(body)


def test_explicit_mode_adds_no_automatic_caching() -> None:
    body, _ = mapped(
        {
            "messages": [{"role": "user", "content": [breakpoint_part("x")]}],
            "prompt_cache_options": {"mode": "explicit"},
        }
    )
    assert "cache_control" not in body and body["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}


@pytest.mark.parametrize(
    ("model", "tier", "expected", "reports"),
    [
        ("claude-opus-4-7", "fast", {"speed": "fast"}, []),
        ("claude-haiku-4-5", "fast", {}, ["service_tier=dropped"]),
        ("claude-haiku-4-5", "auto", {"service_tier": "auto"}, []),
        ("claude-haiku-4-5", "default", {"service_tier": "standard_only"}, []),
        ("claude-haiku-4-5", "priority", {"service_tier": "auto"}, ["service_tier=adjusted"]),
        ("claude-haiku-4-5", "flex", {}, ["service_tier=dropped"]),
    ],
)
def test_service_tiers(model: str, tier: str, expected: dict[str, Any], reports: list[str]) -> None:
    request, _, _ = request_from_json({"model": model, "messages": [USER], "service_tier": tier})
    report = CompatReport(strict=False)
    result = to_anthropic(ProviderCall(request, CATALOG.resolve(model), report), stream=False)
    assert {k: result.body[k] for k in ("speed", "service_tier") if k in result.body} == expected
    assert adjusted(report) == reports
    assert ("fast-mode-2026-02-01" in result.betas) == ("speed" in expected)


def test_safety_identifier_wins_over_user() -> None:
    body, report = mapped({"messages": [USER], "user": "u-1", "safety_identifier": "s-1"})
    assert body["metadata"] == {"user_id": "s-1"} and adjusted(report) == ["user=dropped"]
    body, report = mapped({"messages": [USER], "safety_identifier": "s-1"})
    assert body["metadata"] == {"user_id": "s-1"} and report.items == []


def test_web_search_options_become_the_server_tool_beside_function_tools() -> None:
    options = {
        "search_context_size": "high",
        "user_location": {"type": "approximate", "approximate": {"country": "GB"}},
    }
    body, report = mapped({"messages": [USER], "tools": [TOOL], "web_search_options": options})
    assert body["tools"][1] == {
        "type": "web_search_20250305",
        "name": "web_search",
        "user_location": {"type": "approximate", "country": "GB"},
    }
    assert adjusted(report) == ["web_search_options.search_context_size=dropped"]


def test_legacy_functions_are_tools() -> None:
    legacy, _ = mapped({"messages": [USER], "functions": [TOOL["function"]], "function_call": {"name": "lookup"}})
    current, _ = mapped(
        {"messages": [USER], "tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "lookup"}}}
    )
    assert legacy == current
    with pytest.raises(InvalidRequest) as caught:
        mapped({"messages": [USER], "functions": [TOOL["function"]], "tools": [TOOL]})
    assert caught.value.param == "functions"
