"""The simulator refuses what the real Messages API refuses (late-2026 rules) and samples tool inputs
that satisfy the schemas clients send, `$ref`s included. Table tests on its pure parts."""

from __future__ import annotations

from typing import Any

import pytest

from service.simulator.models import ModelTable
from service.simulator.scenario import plan_reply, sample, signature_for
from service.simulator.validation import ApiError, validate

TOOL = {"name": "lookup", "input_schema": {"type": "object", "properties": {}}}


def body(model: str, **fields: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 1000, "messages": [{"role": "user", "content": "Hi"}], **fields}


def thinking_turn(model: str, signature: str) -> dict[str, Any]:
    """A second turn carrying the first turn's signed thinking back."""
    assistant = {
        "role": "assistant",
        "content": [{"type": "thinking", "thinking": "", "signature": signature}, {"type": "text", "text": "Hello"}],
    }
    return body(model, messages=[{"role": "user", "content": "Hi"}, assistant, {"role": "user", "content": "More"}])


REFUSED = [
    ("opus 5.5 forced any", body("claude-opus-5-5", tools=[TOOL], tool_choice={"type": "any"}), {}, "tool_choice"),
    (
        "fable 5.1 forced tool",
        body("claude-fable-5-1", tools=[TOOL], tool_choice={"type": "tool", "name": "lookup"}),
        {},
        "tool_choice",
    ),
    ("opus 5.5 thinking off", body("claude-opus-5-5", thinking={"type": "disabled"}), {}, "thinking.type.disabled"),
    ("2026-10-21 temperature", body("claude-haiku-4-5", temperature=1.0), {"version": "2026-10-21"}, "temperature"),
    ("2026-10-21 top_k", body("claude-haiku-4-5", top_k=5), {"version": "2026-10-21"}, "top_k"),
    (
        "2026-10-21 citations on user text",
        body(
            "claude-haiku-4-5",
            messages=[{"role": "user", "content": [{"type": "text", "text": "x", "citations": [{"a": 1}]}]}],
        ),
        {"version": "2026-10-21"},
        "citations",
    ),
    (
        "haiku 5.5 thinking from another account",
        thinking_turn("claude-haiku-5-5", signature_for("", "acme")),
        {"account": "other"},
        "signature",
    ),
    ("sonnet 4.5 retired", body("claude-sonnet-4-5"), {}, "model"),
]
ACCEPTED = [
    ("opus 5.5 auto", body("claude-opus-5-5", tools=[TOOL], tool_choice={"type": "auto"}), {}),
    ("haiku 4.5 forced any", body("claude-haiku-4-5", tools=[TOOL], tool_choice={"type": "any"}), {}),
    ("2023-06-01 temperature", body("claude-haiku-4-5", temperature=0.5), {}),
    (
        "haiku 5.5 thinking from its own account",
        thinking_turn("claude-haiku-5-5", signature_for("", "acme")),
        {"account": "acme"},
    ),
    ("sonnet 5.5 thinking from any account", thinking_turn("claude-sonnet-5-5", signature_for("")), {"account": "x"}),
]


@pytest.mark.parametrize(("request_body", "terms", "named"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused_as_the_real_api_refuses(request_body: dict[str, Any], terms: dict[str, str], named: str) -> None:
    with pytest.raises(ApiError) as caught:
        validate(request_body, ModelTable(), **terms)
    assert caught.value.status in (400, 404) and named in caught.value.message


@pytest.mark.parametrize(("request_body", "terms"), [r[1:] for r in ACCEPTED], ids=[r[0] for r in ACCEPTED])
def test_accepted_as_the_real_api_accepts(request_body: dict[str, Any], terms: dict[str, str]) -> None:
    assert request_body["model"] in validate(request_body, ModelTable(), **terms).id


def test_account_bound_thinking_is_signed_for_the_account_that_produced_it() -> None:
    reply = plan_reply(body("claude-haiku-5-5", thinking={"type": "adaptive"}), {}, display="omitted", signer="acme")
    signature = reply.blocks[0].signature
    validate(thinking_turn("claude-haiku-5-5", signature), ModelTable(), account="acme")
    with pytest.raises(ApiError):
        validate(thinking_turn("claude-haiku-5-5", signature), ModelTable(), account="other")


NESTED = {
    "type": "object",
    "properties": {"order": {"$ref": "#/$defs/order"}, "note": {"anyOf": [{"type": "null"}, {"type": "string"}]}},
    "required": ["order", "note"],
    "$defs": {
        "order": {
            "type": "object",
            "properties": {"lines": {"type": "array", "items": {"$ref": "#/$defs/line"}}, "id": {"type": "integer"}},
            "required": ["lines", "id"],
        },
        "line": {"type": "object", "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}}},
    },
}


def test_sampled_inputs_follow_refs_into_defs() -> None:
    assert sample(NESTED) == {"order": {"lines": [{"sku": "sample", "qty": 1}], "id": 1}, "note": "sample"}


def test_a_ref_that_refers_to_itself_is_bounded() -> None:
    schema = {
        "$ref": "#/definitions/node",
        "definitions": {"node": {"type": "object", "properties": {"next": {"$ref": "#/definitions/node"}}}},
    }
    value = sample(schema)
    depth = 0
    while isinstance(value, dict):
        value, depth = value.get("next"), depth + 1
    assert 1 < depth < 20
