"""The usage ledger through real processes: every request of a mixed run (three surfaces, both
protocols, whole and streamed, errors and cancels) is recorded with the usage its client
received, nothing is lost on SIGTERM, and the totals read back the same from the CLI and HTTP."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import anthropic
import grpc
import httpx
import openai
import pytest

from chatgate.v1 import chat_pb2, chat_service_pb2_grpc
from tests.store.test_battery import POSTGRES, drop_schema, postgres_answers
from tests.support import (
    MAPPING_ONLY,
    ROOT,
    UPSTREAM_KEY,
    Gateway,
    Simulator,
    eventually,
    grpc_request,
    marker,
    missing_service,
    start_gateway,
)
from tests.tcp_proxy import Proxy

ADMIN_KEY = "admin-test-key-7"


def rows(path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as connection:
        connection.row_factory = sqlite3.Row
        return [dict(r) for r in connection.execute("SELECT * FROM usage_ledger")]


def via_openai(gateway: Gateway, seen: dict[str, tuple[int, int]]) -> None:
    with openai.OpenAI(base_url=gateway.http_url + "/v1", api_key="x", max_retries=0) as client:
        openai_calls(client, seen)


def openai_calls(client: openai.OpenAI, seen: dict[str, tuple[int, int]]) -> None:
    for stream in (False, True):
        rid = marker()
        fields: dict[str, Any] = {
            "model": "claude-haiku-4-5",
            "messages": [{"role": "user", "content": f"sim:cache {rid}"}],
            "extra_headers": {"x-request-id": rid},
        }
        if stream:
            chunks = list(client.chat.completions.create(**fields, stream=True, stream_options={"include_usage": True}))
            usage = chunks[-1].usage
        else:
            usage = client.chat.completions.create(**fields).usage
        assert usage is not None
        seen[rid] = (usage.prompt_tokens, usage.completion_tokens)


def via_anthropic(gateway: Gateway, seen: dict[str, tuple[int, int]]) -> None:
    with anthropic.Anthropic(base_url=gateway.http_url, api_key="x", max_retries=0) as client:
        anthropic_calls(client, seen)


def anthropic_calls(client: anthropic.Anthropic, seen: dict[str, tuple[int, int]]) -> None:
    for stream in (False, True):
        rid = marker()
        fields: dict[str, Any] = {
            "model": "claude-opus-4-7",
            "max_tokens": 500,
            "messages": [{"role": "user", "content": rid}],
            "extra_headers": {"x-request-id": rid},
        }
        if stream:
            with client.messages.stream(**fields) as answer:
                message = answer.get_final_message()
        else:
            message = client.messages.create(**fields)
        u = message.usage
        prompt = u.input_tokens + (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0)
        seen[rid] = (prompt, u.output_tokens)


def via_grpc(gateway: Gateway, seen: dict[str, tuple[int, int]]) -> None:
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        stub = chat_service_pb2_grpc.ChatCompletionServiceStub(channel)
        rid = marker()
        reply = stub.CreateChatCompletion(grpc_request(rid), metadata=(("x-request-id", rid),), timeout=10)
        seen[rid] = (reply.usage.prompt_tokens, reply.usage.completion_tokens)
        rid = marker()
        request = grpc_request(rid, stream_options=chat_pb2.StreamOptions(include_usage=True))
        last = list(stub.StreamChatCompletion(request, metadata=(("x-request-id", rid),), timeout=10))[-1]
        seen[rid] = (last.usage.prompt_tokens, last.usage.completion_tokens)


def refuse_and_cancel(gateway: Gateway) -> tuple[str, str]:
    refused, cancelled = marker(), marker()
    with (
        openai.OpenAI(base_url=gateway.http_url + "/v1", api_key="x", max_retries=0) as client,
        pytest.raises(openai.RateLimitError),
    ):
        client.chat.completions.create(
            model="claude-haiku-4-5",
            messages=[{"role": "user", "content": "sim:status=429"}],
            extra_headers={"x-request-id": refused},
        )
    paced = {
        "model": "claude-haiku-4-5",
        "stream": True,
        "messages": [{"role": "user", "content": "sim:words=50 sim:pace_ms=100"}],
    }
    with httpx.stream(
        "POST", gateway.http_url + "/v1/chat/completions", json=paced, headers={"x-request-id": cancelled}, timeout=10
    ) as response:
        next(response.iter_bytes())  # then leave
    assert eventually(lambda: cancelled in gateway.log(), timeout=5)  # its access line: the request ended
    return refused, cancelled


def test_every_request_is_recorded_with_the_usage_its_client_got(simulator: Simulator, tmp_path: Path) -> None:
    env = {**MAPPING_ONLY, "ANTHROPIC_API_KEY": UPSTREAM_KEY, "ANTHROPIC_BASE_URL": simulator.url}
    gateway = start_gateway(tmp_path, env=env)
    seen: dict[str, tuple[int, int]] = {}  # request id -> (prompt, completion) as its client received them
    try:
        via_openai(gateway, seen)
        via_anthropic(gateway, seen)
        via_grpc(gateway, seen)
        refused, cancelled = refuse_and_cancel(gateway)
    finally:
        gateway.stop()  # SIGTERM: the ledger flushes what it holds
    recorded = {r["request_id"]: r for r in rows(tmp_path / "ledger.sqlite3")}  # tests/support gives each its own
    assert set(recorded) == {*seen, refused, cancelled}
    for rid, (prompt, completion) in seen.items():
        assert (recorded[rid]["input_tokens"], recorded[rid]["output_tokens"]) == (prompt, completion), rid
        assert recorded[rid]["outcome"] == "ok" and recorded[rid]["cost_usd"] > 0
    assert (recorded[refused]["input_tokens"], recorded[refused]["cost_usd"]) == (0, 0.0)
    assert recorded[refused]["outcome"] == "upstream_rate_limited"
    assert recorded[cancelled]["outcome"] == "client_disconnected"
    routes = {r["route"] for r in recorded.values()}
    grpc_routes = {
        "/chatgate.v1.ChatCompletionService/CreateChatCompletion",
        "/chatgate.v1.ChatCompletionService/StreamChatCompletion",
    }
    assert {"/v1/chat/completions", "/v1/messages", *grpc_routes} <= routes
    assert not (tmp_path / "ledger.spill.jsonl").exists()
    read_back(tmp_path, recorded)


def read_back(tmp_path: Path, recorded: dict[str, dict[str, Any]]) -> None:
    """The CLI and (a new process over the same file) the admin endpoint give the same totals."""
    ledger = tmp_path / "ledger.sqlite3"
    env = {"CHATGATE_LEDGER_URL": f"sqlite:{ledger}", "PYTHONPATH": f"{ROOT}:{ROOT / 'gen'}"}
    command = [sys.executable, "-m", "service", "usage"]
    cli = subprocess.run(
        [*command, "--by", "model", "--json"], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )
    by_model = json.loads(cli.stdout)
    assert sum(r["requests"] for r in by_model) == len(recorded)
    assert sum(r["input_tokens"] for r in by_model) == sum(r["input_tokens"] for r in recorded.values())
    table = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    assert "caller" in table.stdout.splitlines()[0] and "claude-opus-4-7" in table.stdout
    (tmp_path / "again").mkdir()
    reader = start_gateway(
        tmp_path / "again", env={"CHATGATE_LEDGER_URL": f"sqlite:{ledger}", "CHATGATE_ADMIN_KEY": ADMIN_KEY}
    )
    try:
        assert httpx.get(reader.http_url + "/admin/usage").status_code == 401
        answer = httpx.get(reader.http_url + "/admin/usage?by=model", headers={"authorization": f"Bearer {ADMIN_KEY}"})
        assert answer.json()["data"] == by_model
    finally:
        reader.stop()


def test_a_postgresql_outage_loses_nothing_acknowledged(simulator: Simulator, tmp_path: Path) -> None:
    """The ledger on PostgreSQL behind a proxy the test cuts: records of requests answered during the
    outage reach the database once it returns; a SIGTERM during an outage leaves them in the spill file."""
    if not postgres_answers():
        missing_service("PostgreSQL is not answering on 127.0.0.1:5432: the PostgreSQL ledger was not tested")
    schema = f"t_{marker()}"
    proxy = Proxy(("127.0.0.1", 5432))
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/test?schema={schema}"
    env = {
        **MAPPING_ONLY,
        "ANTHROPIC_API_KEY": UPSTREAM_KEY,
        "ANTHROPIC_BASE_URL": simulator.url,
        "CHATGATE_LEDGER_URL": url,
    }
    gateway = start_gateway(tmp_path, env=env)
    client = openai.OpenAI(base_url=gateway.http_url + "/v1", api_key="x", max_retries=0)
    answered: list[str] = []

    def ask(count: int) -> None:
        for _ in range(count):
            rid = marker()
            client.chat.completions.create(
                model="claude-haiku-4-5",
                messages=[{"role": "user", "content": rid}],
                extra_headers={"x-request-id": rid},
            )
            answered.append(rid)

    try:
        ask(3)
        assert eventually(lambda: len(asyncio.run(stored_ids(schema))) == 3, timeout=10)
        proxy.cut()
        ask(5)  # answered while the database is away
        assert eventually(lambda: "usage ledger store unavailable" in gateway.log(), timeout=10)
        proxy.restore()
        assert eventually(lambda: asyncio.run(stored_ids(schema)) == set(answered), timeout=30)
        proxy.cut()
        ask(4)
    finally:
        gateway.stop()  # SIGTERM during an outage: what cannot be stored is spilled
        proxy.close()
    spilled = [json.loads(line)["request_id"] for line in (tmp_path / "ledger.spill.jsonl").read_text().splitlines()]
    assert set(spilled) | asyncio.run(stored_ids(schema)) == set(answered)
    asyncio.run(drop_schema(schema))


async def stored_ids(schema: str) -> set[str]:
    import asyncpg  # type: ignore[import-untyped]

    connection = await asyncpg.connect(POSTGRES, server_settings={"search_path": schema})
    try:
        return {row[0] for row in await connection.fetch("SELECT request_id FROM usage_ledger")}
    except asyncpg.UndefinedTableError:
        return set()
    finally:
        await connection.close()


def test_claude_code_sessions_and_agents_are_attributed(simulator: Simulator, tmp_path: Path) -> None:
    """Claude Code's session and agent headers land in the ledger, the access log and the usage totals
    (`chatgate usage --by session|agent`), over the native surface and gRPC metadata alike."""
    env = {
        **MAPPING_ONLY,
        "ANTHROPIC_API_KEY": UPSTREAM_KEY,
        "ANTHROPIC_BASE_URL": simulator.url,
        "CHATGATE_LOG_LEVEL": "info",
    }
    gateway = start_gateway(tmp_path, env=env)
    turns = [("session-a", "main", ""), ("session-a", "sub-1", "main"), ("session-b", "main", "")]
    try:
        client = anthropic.Anthropic(base_url=gateway.http_url, api_key="x", max_retries=0)
        for session, agent, parent in turns:
            headers = {"x-claude-code-session-id": session, "x-claude-code-agent-id": agent}
            if parent:
                headers["x-claude-code-parent-agent-id"] = parent
            client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=64,
                messages=[{"role": "user", "content": marker()}],
                extra_headers=headers,
            )
        stub = chat_service_pb2_grpc.ChatCompletionServiceStub(grpc.insecure_channel(gateway.grpc_target))
        metadata = (("x-claude-code-session-id", "session-b"), ("x-claude-code-agent-id", "grpc-agent"))
        stub.CreateChatCompletion(grpc_request(marker()), metadata=metadata, timeout=30)
    finally:
        gateway.stop()
    recorded = rows(tmp_path / "ledger.sqlite3")
    assert sorted((r["session"], r["agent"], r["parent_agent"]) for r in recorded) == sorted(
        [*turns, ("session-b", "grpc-agent", "")]
    )
    access = [json.loads(line) for line in gateway.log().splitlines() if '"msg":"request"' in line]
    assert {(a.get("session"), a.get("agent")) for a in access} >= {("session-a", "sub-1"), ("session-b", "grpc-agent")}
    assert usage_by(tmp_path / "ledger.sqlite3", "session") == {"session-a": 2, "session-b": 2}
    assert usage_by(tmp_path / "ledger.sqlite3", "agent") == {"main": 2, "sub-1": 1, "grpc-agent": 1}


def usage_by(ledger: Path, group: str) -> dict[str, int]:
    """`chatgate usage --by GROUP --json` over a ledger file: requests per value of the group."""
    env = {"CHATGATE_LEDGER_URL": f"sqlite:{ledger}", "PYTHONPATH": f"{ROOT}:{ROOT / 'gen'}"}
    command = [sys.executable, "-m", "service", "usage", "--by", group, "--json"]
    answer = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    return {row[group]: row["requests"] for row in json.loads(answer.stdout)}
