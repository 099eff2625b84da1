"""Instructions per request in the gateway (or a floor) process, counted by valgrind's callgrind.

    python -m bench.instructions [--kind json|sse|grpc|grpc-stream|native|native-sse] [--deltas N] [--features NAME]
                                 [--history N] [--floor] [--requests N]

Wall-clock figures on a shared VM move by 2-3x over a day and by +-10% between runs;
instruction counts repeat to about 0.1%, so a change on the hot path is measured here
before and after, and `make bench` says what it means in requests per second. The
process runs under callgrind with instrumentation off while it starts and warms up
(400 requests); then the measured requests run and their instructions (every thread
of the process, the kernel's work excluded) are divided by their number.

CPU per streamed chunk: run `--kind sse` with `--deltas 20` and `--deltas 200`; the
difference divided by 180 is the cost of one chunk. Needs `valgrind` (Debian: `apt-get
install valgrind`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from .client import Connection, post
from .processes import ROOT, env, free_port, start_simulator, wait_http, wait_port
from .sink import TraceSink
from .workloads import DIRECT_PATH, GATEWAY_HEADERS, GATEWAY_PATH, JSON, NATIVE_HEADERS, words

CREATE = "/chatgate.v1.ChatCompletionService/CreateChatCompletion"
STREAM = "/chatgate.v1.ChatCompletionService/StreamChatCompletion"
LIMITS = {"CHATGATE_LIMIT_RPM": "1000000000", "CHATGATE_LIMIT_TPM": "1000000000000"}
FEATURES = {
    "off": {},
    "access-log": {"log": "info"},
    "tracing": {"tracing": "on"},
    "limits": LIMITS,
    "ledger": {"ledger": "on"},
    "production": {"log": "info", "tracing": "on", "ledger": "on", **LIMITS},
    # The production target's set: tracing is measured on its own (bench/targets.py).
    "production-untraced": {"log": "info", "ledger": "on", **LIMITS},
}


def gateway_argv(port: int, grpc_port: int, log_level: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "service",
        "serve",
        "--http-port",
        str(port),
        "--grpc-port",
        str(grpc_port),
        "--log-level",
        log_level,
    ]


def floor_argv(kind: str, port: int, upstream: str) -> list[str]:
    module = "bench.floors.grpc_floor" if kind.startswith("grpc") else "bench.floors.http_floor"
    return [sys.executable, "-m", module, "--port", str(port), "--upstream", upstream, "--key", "sk-ant-bench"]


async def http_requests(port: int, raw: bytes, count: int, connections: int = 8) -> None:
    opened = [await Connection.open(port) for _ in range(connections)]

    async def worker(connection: Connection, n: int) -> None:
        for _ in range(n):
            reply = await connection.request(raw)
            assert reply.status == 200, reply.body[:200]

    try:
        await asyncio.gather(*(worker(c, count // connections) for c in opened))
    finally:
        for connection in opened:
            connection.close()


async def grpc_requests(port: int, message: bytes, count: int, connections: int = 8, *, stream: bool = False) -> None:
    import grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        unary, streaming = channel.unary_unary(CREATE), channel.unary_stream(STREAM)

        async def worker(n: int) -> None:
            for _ in range(n):
                if stream:
                    async for _ in streaming(message, timeout=60):
                        pass
                else:
                    await unary(message, timeout=60)

        await asyncio.gather(*(worker(count // connections) for _ in range(connections)))


def totals(out: Path) -> int:
    """The instructions callgrind dumped (one file per dump and thread)."""
    total = 0
    for dump in out.parent.glob(out.name + "*"):
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                total += int(line.split()[1])
                break
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.instructions", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--kind", choices=("json", "sse", "grpc", "grpc-stream", "native", "native-sse"), default="json"
    )
    parser.add_argument("--deltas", type=int, default=20, help="text deltas per stream (sse kinds)")
    parser.add_argument("--features", choices=FEATURES, default="off")
    parser.add_argument(
        "--history",
        type=int,
        default=0,
        help="earlier exchanges in the conversation (2 messages each) before the question",
    )
    parser.add_argument("--floor", action="store_true", help="measure the floor process instead of the gateway")
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--warm", type=int, default=400, help="requests before counting starts")
    options = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("python -m bench.instructions needs valgrind (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="chatgate-instructions-") as scratch:
        count = measure(options, Path(scratch))
    print(describe(options, count))


def options_for(
    kind: str = "json", *, deltas: int = 20, features: str = "off", history: int = 0, floor: bool = False
) -> argparse.Namespace:
    """The options of one measurement, as the command line would give them (for bench/targets.py)."""
    return argparse.Namespace(
        kind=kind, deltas=deltas, features=features, history=history, floor=floor, requests=800, warm=400
    )


def count_of(options: argparse.Namespace) -> float:
    """Instructions per request for ``options``, in a scratch directory of its own."""
    with tempfile.TemporaryDirectory(prefix="chatgate-instructions-") as scratch:
        return measure(options, Path(scratch))


def describe(options: argparse.Namespace, count: float) -> str:
    what = "floor" if options.floor else f"gateway, features {options.features}"
    deltas = f", {options.deltas} deltas" if options.kind.endswith(("sse", "stream")) else ""
    deltas += f", {options.history * 2 + 1} messages" if options.history else ""
    return f"{options.kind}{deltas} ({what}): {count / 1000:,.0f}k instructions per request"


def measure(options: argparse.Namespace, scratch: Path) -> float:
    simulator, upstream = start_simulator(None, scratch / "simulator.log")
    sink = TraceSink()
    settings = FEATURES[options.features]
    port, grpc_port = free_port(), free_port()
    process_env = {
        **env(),
        "ANTHROPIC_API_KEY": "sk-ant-bench",
        "ANTHROPIC_BASE_URL": upstream,
        "CHATGATE_LEDGER_URL": f"sqlite:{scratch}/ledger.sqlite3" if "ledger" in settings else "off",
        "CHATGATE_LOG_FORMAT": "json",
        **{k: v for k, v in settings.items() if k.startswith("CHATGATE_")},
    }
    if "tracing" in settings:
        process_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.endpoint
    if options.floor:
        argv = floor_argv(options.kind, grpc_port if options.kind.startswith("grpc") else port, upstream)
    else:
        argv = gateway_argv(port, grpc_port, settings.get("log", "warning"))
    out = scratch / "callgrind.out"
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    process = subprocess.Popen(
        [*valgrind, *argv],
        cwd=ROOT,
        env=process_env,
        stdout=(scratch / "process.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        if options.kind.startswith("grpc"):
            wait_port(grpc_port, process, timeout=180)
            stream = options.kind == "grpc-stream"
            message = replace(words(options.deltas) if stream else JSON, history=options.history).grpc_message()
            run = lambda n: asyncio.run(grpc_requests(grpc_port, message, n, stream=stream))  # noqa: E731
        else:
            wait_http(f"http://127.0.0.1:{port}/" + ("" if options.floor else "readyz"), process, timeout=180)
            workload = replace(words(options.deltas) if options.kind.endswith("sse") else JSON, history=options.history)
            if options.kind.startswith("native") and not options.floor:  # the floor has no native surface
                raw = post(DIRECT_PATH, workload.direct_body(), NATIVE_HEADERS)
            else:
                raw = post(GATEWAY_PATH, workload.gateway_body(), GATEWAY_HEADERS)
            run = lambda n: asyncio.run(http_requests(port, raw, n))  # noqa: E731
        run(options.warm)  # caches, pools, first-use imports
        subprocess.run(["callgrind_control", "-i", "on", str(process.pid)], capture_output=True, check=True)
        run(options.requests)
        time.sleep(1.5 if "tracing" in settings else 0.2)  # a timed trace export lands inside the count
        subprocess.run(["callgrind_control", "-d", str(process.pid)], capture_output=True, check=True)
        time.sleep(1)
        count = totals(out)
    finally:
        process.terminate()
        process.wait(60)
        simulator.stop()
        sink.close()
    return count / options.requests


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
