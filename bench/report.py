"""The benchmark's table, from the results dictionary."""

from __future__ import annotations

from typing import Any

PROTOCOLS = (
    "http_json",
    "http_sse",
    "grpc_unary",
    "grpc_stream",
    "native_json",
    "native_sse",
    "responses_json",
    "responses_sse",
)
NAMES = {
    "http_json": "HTTP JSON",
    "http_sse": "HTTP SSE",
    "grpc_unary": "gRPC unary",
    "grpc_stream": "gRPC stream",
    "native_json": "native JSON",  # /v1/messages, bytes through
    "native_sse": "native SSE",
    "responses_json": "Responses JSON",  # /v1/responses
    "responses_sse": "Responses SSE",
}


def cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table(results: dict[str, Any]) -> str:
    lat, thr = results.get("latency", {}), results.get("throughput", {})
    cost, ttft, real = results.get("stream_cost", {}), results.get("first_chunk", {}), results.get("realistic", {})
    rows = [
        "| measure | " + " | ".join(NAMES[p] for p in PROTOCOLS) + " |",
        "| --- |" + " --- |" * len(PROTOCOLS),
    ]

    def row(label: str, source: dict[str, Any], key: str, fmt: str) -> None:
        values = [cell(source.get(p, {}).get(key), fmt) for p in PROTOCOLS]
        rows.append(f"| {label} | " + " | ".join(values) + " |")

    row("added latency p50, c=1 (ms)", lat, "added_p50_ms", ".3f")
    row("added latency p99, c=1 (ms)", lat, "added_p99_ms", ".3f")
    row("throughput, c=64 (req/s, one core)", thr, "rps", ",.0f")
    row("... as a share of direct", thr, "ratio", ".2f")
    row("gateway CPU during it (cores)", thr, "gateway_cpu", ".2f")
    row("gateway CPU per request (us)", thr, "cpu_us_per_request", ".0f")
    row("CPU per chunk (us)", cost, "us_per_chunk", ".1f")
    row("CPU per stream, fixed part (us)", cost, "us_per_stream", ".0f")
    row("added time to first chunk, paced (ms)", ttft, "added_ms", ".2f")
    row("20 ms upstream, c=64: share of direct", real, "ratio", ".3f")
    out = "\n".join(rows)
    memory = results.get("memory")
    if memory:
        out += (
            f"\n\nmemory: idle RSS {memory['idle_rss_mib']:.1f} MiB; {memory['streams']} concurrent paced SSE "
            f"streams: {memory['kib_per_stream']:.1f} KiB per stream, {memory['dropped']} dropped, "
            f"{memory['late_chunks']} late chunks (max gap {memory['max_gap_ms']:.0f} ms); "
            f"RSS after {memory['rss_after_mib']:.1f} MiB"
        )
    soak = results.get("soak")
    if soak:
        out += (
            f"\n\nsoak: {soak['minutes']:g} min, {soak['requests']:,} mixed requests (streams, disconnects, gRPC "
            f"cancels, upstream errors): RSS {soak['rss_start_mib']:.1f} -> {soak['rss_end_mib']:.1f} MiB "
            f"(max {soak['rss_max_mib']:.1f}), growth over the second half "
            f"{soak['growth_mib_per_min_second_half']:+.2f} MiB/min"
        )
        rows = soak.get("resources") or []
        if rows:
            step = max(1, len(rows) // 10)
            out += "\n\n| minute | RSS (MiB) | open fds | asyncio tasks |\n| --- | --- | --- | --- |\n"
            out += "\n".join(f"| {t:.1f} | {r:.1f} | {fds} | {tasks} |" for t, r, fds, tasks in rows[::step])
            after = soak["after"]
            out += f"\n\nafter the load stopped: {after['fds']} open fds, {after['tasks']} asyncio tasks"
    features = results.get("features")
    if features:
        base = features.get("off", {})
        out += "\n\n| feature (HTTP, c=64) | JSON req/s | JSON CPU/request (us) | added "
        out += "| SSE streams/s | SSE CPU/stream (us) | added |"
        out += "\n| --- | --- | --- | --- | --- | --- | --- |"
        for name, row in features.items():
            if "skipped" in row:
                out += f"\n| {name} | skipped: {row['skipped']} | | | | | |"
                continue
            cells = []
            for kind in ("json", "sse"):
                cpu, first = row[kind]["cpu_us_per_request"], base.get(kind, {}).get("cpu_us_per_request")
                added = "-" if name == "off" or cpu is None or first is None else f"{cpu - first:+.0f}"
                cells += [f"{row[kind]['rps']:,.0f}", cell(cpu, ".0f"), added]
            out += f"\n| {name} | " + " | ".join(cells) + " |"
    workers = results.get("workers")
    if workers:
        out += (
            f"\n\nworkers: HTTP JSON c=64 with 2 workers {workers['two_rps']:,.0f} req/s vs one "
            f"{workers['one_rps']:,.0f} req/s = {workers['scaling']:.2f}x "
            f"(the gateway got {workers['two_cpu']:.2f} of the 2 cores, which the simulator and load share; "
            f"requests per gateway CPU-second: {workers['efficiency']:.2f}x a single worker's)"
        )
    return out
