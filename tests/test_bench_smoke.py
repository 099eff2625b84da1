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
    for section in ("latency", "throughput", "stream_cost", "first_chunk", "realistic", "memory"):
        assert section in results, section
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
