"""Thinking affinity in a key pool that spans accounts: a conversation with signed thinking goes back
to the account whose key produced it; when that account has no usable key, the thinking is dropped
(reported) on models that bind it to the account, rather than sent where it will be refused."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from chatgate.v1 import chat_pb2, chat_service_pb2
from service.core import CompatReport, NativeRequest, ProviderCall
from service.providers.anthropic import CLAUDE_MODELS
from service.providers.anthropic.affinity import ThinkingAffinity, strip_thinking
from service.transport.keys import split_account
from tests.inprocess import FakeUpstreamClient, anthropic_provider

KEYS = ("acme=sk-ant-acme-key-0001", "beta=sk-ant-beta-key-0002")
MODELS = {m.id: m for m in CLAUDE_MODELS}
SIGNATURE = "EuYBCkQYAiJAsignedByAcme" + "x" * 60


def answer(signature: str) -> bytes:
    return orjson.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-haiku-5-5",
            "content": [
                {"type": "thinking", "thinking": "", "signature": signature},
                {"type": "text", "text": "Hello"},
            ],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 5, "output_tokens": 3},
        }
    )


def native(body: dict[str, object]) -> NativeRequest:
    return NativeRequest("messages", "claude-haiku-5-5", orjson.dumps(body))


def second_turn(signature: str) -> dict[str, object]:
    thinking = {"type": "thinking", "thinking": "", "signature": signature}
    return {
        "model": "claude-haiku-5-5",
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [thinking, {"type": "text", "text": "Hello"}]},
            {"role": "user", "content": "More"},
        ],
    }


def call_for(request: NativeRequest | chat_service_pb2.ChatCompletionRequest, model: str) -> ProviderCall:
    return ProviderCall(request, MODELS[model], CompatReport(strict=False))


def key_used(upstream: FakeUpstreamClient, index: int = -1) -> str:
    return upstream.sent[index][2]["x-api-key"]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("acme=sk-ant-1", ("acme", "sk-ant-1")),
        ("sk-ant-api03-AbC=", ("", "sk-ant-api03-AbC=")),
        ("Acme=sk", ("", "Acme=sk")),
        ("sk-ant-plain", ("", "sk-ant-plain")),
    ],
)
def test_a_key_entry_names_its_account_with_a_lower_case_prefix(entry: str, expected: tuple[str, str]) -> None:
    assert split_account(entry) == expected


def test_a_conversation_returns_to_the_account_that_signed_its_thinking() -> None:
    upstream = FakeUpstreamClient()
    provider = anthropic_provider(upstream, KEYS)
    for _ in range(5):
        upstream.reply(200, answer(SIGNATURE))
    first = asyncio.run(
        provider.relay(call_for(native(second_turn("unknown-signature-" + "y" * 40)), "claude-haiku-5-5"))
    )
    signer = key_used(upstream)
    assert b"Hello" in first
    for _ in range(4):  # round-robin would alternate accounts; affinity keeps the signer's
        asyncio.run(provider.relay(call_for(native(second_turn(SIGNATURE)), "claude-haiku-5-5")))
        assert key_used(upstream) == signer


def test_thinking_is_dropped_and_reported_when_its_account_has_no_usable_key() -> None:
    upstream = FakeUpstreamClient()
    provider = anthropic_provider(upstream, KEYS)
    upstream.reply(200, answer(SIGNATURE))
    upstream.reply(200, answer(SIGNATURE + "2"))
    asyncio.run(provider.relay(call_for(native(second_turn("first-" + "z" * 40)), "claude-haiku-5-5")))
    signer = next(k for k in provider.keys.keys if k.value == key_used(upstream))
    provider.keys.rejected(signer, 401)  # quarantined: the account has no other key
    call = call_for(native(second_turn(SIGNATURE)), "claude-haiku-5-5")
    asyncio.run(provider.relay(call))
    sent = orjson.loads(upstream.sent[-1][1])
    assert key_used(upstream) != signer.value
    assert all(b["type"] != "thinking" for b in sent["messages"][1]["content"])
    assert [a.shown for a in call.report.items] == ["thinking_dropped"]


def test_models_that_accept_thinking_from_any_account_keep_it() -> None:
    upstream = FakeUpstreamClient()
    provider = anthropic_provider(upstream, KEYS)
    upstream.reply(200, answer(SIGNATURE))
    upstream.reply(200, answer(SIGNATURE))
    body = {**second_turn("first-" + "z" * 40), "model": "claude-sonnet-5-5"}
    asyncio.run(
        provider.relay(
            call_for(NativeRequest("messages", "claude-sonnet-5-5", orjson.dumps(body)), "claude-sonnet-5-5")
        )
    )
    signer = next(k for k in provider.keys.keys if k.value == key_used(upstream))
    provider.keys.rejected(signer, 401)
    again = {**second_turn(SIGNATURE), "model": "claude-sonnet-5-5"}
    call = call_for(NativeRequest("messages", "claude-sonnet-5-5", orjson.dumps(again)), "claude-sonnet-5-5")
    asyncio.run(provider.relay(call))
    assert b'"thinking"' in upstream.sent[-1][1] and call.report.items == []


def test_translated_requests_follow_their_thinking_blocks_too() -> None:
    upstream = FakeUpstreamClient()
    provider = anthropic_provider(upstream, KEYS)
    for _ in range(4):
        upstream.reply(200, answer(SIGNATURE))
    request = chat_service_pb2.ChatCompletionRequest(model="claude-haiku-5-5")
    request.messages.add(role=chat_pb2.ROLE_USER).content.add(text="Hi")
    asyncio.run(provider.complete(call_for(request, "claude-haiku-5-5")))
    signer = key_used(upstream)
    assistant = request.messages.add(role=chat_pb2.ROLE_ASSISTANT)
    assistant.content.add(text="Hello")
    assistant.thinking_blocks.add(signature=SIGNATURE)
    request.messages.add(role=chat_pb2.ROLE_USER).content.add(text="More")
    for _ in range(3):
        asyncio.run(provider.complete(call_for(request, "claude-haiku-5-5")))
        assert key_used(upstream) == signer


def test_a_pool_without_accounts_remembers_nothing() -> None:
    provider = anthropic_provider(FakeUpstreamClient(), ("sk-ant-one", "sk-ant-two"))
    assert provider._affinity is None  # the hot path's zero-cost promise: nothing is scanned


def test_signatures_split_across_reads_are_found_and_memory_is_bounded() -> None:
    affinity = ThinkingAffinity(limit=3)
    event = b'data: {"type":"signature_delta","signature":"' + SIGNATURE.encode() + b'"}\n\n'
    watched = affinity.watch(_Reads([event[:50], event[50:]]), "acme")  # type: ignore[arg-type]

    async def drain() -> None:
        async for _ in watched.chunks():
            pass

    asyncio.run(drain())
    assert affinity.account_in(b'{"signature": "' + SIGNATURE.encode() + b'"}') == "acme"
    for n in range(5):
        affinity.remember(b'"signature":"' + f"other-signature-{n:02d}-{'q' * 30}".encode() + b'"', "beta")
    assert affinity.account_in(b'{"signature": "' + SIGNATURE.encode() + b'"}') == ""  # the oldest went


def test_stripping_keeps_a_turn_that_holds_only_thinking() -> None:
    messages = second_turn(SIGNATURE)["messages"]
    assert strip_thinking(messages) == 1
    only = [{"role": "assistant", "content": [{"type": "thinking", "thinking": "", "signature": SIGNATURE}]}]
    assert strip_thinking(only) == 0


class _Reads:
    """The part of an upstream response the watcher reads: its chunks."""

    status = 200

    def __init__(self, reads: list[bytes]) -> None:
        self._reads = reads
        self.headers: dict[str, str] = {}

    async def chunks(self):  # type: ignore[no-untyped-def]
        for read in self._reads:
            yield read
