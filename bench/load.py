"""Throughput runs: wrk for HTTP, h2load for gRPC, the asyncio client where a tool is missing."""

from __future__ import annotations

import asyncio
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .client import closed_loop, post
from .processes import pinned


@dataclass
class Throughput:
    rps: float
    errors: int
    tool: str


def lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def wrk(
    core: str | None, port: int, path: str, body: bytes, headers: dict[str, str], concurrency: int, seconds: float
) -> Throughput:
    lines = ['wrk.method = "POST"', f"wrk.body = {lua_string(body.decode())}"]
    lines += [f'wrk.headers["{k}"] = {lua_string(v)}' for k, v in headers.items()]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lines) + "\n")
    argv = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "-s",
        script.name,
        f"http://127.0.0.1:{port}{path}",
    ]
    out = subprocess.run(pinned(core, argv), capture_output=True, text=True, check=True).stdout
    Path(script.name).unlink()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return Throughput(rps, errors, "wrk")


def grpc_frame(message: bytes) -> bytes:
    """One gRPC length-prefixed message: uncompressed flag, 4-byte big-endian length, bytes."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def h2load(core: str | None, port: int, method: str, message: bytes, concurrency: int, seconds: float) -> Throughput:
    """gRPC load with a pre-framed body. h2load counts HTTP 200, not grpc-status: callers check
    one call's status with a real gRPC client first."""
    with tempfile.NamedTemporaryFile("wb", suffix=".bin", delete=False) as data:
        data.write(grpc_frame(message))
    clients = max(1, concurrency // 8)
    argv = [
        "h2load",
        f"-c{clients}",
        f"-m{concurrency // clients}",
        "-D",
        str(max(1, round(seconds))),
        "--warm-up-time=1",
        "-d",
        data.name,
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        f"http://127.0.0.1:{port}/chatgate.v1.ChatCompletionService/{method}",
    ]
    out = subprocess.run(pinned(core, argv), capture_output=True, text=True, check=True).stdout
    Path(data.name).unlink()
    rps = float(re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", out).group(1))  # type: ignore[union-attr]
    failed = int(re.search(r"(\d+) failed", out).group(1))  # type: ignore[union-attr]
    non_2xx = sum(int(n) for n in re.findall(r"(\d+) [345]xx", out))
    return Throughput(rps, failed + non_2xx, "h2load")


def python_http(
    port: int, path: str, body: bytes, headers: dict[str, str], concurrency: int, seconds: float
) -> Throughput:
    rps, errors = asyncio.run(closed_loop(port, post(path, body, headers), concurrency, seconds))
    return Throughput(rps, errors, "python")


def python_grpc(port: int, method: str, message: bytes, concurrency: int, seconds: float) -> Throughput:
    import time

    import grpc

    async def run() -> tuple[int, int]:
        done = errors = 0
        stop = time.perf_counter() + seconds
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = (channel.unary_unary if method.startswith("Create") else channel.unary_stream)(
                f"/chatgate.v1.ChatCompletionService/{method}"
            )

            async def worker() -> None:
                nonlocal done, errors
                while time.perf_counter() < stop:
                    try:
                        result = call(message)
                        if method.startswith("Create"):
                            await result
                        else:
                            async for _ in result:
                                pass
                        done += 1
                    except grpc.RpcError:
                        errors += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done, errors

    started = time.perf_counter()
    done, errors = asyncio.run(run())
    return Throughput(done / (time.perf_counter() - started), errors, "python")
