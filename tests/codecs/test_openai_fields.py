"""Every request field of the installed OpenAI SDK has a decision, documented and checked.

A new SDK field fails ``test_every_sdk_field_has_a_decision`` until it is added below and to
docs/mapping.md. Each decision is then checked on the real mapping: a mapped field changes what
the upstream receives and is not reported; a dropped one is reported in lenient mode and is a 400
naming it in strict mode; the core's own fields are handled before the provider.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
from openai.types.chat import completion_create_params

from service.codecs.openai_chat import KNOWN_FIELDS, request_from_json
from service.core import CompatReport, ModelCatalog, ProviderCall
from service.core.errors import InvalidRequest
from service.providers.anthropic import CLAUDE_MODELS
from service.providers.anthropic.request import to_anthropic

Outcome = Literal["mapped", "dropped", "core"]
MAPPING_DOC = Path(__file__).resolve().parents[2] / "docs/mapping.md"
CATALOG = ModelCatalog(CLAUDE_MODELS)
MODEL = "claude-haiku-4-5"
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
BASE: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}

# field -> (value, fields both requests share, outcome). `core`: the use case or the edge
# handles it (fan-out, streaming); `mapped`: sent upstream in Anthropic's form; `dropped`: no equivalent.
DECISIONS: dict[str, tuple[Any, dict[str, Any], Outcome]] = {
    "model": (MODEL, {}, "core"),
    "messages": (BASE["messages"], {}, "core"),
    "stream": (True, {}, "core"),
    "stream_options": ({"include_usage": True}, {}, "core"),
    "n": (2, {}, "core"),
    "max_completion_tokens": (100, {}, "mapped"),
    "max_tokens": (100, {}, "mapped"),
    "temperature": (0.5, {}, "mapped"),
    "top_p": (0.5, {}, "mapped"),
    "stop": (["END"], {}, "mapped"),
    "tools": ([TOOL], {}, "mapped"),
    "tool_choice": ("required", {"tools": [TOOL]}, "mapped"),
    "parallel_tool_calls": (False, {"tools": [TOOL]}, "mapped"),
    "functions": ([TOOL["function"]], {}, "mapped"),
    "function_call": ({"name": "f"}, {"functions": [TOOL["function"]]}, "mapped"),
    "response_format": ({"type": "json_object"}, {}, "mapped"),
    "reasoning_effort": ("high", {}, "mapped"),
    "user": ("u-1", {}, "mapped"),
    "safety_identifier": ("u-2", {}, "mapped"),
    "service_tier": ("auto", {}, "mapped"),
    "prompt_cache_options": ({"mode": "implicit"}, {}, "mapped"),
    "web_search_options": ({}, {}, "mapped"),
    "prompt_cache_key": ("tenant-7", {}, "dropped"),
    "prompt_cache_retention": ("24h", {}, "dropped"),
    "seed": (7, {}, "dropped"),
    "logprobs": (True, {}, "dropped"),
    "top_logprobs": (2, {}, "dropped"),
    "logit_bias": ({"50256": -100}, {}, "dropped"),
    "presence_penalty": (0.5, {}, "dropped"),
    "frequency_penalty": (0.5, {}, "dropped"),
    "store": (True, {}, "dropped"),
    "metadata": ({"k": "v"}, {}, "dropped"),
    "verbosity": ("low", {}, "dropped"),
    "moderation": ({"model": "omni-moderation-latest"}, {}, "dropped"),
    "audio": ({"voice": "alloy", "format": "wav"}, {}, "dropped"),
    "prediction": ({"type": "content", "content": "x"}, {}, "dropped"),
    "modalities": (["text", "audio"], {}, "dropped"),
}


def sdk_fields() -> set[str]:
    base = completion_create_params.CompletionCreateParamsBase.__annotations__
    streaming = completion_create_params.CompletionCreateParamsStreaming.__annotations__
    return set(base) | set(streaming)


def upstream(body: dict[str, Any], *, strict: bool = False) -> tuple[dict[str, Any], list[str]]:
    request, _, ignored = request_from_json(body)
    assert ignored == []
    report = CompatReport(strict=strict)
    mapped = to_anthropic(ProviderCall(request, CATALOG.resolve(request.model), report), stream=False)
    return mapped.body, [f"{a.param}={a.action}" for a in report.items]


def test_every_sdk_field_has_a_decision() -> None:
    assert sdk_fields() == set(DECISIONS), "a field of the installed OpenAI SDK has no decision here"


@pytest.mark.parametrize("field", sorted(DECISIONS))
def test_the_decision_is_documented_and_read(field: str) -> None:
    assert f"`{field}`" in MAPPING_DOC.read_text(), f"docs/mapping.md has no row for `{field}`"
    assert field in KNOWN_FIELDS  # never reported as an unknown field


@pytest.mark.parametrize("field", sorted(f for f, d in DECISIONS.items() if d[2] == "mapped"))
def test_mapped_fields_change_the_upstream_request_and_are_not_reported(field: str) -> None:
    value, shared, _ = DECISIONS[field]
    without, _ = upstream({**BASE, **shared})
    with_field, reported = upstream({**BASE, **shared, field: value})
    assert with_field != without
    assert not [r for r in reported if r.startswith(field)]


@pytest.mark.parametrize("field", sorted(f for f, d in DECISIONS.items() if d[2] == "dropped"))
def test_dropped_fields_are_reported_or_rejected_when_strict(field: str) -> None:
    value, shared, _ = DECISIONS[field]
    body, reported = upstream({**BASE, **shared, field: value})
    assert reported == [f"{field}=dropped"]
    assert body == upstream({**BASE, **shared})[0]
    with pytest.raises(InvalidRequest) as caught:
        upstream({**BASE, **shared, field: value}, strict=True)
    assert caught.value.param == field
