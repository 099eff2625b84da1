"""The performance targets (docs/performance.md, "Targets"), measured in one run and marked met or not.

The acceptance measure is instructions per request, the gateway process against its floor process
(bench/floors), same build, same workload, counted by callgrind (bench/instructions.py): counts repeat
to about 0.1%, where wall-clock shares of the floor move by a tenth between runs. Memory and latency
are read from the same `make bench` run; wall-clock figures are reported beside the counts, never as
the pass/fail of an instruction row.

    python -m bench.targets            # the instruction rows alone (about 10 minutes under callgrind)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .instructions import count_of, options_for

SSE_SHORT, SSE_LONG = 20, 200  # a chunk's cost: the difference between these streams, per delta
HISTORY = 20  # earlier exchanges: 20 x 2 + the question = a 41-message conversation


@dataclass(frozen=True)
class Target:
    name: str
    limit: float
    unit: str  # how the figure reads: "x floor", "x off", "us", "MiB over the floor", "KiB"
    figure: Callable[[dict[str, Any]], float | None]
    shown: Callable[[dict[str, Any]], str] = lambda results: ""


def ratio(counts: dict[str, float], gateway: str, floor: str) -> float | None:
    if gateway not in counts or floor not in counts or not counts[floor]:
        return None
    return counts[gateway] / counts[floor]


def per_chunk(counts: dict[str, float], prefix: str) -> float | None:
    short, long = counts.get(f"{prefix}sse{SSE_SHORT}"), counts.get(f"{prefix}sse{SSE_LONG}")
    return None if short is None or long is None else (long - short) / (SSE_LONG - SSE_SHORT)


def counts_of(results: dict[str, Any]) -> dict[str, float]:
    counted: dict[str, float] = results.get("instructions", {})
    return counted


def kilo(results: dict[str, Any], gateway: str, floor: str) -> str:
    counts = counts_of(results)
    if gateway not in counts or floor not in counts:
        return ""
    return f"{counts[gateway] / 1000:,.0f}k / {counts[floor] / 1000:,.0f}k"


def chunk_shown(results: dict[str, Any]) -> str:
    counts = counts_of(results)
    gateway, floor = per_chunk(counts, ""), per_chunk(counts, "floor_")
    return "" if gateway is None or floor is None else f"{gateway / 1000:,.1f}k / {floor / 1000:,.1f}k"


def chunk_ratio(results: dict[str, Any]) -> float | None:
    counts = counts_of(results)
    gateway, floor = per_chunk(counts, ""), per_chunk(counts, "floor_")
    return None if gateway is None or not floor else gateway / floor


def nested(results: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(results, dict) or key not in results:
            return None
        results = results[key]
    return results


def idle_rss(results: dict[str, Any]) -> tuple[float, float] | None:
    """(the default config's idle RSS, the both-protocol floor's), when both were measured."""
    default = nested(results, "features", "default config", "idle_rss_mib")
    floor = nested(results, "features", "both-protocol floor", "idle_rss_mib")
    return None if default is None or floor is None else (default, floor)


def idle_over_floor(results: dict[str, Any]) -> float | None:
    rss = idle_rss(results)
    return None if rss is None else rss[0] - rss[1]


def idle_shown(results: dict[str, Any]) -> str:
    rss = idle_rss(results)
    return "" if rss is None else f"{rss[0]:.1f} MiB, floor {rss[1]:.1f}"


def added_p99_us(results: dict[str, Any]) -> float | None:
    added = nested(results, "latency", "http_json", "added_p99_ms")
    return None if added is None else added * 1000


def added_shown(results: dict[str, Any]) -> str:
    """The gateway's added p99, and the HTTP floor's from the same rounds when it was measured."""
    added = added_p99_us(results)
    if added is None:
        return ""
    floor = nested(results, "latency", "http_json", "floor_added_p99_ms")
    return f"{added:,.0f} us" + ("" if floor is None else f", HTTP floor {floor * 1000:,.0f} us")


def kib_per_stream(results: dict[str, Any]) -> float | None:
    value: float | None = nested(results, "memory", "kib_per_stream")
    return value


def counted(name: str, limit: float, gateway: str, floor: str, unit: str = "x floor") -> Target:
    """An instruction row: the count of ``gateway`` over the count of ``floor``, from one run."""
    return Target(name, limit, unit, lambda r: ratio(counts_of(r), gateway, floor), lambda r: kilo(r, gateway, floor))


TARGETS = (
    counted("HTTP JSON, one message", 1.6, "json", "floor_json"),
    Target("SSE, per chunk", 1.1, "x floor", chunk_ratio, chunk_shown),
    counted("gRPC unary", 1.35, "grpc", "floor_grpc"),
    counted("native JSON", 1.35, "native", "floor_json"),
    counted("HTTP JSON, 41 messages", 2.2, "json41", "floor_json41"),
    counted("production features over off (access log, limits, ledger)", 1.2, "json_production", "json", "x off"),
    Target("added p99 at concurrency 1 over direct (HTTP JSON)", 150, "us", added_p99_us, added_shown),
    Target("idle RSS, default config, over the both-protocol floor", 5, "MiB", idle_over_floor, idle_shown),
    Target(
        "RSS per paced stream",
        48,
        "KiB",
        kib_per_stream,
        lambda r: "" if kib_per_stream(r) is None else f"{kib_per_stream(r):.1f} KiB",
    ),
)

# name -> the options of bench/instructions.py that measure it
MEASURES: dict[str, dict[str, Any]] = {
    "json": {"kind": "json"},
    "floor_json": {"kind": "json", "floor": True},
    f"sse{SSE_SHORT}": {"kind": "sse", "deltas": SSE_SHORT},
    f"floor_sse{SSE_SHORT}": {"kind": "sse", "deltas": SSE_SHORT, "floor": True},
    f"sse{SSE_LONG}": {"kind": "sse", "deltas": SSE_LONG},
    f"floor_sse{SSE_LONG}": {"kind": "sse", "deltas": SSE_LONG, "floor": True},
    "grpc": {"kind": "grpc"},
    "floor_grpc": {"kind": "grpc", "floor": True},
    "native": {"kind": "native"},
    "json41": {"kind": "json", "history": HISTORY},
    "floor_json41": {"kind": "json", "history": HISTORY, "floor": True},
    "json_production": {"kind": "json", "features": "production-untraced"},
    "json_tracing": {"kind": "json", "features": "tracing"},
}


def instructions(only: list[str] | None = None) -> dict[str, float]:
    """Instructions per request for every measure the targets read (``only``: a subset, by name)."""
    return {name: count_of(options_for(**opts)) for name, opts in MEASURES.items() if not only or name in only}


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for target in TARGETS:
        figure = target.figure(results)
        rows.append(
            {
                "target": target.name,
                "figure": figure,
                "unit": target.unit,
                "limit": target.limit,
                "shown": target.shown(results),
                "met": None if figure is None else figure <= target.limit,
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| target | measured | figure | limit | met |", "| --- | --- | --- | --- | --- |"]
    for row in rows:
        figure = "not measured" if row["figure"] is None else f"{row['figure']:,.2f} {row['unit']}"
        met = "-" if row["met"] is None else ("yes" if row["met"] else "no")
        lines.append(f"| {row['target']} | {row['shown']} | {figure} | <= {row['limit']:g} {row['unit']} | {met} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.targets", description=__doc__)
    parser.add_argument("--only", nargs="*", help=f"measures to run, of: {' '.join(MEASURES)}")
    options = parser.parse_args()
    counted = instructions(options.only)
    for name, count in counted.items():
        print(f"{name}: {count / 1000:,.0f}k instructions per request")
    print(table([row for row in evaluate({"instructions": counted}) if row["unit"].startswith("x ")]))


if __name__ == "__main__":
    main()
