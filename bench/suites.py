"""The measurements. Each returns plain numbers; the report turns them into the table."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from .client import Connection, post
from .load import Throughput, h2load, python_grpc, python_http, wrk
from .processes import Process
from .workloads import (
    DIRECT_HEADERS,
    DIRECT_PATH,
    GATEWAY_HEADERS,
    GATEWAY_PATH,
    JSON,
    NATIVE_HEADERS,
    RESPONSES_PATH,
    SSE20,
    Workload,
    words,
)

CREATE = "/chatgate.v1.ChatCompletionService/CreateChatCompletion"
STREAM = "/chatgate.v1.ChatCompletionService/StreamChatCompletion"


@dataclass
class Rig:
    """Where things run: ports, the load core, which tools exist, how long each run lasts."""

    gateway: Process
    http_port: int
    grpc_port: int
    sim_port: int
    load_core: str | None
    tools: dict[str, bool]
    seconds: float
    smoke: bool
    floors: Floors | None = None

    def http_load(self, port: int, path: str, body: bytes, headers: dict[str, str], concurrency: int) -> Throughput:
        if self.tools["wrk"]:
            return wrk(self.load_core, port, path, body, headers, concurrency, self.seconds)
        return python_http(port, path, body, headers, concurrency, self.seconds)

    def grpc_load(self, method: str, message: bytes, concurrency: int) -> Throughput:
        if self.tools["h2load"]:
            return h2load(self.load_core, self.grpc_port, method, message, concurrency, self.seconds)
        return python_grpc(self.grpc_port, method, message, concurrency, self.seconds)

    def direct(self, workload: Workload, concurrency: int) -> Throughput:
        return self.http_load(self.sim_port, DIRECT_PATH, workload.direct_body(), DIRECT_HEADERS, concurrency)

    def gateway_http(self, workload: Workload, concurrency: int) -> Throughput:
        return self.http_load(self.http_port, GATEWAY_PATH, workload.gateway_body(), GATEWAY_HEADERS, concurrency)

    def gateway_native(self, workload: Workload, concurrency: int) -> Throughput:
        """The native Messages surface, sent the very body the direct path sends (bytes through)."""
        return self.http_load(self.http_port, DIRECT_PATH, workload.direct_body(), NATIVE_HEADERS, concurrency)

    def gateway_responses(self, workload: Workload, concurrency: int) -> Throughput:
        """The OpenAI Responses surface, the same request as `gateway_http` in that dialect."""
        return self.http_load(self.http_port, RESPONSES_PATH, workload.responses_body(), GATEWAY_HEADERS, concurrency)

    def gateway_grpc(self, workload: Workload, concurrency: int) -> Throughput:
        method = "StreamChatCompletion" if workload.stream else "CreateChatCompletion"
        return self.grpc_load(method, workload.grpc_message(), concurrency)

    def floor_http(self, workload: Workload, concurrency: int) -> Throughput:
        assert self.floors is not None
        body = workload.gateway_body()
        return self.http_load(self.floors.http_port, GATEWAY_PATH, body, GATEWAY_HEADERS, concurrency)

    def floor_grpc(self, workload: Workload, concurrency: int) -> Throughput:
        assert self.floors is not None
        method = "StreamChatCompletion" if workload.stream else "CreateChatCompletion"
        if self.tools["h2load"]:
            return h2load(
                self.load_core, self.floors.grpc_port, method, workload.grpc_message(), concurrency, self.seconds
            )
        return python_grpc(self.floors.grpc_port, method, workload.grpc_message(), concurrency, self.seconds)

    def with_cpu(self, run: Callable[[], Throughput], process: Process | None = None) -> tuple[Throughput, float]:
        """The run, and the process's (the gateway's) CPU seconds per second of wall time during it."""
        process = process or self.gateway
        cpu, wall = process.cpu_seconds(), time.perf_counter()
        result = run()
        return result, (process.cpu_seconds() - cpu) / (time.perf_counter() - wall)


@dataclass
class Floors:
    """The two floor processes (bench/floors), on the gateway's core."""

    http: Process
    http_port: int
    grpc: Process
    grpc_port: int

    def of(self, protocol: str) -> Process:
        return self.grpc if protocol.startswith("grpc") else self.http


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- latency at concurrency 1 --------------------------------------------------


