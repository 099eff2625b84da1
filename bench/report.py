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
    rounds = next((r.get("rounds", 1) for r in thr.values()), 1)
    row(f"throughput, c=64 (req/s, one core; median of {rounds})", thr, "rps", ",.0f")
    row("... as a share of direct", thr, "ratio", ".2f")
    row("gateway CPU during it (cores)", thr, "gateway_cpu", ".2f")
    row("gateway CPU per request (us)", thr, "cpu_us_per_request", ".0f")
    row("floor throughput, c=64 (req/s)", thr, "floor_rps", ",.0f")
    row("... gateway as a share of its floor", thr, "floor_ratio", ".2f")
    row("floor CPU per request (us)", thr, "floor_cpu_us_per_request", ".0f")
    row("... gateway CPU per request / floor's", thr, "cpu_vs_floor", ".2f")
    row("CPU per chunk (us)", cost, "us_per_chunk", ".1f")
    row("floor CPU per chunk (us)", cost, "floor_us_per_chunk", ".1f")
    row("... gateway CPU per chunk / floor's", cost, "chunk_vs_floor", ".2f")
    row("CPU per stream, fixed part (us)", cost, "us_per_stream", ".0f")
    row("added time to first chunk, paced (ms)", ttft, "added_ms", ".2f")
    row("20 ms upstream, c=64: share of direct", real, "ratio", ".3f")
    out = "\n".join(rows)
    out += first_chunk_and_rss(results)
    out += targets(results)
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
        out += "\n\n" + features_table(features)
    workers = results.get("workers")
    if workers:
        out += (
            f"\n\nworkers: HTTP JSON c=64 with 2 workers {workers['two_rps']:,.0f} req/s vs one "
            f"{workers['one_rps']:,.0f} req/s = {workers['scaling']:.2f}x "
            f"(the gateway got {workers['two_cpu']:.2f} of the 2 cores, which the simulator and load share; "
            f"requests per gateway CPU-second: {workers['efficiency']:.2f}x a single worker's)"
        )
    return out


def features_table(features: dict[str, Any]) -> str:
    """Each feature alone, then the default and production configs, beside everything off."""
    base = features.get("off", {})
    rounds = base.get("json", {}).get("rounds", 1)
    out = f"each row: the median of {rounds} rounds, the configurations taking turns\n\n"
    out += "| feature (HTTP, c=64) | JSON req/s | vs off | JSON CPU/request (us) | added "
    out += "| SSE streams/s | vs off | SSE CPU/stream (us) | added | idle RSS (MiB) |"
    out += "\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for name, row in features.items():
        if "skipped" in row:
            out += f"\n| {name} | skipped: {row['skipped']} | | | | | | | | |"
            continue
        if "json" not in row:  # the both-protocol floor: memory only
            out += f"\n| {name} | | | | | | | | | {cell(row.get('idle_rss_mib'), '.1f')} |"
            continue
        cells = []
        for kind in ("json", "sse"):
            rps, cpu = row[kind]["rps"], row[kind]["cpu_us_per_request"]
            first_rps, first_cpu = base.get(kind, {}).get("rps"), base.get(kind, {}).get("cpu_us_per_request")
            added = "-" if name == "off" or cpu is None or first_cpu is None else f"{cpu - first_cpu:+.0f}"
            share = "-" if name == "off" or not first_rps else f"{rps / first_rps:.2f}"
            cells += [f"{rps:,.0f}", share, cell(cpu, ".0f"), added]
        out += f"\n| {name} | " + " | ".join(cells) + f" | {cell(row.get('idle_rss_mib'), '.1f')} |"
    return out


def first_chunk_and_rss(results: dict[str, Any]) -> str:
    """Time to first chunk at c=64 and idle memory, each beside the floors."""
    out = ""
    c64 = results.get("first_chunk_c64")
    if c64:
        out += f"\n\ntime to first chunk, {c64['streams']} concurrent paced streams (median ms): "
        out += f"direct {c64['direct_ms']:.2f}"
        for name in ("http_sse", "grpc_stream"):
            r = c64[name]
            out += (
                f"; {NAMES[name]} {r['ttft_ms']:.2f} vs its floor {r['floor_ms']:.2f} "
                f"(added {r['added_over_floor_ms']:+.2f})"
            )
    floor_rss = results.get("floor_idle_rss_mib")
    if floor_rss:
        out += (
            f"\n\nidle RSS: gateway {results['idle_rss_mib']:.1f} MiB (bench config), HTTP floor "
            f"{floor_rss['http']:.1f} MiB, gRPC floor {floor_rss['grpc']:.1f} MiB"
        )
    return out


def targets(results: dict[str, Any]) -> str:
    """Issue 14's floors-relative targets, each with the figure this run measured (`-`: not measured)."""
    thr, cost = results.get("throughput", {}), results.get("stream_cost", {})
    features, memory = results.get("features", {}), results.get("memory", {})
    production, off = features.get("production (all on)", {}), features.get("off", {})

    def get(source: dict[str, Any], *path: str) -> float | None:
        for key in path:
            source = source.get(key) if isinstance(source, dict) else None  # type: ignore[assignment]
        return source if isinstance(source, int | float) else None  # type: ignore[return-value]

    def share(kind: str) -> float | None:
        a, b = get(production, kind, "rps"), get(off, kind, "rps")
        return a / b if a is not None and b else None

    checks = [
        ("HTTP JSON, c=64, share of its floor", get(thr, "http_json", "floor_ratio"), ">=", 0.7),
        ("HTTP SSE (20 deltas), c=64, share of its floor", get(thr, "http_sse", "floor_ratio"), ">=", 0.65),
        ("HTTP CPU per chunk / floor's", get(cost, "http_sse", "chunk_vs_floor"), "<=", 2.0),
        ("gRPC unary, c=64, share of its floor", get(thr, "grpc_unary", "floor_ratio"), ">=", 0.8),
        ("gRPC CPU per streamed message / floor's", get(cost, "grpc_stream", "chunk_vs_floor"), "<=", 1.5),
        (
            "added TTFT over the floor, 64 paced streams started at once, production (ms)",
            get(production, "ttft", "added_over_floor_ms"),
            "<=",
            0.5,
        ),
        (
            "added TTFT over the floor, 64 paced streams kept in flight, production (ms)",
            get(production, "ttft_steady", "added_over_floor_ms"),
            "<=",
            0.5,
        ),
        ("production JSON req/s / features off", share("json"), ">=", 0.85),
        ("production SSE streams/s / features off", share("sse"), ">=", 0.85),
        ("idle RSS, default config (MiB)", get(features, "default config", "idle_rss_mib"), "<=", 55.0),
        ("RSS per concurrent paced stream (KiB)", get(memory, "kib_per_stream"), "<=", 48.0),
        ("native JSON, share of the HTTP floor", get(thr, "native_json", "floor_ratio"), ">=", 0.8),
        ("native SSE, share of the HTTP floor", get(thr, "native_sse", "floor_ratio"), ">=", 0.8),
    ]
    out = "\n\n| target | measured | goal | met |\n| --- | --- | --- | --- |"
    for label, value, op, goal in checks:
        met = "-" if value is None else ("yes" if (value >= goal if op == ">=" else value <= goal) else "no")
        out += f"\n| {label} | {cell(value, '.2f')} | {op} {goal:g} | {met} |"
    floor_rss = get(features, "both-protocol floor", "idle_rss_mib")
    if floor_rss is not None:
        out += (
            f"\n\nidle RSS of both floors in one process (HTTP and gRPC, no code of the gateway's), warmed the same "
            f"way: {floor_rss:.1f} MiB"
        )
    return out
