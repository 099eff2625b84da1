"""Starting and stopping real chatgate processes for tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatgate.v1 import chat_pb2, chat_service_pb2

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "anthropic"
GOLDEN = ROOT / "tests" / "golden"
UPSTREAM_KEY = "sk-ant-test-upstream-key-0123456789"
MODEL = "claude-haiku-4-5"
# For the shared gateway whose tests check how each single upstream answer maps to the
# client: one attempt per request and a breaker that never opens. The resilience tests
# start gateways of their own with the real defaults.
MAPPING_ONLY = {"CHATGATE_RETRY_ATTEMPTS": "1", "CHATGATE_BREAKER_FAILURES": "100000"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def missing_service(message: str) -> None:
    """A store the test needs is not answering: on a laptop the test skips, saying so; where `CI` is
    set (the project's machines start PostgreSQL and Redis before every run) it fails, so a broken
    store is never hidden by a skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (and CI is set: the store must be running)")
    pytest.skip(message)


def marker() -> str:
    """A unique string to find one request among those the simulator received."""
    return "m" + uuid.uuid4().hex[:12]


@dataclass
class Process:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Simulator(Process):
    url: str

    def received(self) -> list[dict[str, Any]]:
        return list(httpx.get(self.url + "/_sim/requests", timeout=5).json())

    def find(self, text: str) -> dict[str, Any]:
        """The last request whose body mentions ``text``."""
        for entry in reversed(self.received()):
            if text in str(entry["body"]):
                return entry
        raise AssertionError(f"the simulator received no request containing {text!r}")

    def stats(self) -> dict[str, int]:
        return dict(httpx.get(self.url + "/_sim/stats", timeout=5).json())


@dataclass
class Gateway(Process):
    http_port: int
    grpc_port: int

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


def spawn(args: list[str], log_dir: Path, env: Mapping[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = log_dir / "process.log"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CHATGATE_"))}
    clean["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "gen")])
    # Each process its own usage ledger, beside its log, unless the test names one.
    clean["CHATGATE_LEDGER_URL"] = f"sqlite:{log_dir / 'ledger.sqlite3'}"
    clean["CHATGATE_LEDGER_SPILL"] = str(log_dir / "ledger.spill.jsonl")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", *args],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**clean, **env},
        )
    return process, log_path


def wait_until(check: Any, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"process did not become ready:\n{log_path.read_text()}")


def eventually(check: Any, timeout: float = 10.0) -> bool:
    """Polls ``check`` until it holds or ``timeout`` passes; returns whether it held.

    For effects that happen on another process's schedule (an abort counted by
    the simulator): the test waits only as long as it must, never a fixed time.
    """
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def start_on_free_ports(
    ports: int, command: Any, ready: str, log_dir: Path, env: Mapping[str, str]
) -> tuple[subprocess.Popen[bytes], Path, list[int]]:
    """Starts ``command(ports)`` on free ports once it answers 200 at ``ready`` (formatted with the ports).
    A port found free can be taken before the process binds it (an outgoing connection's ephemeral port,
    say): then it starts again on new ports, up to three times."""
    for attempt in range(3):
        chosen = [free_port() for _ in range(ports)]
        process, log_path = spawn(command(chosen), log_dir, env)
        url = ready.format(*chosen)
        try:
            wait_until(lambda: httpx.get(url, timeout=1).status_code == 200, process, log_path)  # noqa: B023
        except RuntimeError as exc:
            if attempt == 2 or "in use" not in str(exc):
                raise
            continue
        return process, log_path, chosen
    raise AssertionError("unreachable")


def start_simulator(
    log_dir: Path, *, api_key: str | None = None, replay_dir: Path | None = None, key_faults: tuple[str, ...] = ()
) -> Simulator:
    def command(ports: list[int]) -> list[str]:
        args = ["simulate", "--port", str(ports[0]), *(f"--key-fault={fault}" for fault in key_faults)]
        if api_key:
            args += ["--api-key", api_key]
        if replay_dir:
            args += ["--replay-dir", str(replay_dir)]
        return args

    process, log_path, (port,) = start_on_free_ports(1, command, "http://127.0.0.1:{0}/_sim/stats", log_dir, {})
    return Simulator(process, log_path, f"http://127.0.0.1:{port}")


def start_gateway(log_dir: Path, *, env: Mapping[str, str] | None = None, args: list[str] | None = None) -> Gateway:
    def command(ports: list[int]) -> list[str]:
        return ["serve", "--http-port", str(ports[0]), "--grpc-port", str(ports[1]), *(args or [])]

    process, log_path, (http_port, grpc_port) = start_on_free_ports(
        2, command, "http://127.0.0.1:{0}/readyz", log_dir, env or {}
    )
    return Gateway(process, log_path, http_port, grpc_port)


def user(text: str) -> chat_pb2.ChatMessage:
    return chat_pb2.ChatMessage(role=chat_pb2.ROLE_USER, content=[chat_pb2.ContentPart(text=text)])


def grpc_request(text: str, **fields: Any) -> chat_service_pb2.ChatCompletionRequest:
    return chat_service_pb2.ChatCompletionRequest(model=fields.pop("model", MODEL), messages=[user(text)], **fields)


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of every series of ``name`` whose labels include ``labels``."""
    total = 0.0
    for match in re.finditer(r"^" + re.escape(name) + r"\{([^}]*)\} ([\d.e+-]+)$", text, re.MULTILINE):
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total