async def http_timings(port: int, raw: bytes, count: int) -> list[float]:
    connection = await Connection.open(port)
    try:
        out = []
        for _ in range(count):
            reply = await connection.request(raw)
            assert reply.status == 200, reply.body[:200]
            out.append(time.perf_counter() - reply.started)
        return out
    finally:
        connection.close()


def grpc_timings(port: int, method: str, message: bytes, count: int) -> list[float]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        unary = method == CREATE
        call = (channel.unary_unary if unary else channel.unary_stream)(method)
        out = []
        for _ in range(count):
            started = time.perf_counter()
            if unary:
                call(message, timeout=10)
            else:
                for _ in call(message, timeout=10):
                    pass
            out.append(time.perf_counter() - started)
        return out


def latency(rig: Rig, rounds: int, per_round: int) -> dict[str, Any]:
    """Added latency over the direct path, in interleaved rounds so drift hits both sides alike."""
    results: dict[str, Any] = {}
    cases = {
        "http_json": (
            JSON,
            lambda n: asyncio.run(
                http_timings(rig.http_port, post(GATEWAY_PATH, JSON.gateway_body(), GATEWAY_HEADERS), n)
            ),
        ),
        "http_sse": (
            SSE20,
            lambda n: asyncio.run(
                http_timings(rig.http_port, post(GATEWAY_PATH, SSE20.gateway_body(), GATEWAY_HEADERS), n)
            ),
        ),
        "grpc_unary": (JSON, lambda n: grpc_timings(rig.grpc_port, CREATE, JSON.grpc_message(), n)),
        "grpc_stream": (SSE20, lambda n: grpc_timings(rig.grpc_port, STREAM, SSE20.grpc_message(), n)),
    }
    # HTTP JSON also through the HTTP floor, in the same rounds: what any Python process in the
    # gateway's place adds on this machine, beside the published method's added p99.
    floor_port = rig.floors.http_port if rig.floors is not None else None
    for name, (workload, gateway_run) in cases.items():
        direct_raw = post(DIRECT_PATH, workload.direct_body(), DIRECT_HEADERS)
        floor_raw = post(GATEWAY_PATH, workload.gateway_body(), GATEWAY_HEADERS)
        floor = floor_port if name == "http_json" else None
        gateway_run(max(5, per_round // 4))  # warm-up
        direct_rounds, gateway_rounds, floor_rounds = [], [], []
        for _ in range(rounds):
            direct_rounds.append(asyncio.run(http_timings(rig.sim_port, direct_raw, per_round)))
            gateway_rounds.append(gateway_run(per_round))
            if floor is not None:
                floor_rounds.append(asyncio.run(http_timings(floor, floor_raw, per_round)))
        d50 = statistics.median(statistics.median(r) for r in direct_rounds)
        g50 = statistics.median(statistics.median(r) for r in gateway_rounds)
        d99 = percentile([x for r in direct_rounds for x in r], 0.99)
        g99 = percentile([x for r in gateway_rounds for x in r], 0.99)
        results[name] = {
            "direct_p50_ms": d50 * 1e3,
            "gateway_p50_ms": g50 * 1e3,
            "added_p50_ms": (g50 - d50) * 1e3,
            "direct_p99_ms": d99 * 1e3,
            "gateway_p99_ms": g99 * 1e3,
            "added_p99_ms": (g99 - d99) * 1e3,
        }
        if floor_rounds:
            f50 = statistics.median(statistics.median(r) for r in floor_rounds)
            f99 = percentile([x for r in floor_rounds for x in r], 0.99)
            results[name]["floor_added_p50_ms"] = (f50 - d50) * 1e3
            results[name]["floor_added_p99_ms"] = (f99 - d99) * 1e3
    return results


# --- throughput at concurrency 64 ---------------------------------------------


def throughput(rig: Rig, concurrency: int, rounds: int = 1) -> dict[str, Any]:
    """Every row beside the direct path and its floor, ``rounds`` times over (each round measures the
    direct paths, the floors and every gateway row in turn); each figure is the median of its rounds,
    a share of the floor taken within its round, so drift of the machine hits both sides alike."""
    samples = [throughput_round(rig, concurrency) for _ in range(rounds)]
    results: dict[str, Any] = {}
    for name, first in samples[0].items():
        results[name] = {
            key: statistics.median([s[name][key] for s in samples if s[name].get(key) is not None])
            if isinstance(value, int | float) and not isinstance(value, bool)
            else value
            for key, value in first.items()
        }
        results[name]["errors"] = sum(s[name]["errors"] for s in samples)  # any error in any round shows
        results[name]["rounds"] = rounds
    return results


def throughput_round(rig: Rig, concurrency: int) -> dict[str, Any]:
    direct_json = rig.direct(JSON, concurrency)
    direct_sse = rig.direct(SSE20, concurrency)
    runs = {
        "http_json": (lambda: rig.gateway_http(JSON, concurrency), direct_json),
        "http_sse": (lambda: rig.gateway_http(SSE20, concurrency), direct_sse),
        "grpc_unary": (lambda: rig.gateway_grpc(JSON, concurrency), direct_json),
        "grpc_stream": (lambda: rig.gateway_grpc(SSE20, concurrency), direct_sse),
        "native_json": (lambda: rig.gateway_native(JSON, concurrency), direct_json),
        "native_sse": (lambda: rig.gateway_native(SSE20, concurrency), direct_sse),
        "responses_json": (lambda: rig.gateway_responses(JSON, concurrency), direct_json),
        "responses_sse": (lambda: rig.gateway_responses(SSE20, concurrency), direct_sse),
    }
    floors = floor_throughput(rig, concurrency) if rig.floors is not None else {}
    results: dict[str, Any] = {}
    for name, (run, direct) in runs.items():
        result, cpu = rig.with_cpu(run)
        results[name] = {
            "rps": result.rps,
            "direct_rps": direct.rps,
            "ratio": result.rps / direct.rps,
            "gateway_cpu": cpu,
            "cpu_us_per_request": cpu / result.rps * 1e6 if result.rps else None,
            "errors": result.errors + direct.errors,
            "tool": result.tool,
        }
        floor = floors.get(FLOOR_OF[name])
        if floor:
            results[name] |= {
                "floor_rps": floor["rps"],
                "floor_ratio": result.rps / floor["rps"],
                "floor_cpu_us_per_request": floor["cpu_us_per_request"],
                "cpu_vs_floor": results[name]["cpu_us_per_request"] / floor["cpu_us_per_request"],
            }
    return results


# Which floor each gateway row is read against: the same request in the floor's protocol.
FLOOR_OF = {
    "http_json": "http_json",
    "http_sse": "http_sse",
    "grpc_unary": "grpc_unary",
    "grpc_stream": "grpc_stream",
    "native_json": "http_json",
    "native_sse": "http_sse",
    "responses_json": "http_json",
    "responses_sse": "http_sse",
}


def floor_throughput(rig: Rig, concurrency: int) -> dict[str, Any]:
    assert rig.floors is not None
    floors = rig.floors
    runs = {
        "http_json": (lambda: rig.floor_http(JSON, concurrency), floors.http),
        "http_sse": (lambda: rig.floor_http(SSE20, concurrency), floors.http),
        "grpc_unary": (lambda: rig.floor_grpc(JSON, concurrency), floors.grpc),
        "grpc_stream": (lambda: rig.floor_grpc(SSE20, concurrency), floors.grpc),
    }
    out = {}
    for name, (run, process) in runs.items():
        run()  # warm
        result, cpu = rig.with_cpu(run, process)
        out[name] = {"rps": result.rps, "cpu_us_per_request": cpu / result.rps * 1e6 if result.rps else None}
    return out


def realistic(rig: Rig, concurrency: int) -> dict[str, Any]:
    """A 20 ms upstream at concurrency 64: how much of the direct throughput the gateway keeps."""
    slow = Workload("Hello there sim:stall=0.02", stream=False, max_tokens=64)
    direct = rig.direct(slow, concurrency)
    results = {}
    for name, run in (
        ("http_json", lambda: rig.gateway_http(slow, concurrency)),
        ("grpc_unary", lambda: rig.gateway_grpc(slow, concurrency)),
    ):
        result = run()
        results[name] = {
            "rps": result.rps,
            "direct_rps": direct.rps,
            "ratio": result.rps / direct.rps,
            "errors": result.errors + direct.errors,
        }
    return results


# --- streaming cost -------------------------------------------------------------


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares slope and intercept."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)
    return slope, mean_y - slope * mean_x


def stream_cost(rig: Rig, sizes: tuple[int, ...], concurrency: int) -> dict[str, Any]:
    """Gateway CPU per stream at several stream lengths; the slope is the cost of one chunk."""
    results: dict[str, Any] = {}
    cases: list[tuple[str, str, Callable[[Workload, int], Throughput], Process]] = [
        ("http_sse", "", rig.gateway_http, rig.gateway),
        ("grpc_stream", "", rig.gateway_grpc, rig.gateway),
    ]
    if rig.floors is not None:
        cases += [
            ("http_sse", "floor_", rig.floor_http, rig.floors.http),
            ("grpc_stream", "floor_", rig.floor_grpc, rig.floors.grpc),
        ]
    for name, prefix, run, process in cases:
        points = []
        for n in sizes:
            cpu, wall = process.cpu_seconds(), time.perf_counter()
            result = run(words(n), concurrency)
            elapsed = time.perf_counter() - wall
            cpu_per_stream = (process.cpu_seconds() - cpu) / (result.rps * elapsed)
            points.append((float(n), cpu_per_stream * 1e6))
        slope, intercept = fit(points)
        results.setdefault(name, {}).update(
            {
                f"{prefix}us_per_chunk": slope,
                f"{prefix}us_per_stream": intercept,
                f"{prefix}points_us_per_stream": {int(n): round(y, 1) for n, y in points},
            }
        )
    for row in results.values():
        if "floor_us_per_chunk" in row:
            row["chunk_vs_floor"] = row["us_per_chunk"] / row["floor_us_per_chunk"]
    return results


# --- time to first chunk with a paced upstream ---------------------------------


async def http_first_content(port: int, raw: bytes, marker: bytes) -> float:
    connection = await Connection.open(port)
    try:
        reply = await connection.request(raw, keep_pieces=True)
        first = reply.first(marker)
        assert first is not None, reply.body[:300]
        return first
    finally:
        connection.close()


def grpc_first_content(port: int, message: bytes) -> float:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        from chatgate.v1 import chat_pb2

        call = channel.unary_stream(STREAM, response_deserializer=chat_pb2.ChatCompletionChunk.FromString)
        started = time.perf_counter()
        first = None
        for chunk in call(message, timeout=30):
            if first is None and any(c.delta.content for c in chunk.choices):
                first = time.perf_counter() - started
        assert first is not None
        return first


def first_chunk(rig: Rig, rounds: int, deltas: int, pace_ms: int) -> dict[str, Any]:
    workload = words(deltas, pace_ms=pace_ms)
    direct_raw = post(DIRECT_PATH, workload.direct_body(), DIRECT_HEADERS)
    gateway_raw = post(GATEWAY_PATH, workload.gateway_body(), GATEWAY_HEADERS)
    direct, over_http, over_grpc = [], [], []
    for _ in range(rounds):
        direct.append(asyncio.run(http_first_content(rig.sim_port, direct_raw, b"text_delta")))
        over_http.append(asyncio.run(http_first_content(rig.http_port, gateway_raw, b'"content":"')))
        over_grpc.append(grpc_first_content(rig.grpc_port, workload.grpc_message()))
    d = statistics.median(direct)
    return {
        "direct_ms": d * 1e3,
        "http_sse": {
            "ttft_ms": statistics.median(over_http) * 1e3,
            "added_ms": (statistics.median(over_http) - d) * 1e3,
        },
        "grpc_stream": {
            "ttft_ms": statistics.median(over_grpc) * 1e3,
            "added_ms": (statistics.median(over_grpc) - d) * 1e3,
        },
    }


def stream_overhead(rig: Rig, rounds: int, deltas: int = 64, pace_ms: int = 20) -> dict[str, Any]:
    """The published gateway benchmarks' streaming workload: a stream of ``deltas`` text deltas
    ``pace_ms`` apart at concurrency 1, its whole duration through the gateway (HTTP SSE) against
    the same stream from the upstream directly, in interleaved rounds."""
    workload = words(deltas, pace_ms=pace_ms)
    direct_raw = post(DIRECT_PATH, workload.direct_body(), DIRECT_HEADERS)
    gateway_raw = post(GATEWAY_PATH, workload.gateway_body(), GATEWAY_HEADERS)
    direct: list[float] = []
    gateway: list[float] = []
    for _ in range(rounds):
        direct.extend(asyncio.run(http_timings(rig.sim_port, direct_raw, 1)))
        gateway.extend(asyncio.run(http_timings(rig.http_port, gateway_raw, 1)))
    d50, g50 = statistics.median(direct), statistics.median(gateway)
    return {
        "deltas": deltas,
        "pace_ms": pace_ms,
        "direct_ms": d50 * 1e3,
        "gateway_ms": g50 * 1e3,
        "added_p50_ms": (g50 - d50) * 1e3,
        "added_p99_ms": (percentile(gateway, 0.99) - percentile(direct, 0.99)) * 1e3,
    }


async def concurrent_first(port: int, raw: bytes, marker: bytes, count: int) -> list[float]:
    """Time to the first content of ``count`` paced streams started together, one connection each."""

    async def one(connection: Connection) -> float:
        try:
            reply = await connection.request(raw, keep_pieces=True)
            first = reply.first(marker)
            assert first is not None, reply.body[:300]
            return first
        finally:
            connection.close()

    connections = await asyncio.gather(*(Connection.open(port) for _ in range(count)))
    return list(await asyncio.gather(*(one(c) for c in connections)))


async def steady_first(port: int, raw: bytes, marker: bytes, count: int, seconds: float) -> list[float]:
    """Time to the first content with ``count`` paced streams always in flight: each connection sends
    its next stream as soon as the last one ends, so arrivals spread out as they do under a steady
    load. Only streams started after every connection has finished one are counted (the opening
    burst, when all start together, is what ``concurrent_first`` measures)."""
    connections = await asyncio.gather(*(Connection.open(port) for _ in range(count)))
    warmed: set[int] = set()
    times: list[float] = []
    stop = time.perf_counter() + seconds

    async def loop(index: int, connection: Connection) -> None:
        try:
            while time.perf_counter() < stop:
                counted = len(warmed) == count
                reply = await connection.request(raw, keep_pieces=True)
                first = reply.first(marker)
                assert first is not None, reply.body[:300]
                if counted:
                    times.append(first)
                warmed.add(index)
        finally:
            connection.close()

    await asyncio.gather(*(loop(i, c) for i, c in enumerate(connections)))
    return times


async def concurrent_grpc_first(port: int, message: bytes, count: int) -> list[float]:
    from chatgate.v1 import chat_pb2

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_stream(STREAM, response_deserializer=chat_pb2.ChatCompletionChunk.FromString)

        async def one() -> float:
            started = time.perf_counter()
            first = None
            async for chunk in call(message, timeout=30):
                if first is None and any(c.delta.content for c in chunk.choices):
                    first = time.perf_counter() - started
            assert first is not None
            return first

        return list(await asyncio.gather(*(one() for _ in range(count))))


def first_chunk_concurrent(
    rig: Rig, streams: int, rounds: int, deltas: int, pace_ms: int, steady_seconds: float = 0.0
) -> dict[str, Any]:
    """Time to first content at ``streams`` concurrent paced streams: the gateway beside its floor
    (median of every stream of every round; the rounds alternate so drift hits all alike). Two ways:
    all ``streams`` started at the same instant (a burst: the median stream waits behind half the
    others' start), and, with ``steady_seconds``, ``streams`` kept in flight (over HTTP)."""
    assert rig.floors is not None
    workload = words(deltas, pace_ms=pace_ms)
    raw = post(GATEWAY_PATH, workload.gateway_body(), GATEWAY_HEADERS)
    direct_raw = post(DIRECT_PATH, workload.direct_body(), DIRECT_HEADERS)
    message = workload.grpc_message()
    runs: dict[str, Callable[[], list[float]]] = {
        "direct": lambda: asyncio.run(concurrent_first(rig.sim_port, direct_raw, b"text_delta", streams)),
        "http_floor": lambda: asyncio.run(concurrent_first(rig.floors.http_port, raw, b'"content":"', streams)),  # type: ignore[union-attr]
        "http_sse": lambda: asyncio.run(concurrent_first(rig.http_port, raw, b'"content":"', streams)),
        "grpc_floor": lambda: asyncio.run(concurrent_grpc_first(rig.floors.grpc_port, message, streams)),  # type: ignore[union-attr]
        "grpc_stream": lambda: asyncio.run(concurrent_grpc_first(rig.grpc_port, message, streams)),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            times[name] += run()
    median = {name: statistics.median(values) * 1e3 for name, values in times.items()}
    result: dict[str, Any] = {
        "streams": streams,
        "direct_ms": median["direct"],
        **{
            name: {
                "ttft_ms": median[name],
                "floor_ms": median[floor],
                "added_over_floor_ms": median[name] - median[floor],
            }
            for name, floor in (("http_sse", "http_floor"), ("grpc_stream", "grpc_floor"))
        },
    }
    if steady_seconds:
        steady: dict[str, list[float]] = {"http_floor": [], "http_sse": []}
        for _ in range(rounds // 2 or 1):
            for name, port in (("http_floor", rig.floors.http_port), ("http_sse", rig.http_port)):
                steady[name] += asyncio.run(steady_first(port, raw, b'"content":"', streams, steady_seconds))
        gateway, floor_ms = (statistics.median(steady[n]) * 1e3 for n in ("http_sse", "http_floor"))
        result["steady"] = {
            "ttft_ms": gateway,
            "floor_ms": floor_ms,
            "added_over_floor_ms": gateway - floor_ms,
            "streams_counted": len(steady["http_sse"]),
        }
    return result


# --- memory with many paced streams -------------------------------------------


async def paced_streams(
    port: int, raw: bytes, count: int, pace: float, sample: Callable[[], float], sample_after: float
) -> dict[str, Any]:
    gaps: list[float] = []
    complete = 0
    opened = 0

    async def one() -> None:
        nonlocal complete, opened
        connection = await Connection.open(port)
        opened += 1
        last = [time.perf_counter()]

        def on_piece(now: float, data: bytes) -> None:
            if data.startswith(b"data: {") or data.startswith(b": "):
                gaps.append(now - last[0])
                last[0] = now

        try:
            reply = await connection.request(raw, on_piece=on_piece)
            if reply.status == 200 and reply.body.rstrip().endswith(b"data: [DONE]"):
                complete += 1
        finally:
            connection.close()

    tasks = [asyncio.create_task(one()) for _ in range(count)]
    await asyncio.sleep(sample_after)
    during = sample()
    await asyncio.gather(*tasks, return_exceptions=True)
    late = sum(1 for g in gaps[1:] if g > 10 * pace)
    return {
        "rss_during_mib": during,
        "complete": complete,
        "opened": opened,
        "max_gap_ms": max(gaps) * 1e3 if gaps else 0.0,
        "late_chunks": late,
    }


def memory(rig: Rig, streams: int, deltas: int, pace_ms: int) -> dict[str, Any]:
    idle = rig.gateway.rss_mib()
    workload = words(deltas, pace_ms=pace_ms)
    raw = post(GATEWAY_PATH, workload.gateway_body(), GATEWAY_HEADERS)
    duration = deltas * pace_ms / 1000
    run = asyncio.run(
        paced_streams(rig.http_port, raw, streams, pace_ms / 1000, rig.gateway.rss_mib, sample_after=duration / 2)
    )
    after = rig.gateway.rss_mib()
    return {
        "idle_rss_mib": idle,
        **run,
        "streams": streams,
        "rss_after_mib": after,
        "kib_per_stream": (run["rss_during_mib"] - idle) * 1024 / streams,
        "dropped": streams - run["complete"],
    }


# --- soak: mixed traffic for minutes, watching memory ------------------------------


def grpc_mix(port: int, stop: float, counts: dict[str, int]) -> None:
    """gRPC unary calls, whole streams, streams cancelled after the first chunk (the leak-prone path),
    a call the gateway retries before it succeeds, and one whose deadline cuts a stalled upstream."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        unary, stream = channel.unary_unary(CREATE), channel.unary_stream(STREAM)
        paced = words(50, pace_ms=10).grpc_message()
        stalled = Workload("sim:stall=5", stream=False).grpc_message()
        n = 0
        while time.perf_counter() < stop:
            n += 1
            # Every call may fail (a breaker opened by the HTTP mix's faults, say): the soak is about leaks.
            with contextlib.suppress(grpc.RpcError):
                unary(JSON.grpc_message(), timeout=10)
                for _ in stream(SSE20.grpc_message(), timeout=10):
                    pass
                call = stream(paced, timeout=10)
                next(call)
                call.cancel()
                unary(Workload(f"soak {n} sim:status=529 sim:times=1", stream=False).grpc_message(), timeout=10)
            with contextlib.suppress(grpc.RpcError):
                unary(stalled, timeout=0.2)
            counts["grpc"] += 5


async def http_mix(port: int, stop: float, counts: dict[str, int]) -> None:
    """Whole replies, streams, upstream errors, and streams the client leaves after one chunk."""
    requests = [post(GATEWAY_PATH, w.gateway_body(), GATEWAY_HEADERS) for w in (JSON, SSE20)]
    n = 0
    leave = post(GATEWAY_PATH, words(50, pace_ms=10).gateway_body(), GATEWAY_HEADERS)
    while time.perf_counter() < stop:
        connection = await Connection.open(port)
        try:
            n += 1  # a new body each round, so the simulator fails its first attempt and the gateway retries
            retried = Workload(f"soak {n} sim:status=500 sim:times=1", stream=False).gateway_body()
            # An overloaded stream that fails twice, then answers: retried before its first byte.
            overloaded = Workload(f"soak {n} sim:status=529 sim:times=2", stream=True).gateway_body()
            extra = [post(GATEWAY_PATH, body, GATEWAY_HEADERS) for body in (retried, overloaded)]
            for raw in [*requests, *extra]:
                await connection.request(raw)
                counts["http"] += 1
        finally:
            connection.close()
        quitter = await Connection.open(port)
        quitter.writer.write(leave)
        await quitter.reader.readuntil(b"data: ")
        quitter.close()
        counts["http"] += 1


def soak(rig: Rig, minutes: float, concurrency: int = 16) -> dict[str, Any]:
    import threading

    stop = time.perf_counter() + minutes * 60
    counts = {"http": 0, "grpc": 0}
    threads = [threading.Thread(target=grpc_mix, args=(rig.grpc_port, stop, counts), daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    samples: list[tuple[float, float]] = []
    resources: list[tuple[float, float, int, int]] = []  # minute, RSS MiB, open fds, asyncio tasks

    async def drive() -> None:
        workers = [asyncio.create_task(http_mix(rig.http_port, stop, counts)) for _ in range(concurrency)]
        started = time.perf_counter()
        while time.perf_counter() < stop:
            minute, rss = (time.perf_counter() - started) / 60, rig.gateway.rss_mib()
            samples.append((minute, rss))
            resources.append((minute, rss, rig.gateway.open_fds(), await asyncio.to_thread(tasks_of, rig)))
            await asyncio.sleep(min(15.0, max(0.5, minutes * 60 / 40)))
        await asyncio.gather(*workers)

    asyncio.run(drive())
    for thread in threads:
        thread.join()
    time.sleep(1)
    late = [s for s in samples if s[0] >= minutes / 2] or samples
    slope, _ = fit(late) if len(late) > 1 else (0.0, 0.0)
    return {
        "minutes": minutes,
        "requests": counts["http"] + counts["grpc"],
        "rss_start_mib": samples[0][1],
        "rss_end_mib": samples[-1][1],
        "rss_max_mib": max(r for _, r in samples),
        "growth_mib_per_min_second_half": slope,
        "rss_after_mib": rig.gateway.rss_mib(),
        "samples": [(round(t, 2), round(r, 1)) for t, r in samples],
        "resources": [(round(t, 2), round(r, 1), fds, tasks) for t, r, fds, tasks in resources],
        "after": {"fds": rig.gateway.open_fds(), "tasks": tasks_of(rig)},
    }


def tasks_of(rig: Rig) -> int:
    """The gateway's live asyncio tasks, from its own /metrics."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{rig.http_port}/metrics", timeout=10).text
    return int(next(line for line in text.splitlines() if line.startswith("chatgate_asyncio_tasks ")).split()[1])
