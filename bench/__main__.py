"""``make bench``: the gateway beside the direct path, one table and one JSON file.

The gateway runs on core 0; the simulator and every load generator on core 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import suites, targets
from .processes import ROOT, cores, free_port, start_floor, start_gateway, start_simulator
from .report import table
from .sink import TraceSink
from .tools import ensure_tools


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def run(options: argparse.Namespace) -> dict[str, Any]:
    smoke = options.smoke
    gateway_core, load_core = cores()
    if load_core is not None:
        os.sched_setaffinity(0, {int(load_core)})
    tools = ensure_tools(install=not smoke)
    logs = Path(tempfile.mkdtemp(prefix="chatgate-bench-"))
    simulator, sim_url = start_simulator(load_core, logs / "simulator.log")
    gateway, http_port, grpc_port = start_gateway(gateway_core, sim_url, logs / "gateway.log")
    http_floor, http_floor_port = start_floor("http", gateway_core, sim_url, logs / "http-floor.log")
    grpc_floor, grpc_floor_port = start_floor("grpc", gateway_core, sim_url, logs / "grpc-floor.log")
    floors = suites.Floors(http_floor, http_floor_port, grpc_floor, grpc_floor_port)
    results: dict[str, Any] = {
        "machine": machine(),
        "smoke": smoke,
        "pinned": gateway_core is not None,
        "tools": tools,
        "logs": str(logs),
    }
    try:
        rig = suites.Rig(
            gateway,
            http_port,
            grpc_port,
            int(sim_url.rsplit(":", 1)[1]),
            load_core,
            tools,
            seconds=1 if smoke else options.seconds,
            smoke=smoke,
            floors=floors,
        )
        suites.latency(rig, rounds=1, per_round=20)  # warm both paths
        results["idle_rss_mib"] = gateway.rss_mib()
        results["floor_idle_rss_mib"] = {"http": http_floor.rss_mib(), "grpc": grpc_floor.rss_mib()}
        step = (lambda name: name in options.only) if options.only else (lambda name: True)
        results.update(run_suites(rig, step, smoke))
        if "memory" in results:
            results["memory"]["idle_rss_mib"] = results["idle_rss_mib"]
        if options.soak:
            results["soak"] = suites.soak(rig, options.soak)
    finally:
        gateway.stop()
    try:
        if not smoke and step("workers"):
            results["workers"] = workers(gateway_core, load_core, sim_url, logs, tools, options.seconds)
        if not smoke and step("features"):
            results["features"] = features(gateway_core, load_core, sim_url, logs, tools, options.seconds, floors)
    finally:
        http_floor.stop()
        grpc_floor.stop()
        simulator.stop()
    if not smoke and step("targets"):  # callgrind: minutes, so not in the smoke run
        results["instructions"] = targets.instructions()
    results["targets"] = targets.evaluate(results)
    return results


def run_suites(rig: suites.Rig, step: Callable[[str], bool], smoke: bool) -> dict[str, Any]:
    """Every suite on the one gateway with its features off, each when ``step`` names it."""
    results: dict[str, Any] = {}
    if step("latency"):
        results["latency"] = suites.latency(rig, rounds=2 if smoke else 10, per_round=20 if smoke else 200)
    if step("throughput"):
        results["throughput"] = suites.throughput(rig, concurrency=8 if smoke else 64, rounds=1 if smoke else 3)
    if step("stream_cost"):
        results["stream_cost"] = suites.stream_cost(
            rig, (5, 10) if smoke else (10, 50, 100), concurrency=8 if smoke else 64
        )
    if step("first_chunk"):
        results["first_chunk"] = suites.first_chunk(
            rig, rounds=1 if smoke else 8, deltas=4 if smoke else 64, pace_ms=20
        )
    if step("first_chunk"):
        results["first_chunk_c64"] = suites.first_chunk_concurrent(
            rig, streams=8 if smoke else 64, rounds=1 if smoke else 6, deltas=4 if smoke else 8, pace_ms=20
        )
    if step("realistic"):
        results["realistic"] = suites.realistic(rig, concurrency=8 if smoke else 64)
    if step("memory"):
        results["memory"] = suites.memory(rig, streams=20 if smoke else 1000, deltas=5 if smoke else 100, pace_ms=100)
    if step("stream_overhead"):
        results["stream_overhead"] = suites.stream_overhead(rig, rounds=2 if smoke else 20)
    return results


def workers(
    gateway_core: str | None, load_core: str | None, sim_url: str, logs: Path, tools: dict[str, bool], seconds: float
) -> dict[str, Any]:
    """One worker on core 0 against two workers on both cores; the load stays on core 1 for both."""
    measured = {}
    for count in (1, 2):
        core = gateway_core if count == 1 else None
        gateway, http_port, grpc_port = start_gateway(core, sim_url, logs / f"gateway-{count}.log", workers=count)
        try:
            sim_port = int(sim_url.rsplit(":", 1)[1])
            rig = suites.Rig(gateway, http_port, grpc_port, sim_port, load_core, tools, seconds, smoke=False)
            rig.gateway_http(suites.JSON, 64)  # warm every worker
            result, cpu = rig.with_cpu(lambda rig=rig: rig.gateway_http(suites.JSON, 64))
            measured[count] = (result.rps, cpu)
        finally:
            gateway.stop()
    (one_rps, one_cpu), (two_rps, two_cpu) = measured[1], measured[2]
    return {
        "one_rps": one_rps,
        "two_rps": two_rps,
        "scaling": two_rps / one_rps,
        "one_cpu": one_cpu,
        "two_cpu": two_cpu,
        "efficiency": (two_rps / two_cpu) / (one_rps / one_cpu),
    }


ACCESS_LOG = {"BENCH_GATEWAY_LOG_LEVEL": "info", "CHATGATE_LOG_FORMAT": "json"}
TRACING = {"OTEL_EXPORTER_OTLP_ENDPOINT": "{sink}", "OTEL_SERVICE_NAME": "chatgate-bench"}  # the default sampler
LOCAL_LIMITS = {"CHATGATE_LIMIT_RPM": "1000000000", "CHATGATE_LIMIT_TPM": "1000000000000"}
FEATURES: dict[str, dict[str, str]] = {
    "off": {},
    "access log (JSON)": ACCESS_LOG,
    "tracing (default sampler)": TRACING,
    "limits in process": {"CHATGATE_LIMIT_RPM": "1000000000", "CHATGATE_LIMIT_TPM": "1000000000000"},
    "limits in Redis": {
        "CHATGATE_LIMIT_RPM": "1000000000",
        "CHATGATE_LIMIT_TPM": "1000000000000",
        "CHATGATE_LIMITS_REDIS_URL": "redis://127.0.0.1:6379/15",
    },
    "ledger (SQLite)": {"CHATGATE_LEDGER_URL": "sqlite:{logs}/bench-ledger.sqlite3"},
    # What `chatgate serve` does with no settings: the access log and the SQLite ledger on.
    "default config": {
        "BENCH_GATEWAY_LOG_LEVEL": "info",
        "CHATGATE_LEDGER_URL": "sqlite:{logs}/default-ledger.sqlite3",
    },
    # Everything a production config turns on (metrics are always on).
    "production (all on)": {
        **ACCESS_LOG,
        **TRACING,
        **LOCAL_LIMITS,
        "CHATGATE_LEDGER_URL": "sqlite:{logs}/production-ledger.sqlite3",
    },
}


def features(
    gateway_core: str | None,
    load_core: str | None,
    sim_url: str,
    logs: Path,
    tools: dict[str, bool],
    seconds: float,
    floors: suites.Floors,
    rounds: int = 3,
) -> dict[str, Any]:
    """HTTP JSON and SSE at c=64 with each optional feature on alone, beside all off, in one run: the
    gateway's CPU per request says what each feature costs. Every configuration runs as its own
    gateway, all started first (idle, on the gateway's core), then measured in turn, ``rounds`` times
    over; each figure is the median of its rounds, so drift of the machine hits every row alike."""
    measured: dict[str, Any] = {}
    sink = TraceSink()
    rigs: dict[str, suites.Rig] = {}
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {}
    sim_port = int(sim_url.rsplit(":", 1)[1])
    try:
        for name, settings in FEATURES.items():
            if "REDIS" in "".join(settings) and not port_answers(6379):
                measured[name] = {"skipped": "Redis is not answering on 127.0.0.1:6379"}
                continue
            extra = {k: v.format(logs=logs, sink=sink.endpoint) for k, v in settings.items()}
            log = logs / f"gateway-{name.split()[0]}.log"
            gateway, http_port, grpc_port = start_gateway(gateway_core, sim_url, log, extra=extra)
            rig = suites.Rig(
                gateway, http_port, grpc_port, sim_port, load_core, tools, seconds, smoke=False, floors=floors
            )
            rigs[name] = rig
            rig.gateway_http(suites.JSON, 64)  # warm
            measured[name] = {"idle_rss_mib": gateway.rss_mib()}
            samples[name] = {"json": [], "sse": []}
        measured["both-protocol floor"] = {
            "idle_rss_mib": both_floor_rss(gateway_core, load_core, sim_url, logs, tools, seconds)
        }
        production = rigs.get("production (all on)")
        if production is not None:  # time to first token with everything on, beside the floor
            ttft = suites.first_chunk_concurrent(
                production, streams=64, rounds=6, deltas=8, pace_ms=20, steady_seconds=3.0
            )
            measured["production (all on)"]["ttft"] = ttft["http_sse"]
            measured["production (all on)"]["ttft_steady"] = ttft["steady"]
        for _ in range(rounds):
            for name, rig in rigs.items():
                for label, workload in (("json", suites.JSON), ("sse", suites.SSE20)):
                    result, cpu = rig.with_cpu(lambda rig=rig, w=workload: rig.gateway_http(w, 64))
                    samples[name][label].append((result.rps, cpu / result.rps * 1e6 if result.rps else 0.0))
        for name, by_label in samples.items():
            for label, values in by_label.items():
                measured[name][label] = {
                    "rps": statistics.median(rps for rps, _ in values),
                    "cpu_us_per_request": statistics.median(cpu for _, cpu in values),
                    "rounds": len(values),
                }
    finally:
        for rig in rigs.values():
            rig.gateway.stop()
        sink.close()
    if "rps" in str(measured.get("production (all on)")):
        measured["production (all on)"]["trace_exports"] = sink.requests  # proof the tracing rows exported
    return measured


def both_floor_rss(
    gateway_core: str | None, load_core: str | None, sim_url: str, logs: Path, tools: dict[str, bool], seconds: float
) -> float:
    """Idle RSS of both floors in one process (bench/floors/both_floor.py), warmed like the gateways above:
    the least a process serving both protocols holds, beside the idle RSS target."""
    grpc_port = free_port()
    floor, http_port = start_floor("both", gateway_core, sim_url, logs / "both-floor.log", grpc_port=grpc_port)
    try:
        rig = suites.Rig(
            floor, http_port, grpc_port, int(sim_url.rsplit(":", 1)[1]), load_core, tools, seconds, smoke=False
        )
        rig.gateway_http(suites.JSON, 64)  # the floor serves the gateway's path: the same warm-up
        return floor.rss_mib()
    finally:
        floor.stop()


def port_answers(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few seconds of each suite, to keep it from rotting")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each load run")
    parser.add_argument(
        "--only",
        nargs="*",
        help="suites to run: latency throughput stream_cost first_chunk realistic memory stream_overhead workers "
        "features targets",
    )
    parser.add_argument(
        "--soak",
        type=float,
        default=0,
        metavar="MINUTES",
        help="also run mixed traffic (with disconnects, cancels and errors) and watch memory",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    options = parser.parse_args()
    results = run(options)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print("\nTargets (docs/performance.md): instructions per request by callgrind, memory and latency from this run")
    print(targets.table(results["targets"]))
    overhead = results.get("stream_overhead")
    if overhead:
        print(
            f"\nPublished method: added p99 at concurrency 1 (HTTP JSON) {targets.added_shown(results)}; "
            f"streaming overhead, "
            f"{overhead['deltas']} deltas {overhead['pace_ms']} ms apart: {overhead['added_p50_ms']:.2f} ms (p50), "
            f"{overhead['added_p99_ms']:.2f} ms (p99) over {overhead['direct_ms']:,.0f} ms direct"
        )
    print(
        f"\nmachine: {results['machine']['cpu']}, {results['machine']['cores']} cores, Python "
        f"{results['machine']['python']}; gateway pinned to core 0: {results['pinned']}; results: {options.out}"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
