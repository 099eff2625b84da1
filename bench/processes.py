"""Starting the simulator and the gateway pinned to cores, and reading their CPU time and memory."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-ant-bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cores() -> tuple[str | None, str | None]:
    """Gateway on core 0, simulator and load on core 1, where there are two cores and taskset."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return "0", "1"
    return None, None


ALL_CORES = f"0-{(os.cpu_count() or 1) - 1}"


def pinned(core: str | None, argv: list[str]) -> list[str]:
    """Runs ``argv`` on ``core``; with None, on every core (the benchmark process itself is pinned,
    and children would otherwise inherit its single core)."""
    if shutil.which("taskset") is None:
        return argv
    return ["taskset", "-c", core or ALL_CORES, *argv]


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    name: str
    children: list[int] = field(default_factory=list)

    def pids(self) -> list[int]:
        return [self.popen.pid, *self.children]

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the process (and its workers)."""
        total = 0.0
        for pid in self.pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        return total

    def open_fds(self) -> int:
        return sum(len(list(Path(f"/proc/{pid}/fd").iterdir())) for pid in self.pids())

    def rss_mib(self) -> float:
        return sum(int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE for pid in self.pids()) / 2**20

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CHATGATE_"))}
    clean["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "gen")])
    return clean


def spawn(argv: list[str], environment: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Starts a process writing its output to ``log``; the child holds the file, so this process closes its copy."""
    with log.open("wb") as out:
        return subprocess.Popen(argv, cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT)


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def start_simulator(core: str | None, log: Path) -> tuple[Process, str]:
    port = free_port()
    argv = pinned(core, [sys.executable, "-m", "service", "simulate", "--port", str(port)])
    popen = spawn(argv, env(), log)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/_sim/stats", popen)
    return Process(popen, "simulator"), url


def start_gateway(
    core: str | None, upstream: str, log: Path, *, workers: int = 1, extra: dict[str, str] | None = None
) -> tuple[Process, int, int]:
    """The gateway with every optional feature off (the ledger too) unless ``extra`` turns one on."""
    http_port, grpc_port = free_port(), free_port()
    argv = [
        sys.executable,
        "-m",
        "service",
        "serve",
        "--http-port",
        str(http_port),
        "--grpc-port",
        str(grpc_port),
        "--log-level",
        # warning: the access log (INFO) off, as in every figure in the README; `info` measures it.
        (extra or {}).get("BENCH_GATEWAY_LOG_LEVEL") or os.environ.get("BENCH_GATEWAY_LOG_LEVEL", "warning"),
        "--workers",
        str(workers),
    ]
    gateway_env = {
        **env(),
        "ANTHROPIC_API_KEY": KEY,
        "ANTHROPIC_BASE_URL": upstream,
        "CHATGATE_LEDGER_URL": "off",
        **(extra or {}),
    }
    popen = spawn(pinned(core, argv), gateway_env, log)
    wait_http(f"http://127.0.0.1:{http_port}/readyz", popen)
    process = Process(popen, "gateway")
    if workers > 1:
        time.sleep(1.0)  # let every worker bind
        process.children = child_pids(popen.pid)
    return process, http_port, grpc_port


def start_floor(kind: str, core: str | None, upstream: str, log: Path, grpc_port: int = 0) -> tuple[Process, int]:
    """A floor process (``http``, ``grpc`` or ``both``, see bench/floors) on the gateway's core, aimed at the
    same upstream; ``both`` serves gRPC on ``grpc_port`` beside HTTP on the port returned."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        f"bench.floors.{kind}_floor",
        "--port",
        str(port),
        "--upstream",
        upstream,
        "--key",
        KEY,
    ]
    if kind == "both":
        argv += ["--grpc-port", str(grpc_port)]
    popen = spawn(pinned(core, argv), env(), log)
    if kind in ("http", "both"):
        wait_http(f"http://127.0.0.1:{port}/", popen)
    else:
        wait_port(port, popen)
    return Process(popen, f"{kind} floor"), port


def wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"port {port}: process exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


def child_pids(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []
