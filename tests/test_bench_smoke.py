"""The benchmark, run briefly so it cannot rot. Its figures are printed by `make bench`, never asserted."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT


def numbers(value: object) -> list[float]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in numbers(v)]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [float(value)]
    return []


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def test_benchmark_smoke_run_produces_every_section(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = run_module("bench", "--smoke", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads(out.read_text())
    for section in ("latency", "throughput", "stream_cost", "first_chunk", "realistic", "memory", "stream_overhead"):
        assert section in results, section
    assert results["stream_overhead"]["deltas"] == 64 and results["stream_overhead"]["pace_ms"] == 20
    # The smoke run skips callgrind: the targets table is printed with the rows it could measure.
    rows = {row["target"]: row for row in results["targets"]}
    assert rows["RSS per paced stream"]["met"] is not None
    assert rows["HTTP JSON, one message"]["figure"] is None
    assert "| HTTP JSON, one message | " in result.stdout and "Published method: added p99" in result.stdout
    assert all(math.isfinite(n) for n in numbers(results))
    assert results["memory"]["dropped"] == 0
    assert all(run["errors"] == 0 for run in results["throughput"].values())
    assert "| throughput, c=64" in result.stdout


def test_instruction_counts_run_briefly() -> None:
    """`python -m bench.instructions` (callgrind) on a few requests: it starts, counts and reports."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        pytest.skip("valgrind is not installed (apt-get install valgrind): bench.instructions is not exercised")
    result = run_module("bench.instructions", "--features", "production", "--warm", "16", "--requests", "16")
    assert result.returncode == 0, result.stdout + result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("json (gateway, features production): ") and line.endswith("k instructions per request")
    assert int(line.split(": ")[1].split("k")[0].replace(",", "")) > 100  # a request is never free


def test_both_protocol_floor_answers_on_each_port(tmp_path: Path) -> None:
    """The floor whose idle RSS `make bench` sets beside the gateway's serves both protocols from one process."""
    import grpc
    import httpx

    from bench.processes import free_port, start_floor, start_simulator
    from chatgate.v1 import chat_pb2, chat_service_pb2, chat_service_pb2_grpc

    simulator, upstream = start_simulator(None, tmp_path / "simulator.log")
    grpc_port = free_port()
    try:
        floor, http_port = start_floor("both", None, upstream, tmp_path / "floor.log", grpc_port=grpc_port)
        try:
            body = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}]}
            answer = httpx.post(f"http://127.0.0.1:{http_port}/v1/chat/completions", json=body, timeout=10).json()
            assert answer["choices"][0]["message"]["content"]
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                request = chat_service_pb2.ChatCompletionRequest(
                    model="claude-haiku-4-5",
                    max_tokens=16,
                    messages=[chat_pb2.ChatMessage(role=chat_pb2.ROLE_USER, content=[chat_pb2.ContentPart(text="Hi")])],
                )
                stub = chat_service_pb2_grpc.ChatCompletionServiceStub(channel)
                reply = stub.CreateChatCompletion(request, timeout=10)
            assert reply.choices[0].message.content[0].text
            assert floor.rss_mib() > 0
        finally:
            floor.stop()
    finally:
        simulator.stop()


def test_the_targets_table_reads_the_counts_against_their_floors() -> None:
    from bench import targets

    counted = {
        "json": 1_200_000.0,
        "floor_json": 600_000.0,
        "sse20": 2_000_000.0,
        "sse200": 6_500_000.0,
        "floor_sse20": 1_000_000.0,
        "floor_sse200": 5_000_000.0,
        "json_production": 1_300_000.0,
    }
    results = {
        "instructions": counted,
        "latency": {"http_json": {"added_p99_ms": 0.12, "floor_added_p99_ms": 0.09}},
        "features": {"default config": {"idle_rss_mib": 66.0}, "both-protocol floor": {"idle_rss_mib": 58.5}},
    }
    rows = {row["target"]: row for row in targets.evaluate(results)}
    assert rows["HTTP JSON, one message"]["figure"] == 2.0 and rows["HTTP JSON, one message"]["met"] is False
    assert rows["SSE, per chunk"]["figure"] == 25_000 / (4_000_000 / 180) and rows["SSE, per chunk"]["met"] is False
    production = rows["production features over off (access log, limits, ledger)"]
    assert production["figure"] == 1_300_000 / 1_200_000 and production["met"] is True
    assert rows["added p99 at concurrency 1 over direct (HTTP JSON)"]["met"] is True  # 120 us
    assert rows["idle RSS, default config, over the both-protocol floor"]["met"] is False  # 7.5 MiB over
    assert rows["gRPC unary"]["met"] is None  # not measured: never counted as met
    table = targets.table(targets.evaluate(results))
    assert "| HTTP JSON, one message | 1,200k / 600k | 2.00 x floor | <= 1.6 x floor | no |" in table
    # the floor's added latency from the same rounds stands beside the gateway's, never in its place
    assert "| 120 us, HTTP floor 90 us | 120.00 us | <= 150 us | yes |" in table
