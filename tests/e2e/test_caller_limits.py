"""Caller limits through real processes: two replicas sharing one Redis enforce one limit; a
replica killed mid-stream frees its lease within the TTL; tokens and spend are charged with the
real usage over both protocols; a single process counts the same without Redis."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import openai
import pytest

from chatgate.v1 import chat_pb2, chat_service_pb2_grpc
from tests.store.test_limits import redis_answers
from tests.support import (
    MAPPING_ONLY,
    UPSTREAM_KEY,
    Gateway,
    Simulator,
    eventually,
    grpc_request,
    missing_service,
    start_gateway,
)


def key_entry(name: str, key: str, **limits: Any) -> str:
    extra = "".join(f", {k} = {v!r}" if isinstance(v, str) else f", {k} = {v}" for k, v in limits.items())
    return f'{{ name = "{name}", key = "{key}"{extra} }}'.replace("'", '"')


def gateway_with(tmp: Path, simulator: Simulator, keys: list[str], **env: str) -> Gateway:
    tmp.mkdir(exist_ok=True)
    config = tmp / "chatgate.toml"
    config.write_text("[auth]\nkeys = [" + ", ".join(keys) + "]\n")
    return start_gateway(
        tmp,
        env={
            **MAPPING_ONLY,
            "ANTHROPIC_API_KEY": UPSTREAM_KEY,
            "ANTHROPIC_BASE_URL": simulator.url,
            "CHATGATE_CONFIG": str(config),
            **env,
        },
    )


@pytest.fixture
def redis_url() -> Iterator[str]:
    if not redis_answers():
        missing_service("Redis is not answering on 127.0.0.1:6379: the shared-limits tests were not run")
    yield "redis://127.0.0.1:6379/0"


def test_two_replicas_enforce_one_requests_per_minute_limit(
    simulator: Simulator, tmp_path: Path, redis_url: str
) -> None:
    name, key = f"team-{uuid.uuid4().hex[:8]}", "cgk-" + uuid.uuid4().hex
    keys = [key_entry(name, key, rpm=60)]
    replicas = [gateway_with(tmp_path / n, simulator, keys, CHATGATE_LIMITS_REDIS_URL=redis_url) for n in "ab"]
    try:
        outcomes: list[httpx.Response] = []
        body = {"model": "claude-haiku-4-5", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
        for i in range(200):
            target = replicas[i % 2].http_url
            outcomes.append(
                httpx.post(target + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})
            )
        ok = [r for r in outcomes if r.status_code == 200]
        refused = [r for r in outcomes if r.status_code == 429]
        assert len(ok) == 60 and len(refused) == 140
        assert ok[0].headers["x-ratelimit-limit-requests"] == "60"
        assert ok[-1].headers["x-ratelimit-remaining-requests"] == "0"
        error = refused[0].json()["error"]
        assert error["code"] == "rate_limit_exceeded" and error["type"] == "rate_limit_error"
        assert 0 < int(refused[0].headers["retry-after"]) <= 60
        assert refused[0].headers["x-ratelimit-limit-requests"] == "60"
        assert refused[0].headers["x-ratelimit-remaining-requests"] == "0"
    finally:
        for replica in replicas:
            replica.stop()


def test_a_killed_replica_frees_its_stream_lease_within_the_ttl(
    simulator: Simulator, tmp_path: Path, redis_url: str
) -> None:
    name, key = f"team-{uuid.uuid4().hex[:8]}", "cgk-" + uuid.uuid4().hex
    keys = [key_entry(name, key, streams=1)]
    env = {"CHATGATE_LIMITS_REDIS_URL": redis_url, "CHATGATE_LIMITS_LEASE_TTL": "2"}
    doomed, survivor = (gateway_with(tmp_path / n, simulator, keys, **env) for n in "ab")
    auth = {"authorization": f"Bearer {key}"}
    slow = {
        "model": "claude-haiku-4-5",
        "stream": True,
        "messages": [{"role": "user", "content": "sim:words=200 sim:pace_ms=100"}],
    }
    try:
        with httpx.stream(
            "POST", doomed.http_url + "/v1/chat/completions", json=slow, headers=auth, timeout=30
        ) as held:
            assert held.status_code == 200
            reading = held.iter_bytes()  # kept: a dropped iterator closes the response
            next(reading)
            second = httpx.post(survivor.http_url + "/v1/chat/completions", json=slow, headers=auth, timeout=30)
            assert second.status_code == 429 and second.json()["error"]["code"] == "rate_limit_exceeded"
            doomed.process.send_signal(signal.SIGKILL)  # no chance to release anything
            doomed.process.wait()
            killed = time.monotonic()
        short = {**slow, "messages": [{"role": "user", "content": "sim:words=3"}]}
        assert eventually(
            lambda: httpx.post(survivor.http_url + "/v1/chat/completions", json=short, headers=auth).status_code == 200,
            timeout=10,
        )
        assert time.monotonic() - killed <= 2 + 1  # the TTL, and a little for the poll
    finally:
        doomed.stop()
        survivor.stop()


def test_tokens_and_spend_are_charged_with_the_real_usage_over_both_protocols(
    simulator: Simulator, tmp_path: Path
) -> None:
    """In one process (no Redis): the same rules, counted locally."""
    name, key = f"team-{uuid.uuid4().hex[:8]}", "cgk-" + uuid.uuid4().hex
    gateway = gateway_with(tmp_path, simulator, [key_entry(name, key, tpm=400, budget_usd=0.002)])
    try:
        client = openai.OpenAI(base_url=gateway.http_url + "/v1", api_key=key, max_retries=0)
        first = client.chat.completions.with_raw_response.create(
            model="claude-haiku-4-5", messages=[{"role": "user", "content": "sim:words=100 a long answer"}]
        )
        usage = first.parse().usage
        assert usage is not None and first.headers["x-ratelimit-limit-tokens"] == "400"
        with grpc.insecure_channel(gateway.grpc_target) as channel:
            stub = chat_service_pb2_grpc.ChatCompletionServiceStub(channel)
            request = grpc_request("sim:words=300 more", stream_options=chat_pb2.StreamOptions(include_usage=True))
            chunks = list(
                stub.StreamChatCompletion(request, metadata=(("authorization", f"Bearer {key}"),), timeout=10)
            )
        streamed = chunks[-1].usage
        assert usage.total_tokens + streamed.total_tokens > 400  # together, past the minute's tokens
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="claude-haiku-4-5", messages=[{"role": "user", "content": "again"}])
        assert caught.value.code in ("rate_limit_exceeded", "insufficient_quota")
    finally:
        gateway.stop()
