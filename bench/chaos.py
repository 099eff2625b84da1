"""`make chaos`: mixed traffic from several callers against the simulator while it injects one fault
after another, and a table per phase of what healthy callers saw.

    python -m bench.chaos [--outage 20] [--out bench/results/chaos.json]

The gateway runs as operators run it: a keys file with two callers (`healthy`, `poison`), the usage
ledger on PostgreSQL (through a TCP proxy the harness can cut), default breaker settings. Healthy
callers send HTTP JSON, HTTP SSE, gRPC unary and gRPC streams throughout; each request carries its
own `x-request-id`, so the ledger can be checked record by record at the end.

Phases, in turn: a baseline; one caller's poison requests (the upstream resets each one); a one-off
401; a short burst of 529s; a total outage then recovery; a slow upstream; the keys file rewritten
through empty; the ledger's store down, a graceful restart into the outage, the store back and a
`kill -9` mid-replay, then a restart that finishes the replay.

Goals (docs/resilience.md): healthy callers >= 99.9 % in every phase but the total outage; the first
success within 1 s of the upstream's recovery; zero ledger records lost; zero secrets in any log or
body; an unauthenticated request refused while the keys file is empty. Exit status 1 when one is
missed. Without PostgreSQL on 127.0.0.1:5432 the ledger phase is skipped, saying so (with `CI` set,
it fails instead).
"""

# A harness, not the server: its few small file reads and writes block its own loop on purpose.
# ruff: noqa: ASYNC240, ASYNC109

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import orjson

from chatgate.v1 import chat_pb2, chat_service_pb2, chat_service_pb2_grpc
from tests.tcp_proxy import Proxy

from .processes import ROOT, env, free_port, spawn, wait_http

MODEL = "claude-haiku-4-5"
POSTGRES = ("127.0.0.1", 5432)
GOAL = 0.999
RECOVERY_GOAL = 1.0  # seconds from the upstream's recovery to the first healthy success


@dataclass
class Phase:
    name: str
    started: float = 0.0
    ended: float = 0.0
    ok: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    recovered_at: float = 0.0  # the upstream's recovery (outage phase)
    first_success: float = 0.0  # the first healthy success after it
    notes: list[str] = field(default_factory=list)
    graded: bool = True  # the total outage is reported, not graded

    @property
    def total(self) -> int:
        return self.ok + self.failed

    @property
    def rate(self) -> float:
        return self.ok / self.total if self.total else 1.0


@dataclass
class Run:
    http: str
    grpc_target: str
    simulator: str
    healthy_key: str
    poison_key: str
    phase: Phase = field(default_factory=lambda: Phase("start"))
    phases: list[Phase] = field(default_factory=list)
    sent_ids: set[str] = field(default_factory=set)  # authenticated chat requests: each one has a ledger record
    bodies: list[bytes] = field(default_factory=list)  # what clients received, scanned for secrets
    stall: float = 0.0  # seconds the upstream takes (slow upstream phase)
    running: bool = True

    def begin(self, name: str, *, graded: bool = True) -> Phase:
        self.phase = Phase(name, started=time.monotonic(), graded=graded)
        self.phases.append(self.phase)
        return self.phase

    def outcome(self, ok: bool, code: str = "") -> None:
        phase = self.phase
        if ok:
            phase.ok += 1
            if phase.recovered_at and not phase.first_success and time.monotonic() >= phase.recovered_at:
                phase.first_success = time.monotonic()
        else:
            phase.failed += 1
            phase.errors[code] = phase.errors.get(code, 0) + 1


def new_id(run: Run) -> str:
    request_id = "chaos_" + secrets.token_hex(8)
    run.sent_ids.add(request_id)
    return request_id


def prompt(run: Run, text: str = "hello") -> str:
    return f"{text} sim:words=8" + (f" sim:stall={run.stall:g}" if run.stall else "")


# --- healthy traffic --------------------------------------------------------------------------


async def http_json(run: Run, client: httpx.AsyncClient) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt(run)}]}
    headers = {"authorization": f"Bearer {run.healthy_key}", "x-request-id": new_id(run)}
    reply = await client.post(run.http + "/v1/chat/completions", json=body, headers=headers)
    run.bodies.append(reply.content)
    ok = reply.status_code == 200 and bool(reply.json()["choices"][0]["message"]["content"])
    run.outcome(ok, "" if ok else f"http {reply.status_code} {reply.json().get('error', {}).get('code', '')}")


async def http_sse(run: Run, client: httpx.AsyncClient) -> None:
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": prompt(run)}]}
    headers = {"authorization": f"Bearer {run.healthy_key}", "x-request-id": new_id(run)}
    async with client.stream("POST", run.http + "/v1/chat/completions", json=body, headers=headers) as reply:
        raw = await reply.aread()
    run.bodies.append(raw)
    ok = reply.status_code == 200 and raw.endswith(b"data: [DONE]\n\n")
    code = "" if ok else f"sse {reply.status_code} {raw[-120:].decode(errors='replace')}"
    run.outcome(ok, code)


def grpc_request(run: Run) -> chat_service_pb2.ChatCompletionRequest:
    content = [chat_pb2.ContentPart(text=prompt(run))]
    return chat_service_pb2.ChatCompletionRequest(
        model=MODEL, messages=[chat_pb2.ChatMessage(role=chat_pb2.ROLE_USER, content=content)]
    )


async def grpc_unary(run: Run, stub: Any) -> None:
    metadata = (("authorization", f"Bearer {run.healthy_key}"), ("x-request-id", new_id(run)))
    try:
        reply = await stub.CreateChatCompletion(grpc_request(run), metadata=metadata, timeout=30)
    except grpc.aio.AioRpcError as error:
        run.bodies.append((error.details() or "").encode())
        run.outcome(False, f"grpc {error.code().name}")
        return
    run.outcome(bool(reply.choices[0].message.content[0].text))


async def grpc_stream(run: Run, stub: Any) -> None:
    metadata = (("authorization", f"Bearer {run.healthy_key}"), ("x-request-id", new_id(run)))
    try:
        chunks = [c async for c in stub.StreamChatCompletion(grpc_request(run), metadata=metadata, timeout=30)]
    except grpc.aio.AioRpcError as error:
        run.bodies.append((error.details() or "").encode())
        run.outcome(False, f"grpc-stream {error.code().name}")
        return
    run.outcome(any(c.choices and c.choices[0].finish_reason for c in chunks))


async def healthy(run: Run, kind: str) -> None:
    async with httpx.AsyncClient(timeout=60) as client, grpc.aio.insecure_channel(run.grpc_target) as channel:
        stub = chat_service_pb2_grpc.ChatCompletionServiceStub(channel)
        while run.running:
            try:
                if kind == "json":
                    await http_json(run, client)
                elif kind == "sse":
                    await http_sse(run, client)
                elif kind == "unary":
                    await grpc_unary(run, stub)
                else:
                    await grpc_stream(run, stub)
            except (httpx.HTTPError, OSError) as exc:  # the gateway restarting (ledger phase)
                run.outcome(False, f"{kind} {type(exc).__name__}")
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.01)


# --- faults ------------------------------------------------------------------------------------


async def poison(run: Run, until: float) -> int:
    """The poison caller: requests the upstream resets, every attempt, one after another."""
    sent = 0
    async with httpx.AsyncClient(timeout=60) as client:
        while time.monotonic() < until:
            body = {"model": MODEL, "messages": [{"role": "user", "content": f"poison {sent} sim:reset"}]}
            headers = {"authorization": f"Bearer {run.poison_key}", "x-request-id": new_id(run)}
            reply = await client.post(run.http + "/v1/chat/completions", json=body, headers=headers)
            run.bodies.append(reply.content)
            sent += 1
    return sent


async def simulator_outage(run: Run, seconds: float = 0, requests: int = 0) -> None:
    async with httpx.AsyncClient() as client:
        await client.post(run.simulator + "/_sim/outage", json={"seconds": seconds, "requests": requests})


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


# --- the gateway process -----------------------------------------------------------------------


@dataclass
class Gateway:
    argv: list[str]
    environment: dict[str, str]
    log: Path
    http_port: int
    process: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    def start(self) -> None:
        log = self.log.with_name(f"{self.log.stem}.{len(self.logs)}.log")
        self.logs.append(log)
        self.process = spawn(self.argv, self.environment, log)
        wait_http(f"http://127.0.0.1:{self.http_port}/readyz", self.process)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def output(self) -> bytes:
        return b"".join(path.read_bytes() for path in self.logs if path.exists())


def postgres_answers() -> bool:
    try:
        socket.create_connection(POSTGRES, timeout=0.5).close()
    except OSError:
        return False
    return True


async def ledger_ids(url: str, wanted: set[str]) -> set[str]:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT request_id FROM usage_ledger WHERE request_id = ANY($1)", list(wanted))
    finally:
        await connection.close()
    return {row["request_id"] for row in rows}


# --- the run ------------------------------------------------------------------------------------


async def phases(run: Run, gateway: Gateway, proxy: Proxy | None, outage: float, keys_file: Path) -> list[str]:
    """Drives every phase; returns the failures of checks that are not rates (the keys file, say)."""
    problems: list[str] = []
    workers = [asyncio.create_task(healthy(run, kind)) for kind in ("json", "sse", "unary", "stream")]
    try:
        run.begin("baseline")
        await asyncio.sleep(3)

        phase = run.begin("one caller's poison (resets)")
        phase.notes.append(f"{await poison(run, time.monotonic() + 5)} poison requests")

        phase = run.begin("a one-off 401")
        async with httpx.AsyncClient(timeout=30) as client:
            headers = {"authorization": f"Bearer {run.poison_key}", "x-request-id": new_id(run)}
            body = {"model": MODEL, "messages": [{"role": "user", "content": "blip sim:status=401 sim:times=1"}]}
            blip = await client.post(run.http + "/v1/chat/completions", json=body, headers=headers)
            phase.notes.append(f"the 401 request: {blip.status_code}")
        await asyncio.sleep(3)

        # The next 3 upstream calls, whoever makes them: a burst shorter than one request's retries
        # (4 attempts), so the gateway must absorb it. A timed burst would be a race against the
        # retries' random backoff, graded by luck.
        phase = run.begin("a burst of 529s (3 upstream calls)")
        await asyncio.sleep(1)
        await simulator_outage(run, requests=3)
        await asyncio.sleep(3)

        phase = run.begin(f"total outage ({outage:g} s), then recovery", graded=False)
        await simulator_outage(run, outage)
        phase.recovered_at = time.monotonic() + outage
        await asyncio.sleep(outage + 3)
        if not phase.first_success:
            problems.append("no healthy success after the upstream recovered")

        phase = run.begin("slow upstream (0.5 s a call)")
        run.stall = 0.5
        await asyncio.sleep(4)
        run.stall = 0.0

        phase = run.begin("keys file rewritten through empty")
        full = keys_file.read_text()
        keys_file.write_text("")
        await asyncio.sleep(0.6)  # past the reload interval: the reload finds no keys
        async with httpx.AsyncClient(timeout=30) as client:
            body = {"model": MODEL, "messages": [{"role": "user", "content": "who am I"}]}
            anonymous = await client.post(run.http + "/v1/chat/completions", json=body)
        phase.notes.append(f"an unauthenticated request while empty: {anonymous.status_code}")
        if anonymous.status_code != 401:
            problems.append(f"authentication turned off with an empty keys file ({anonymous.status_code})")
        keys_file.write_text(full + "\n")  # a rewrite, so the file changes again
        await asyncio.sleep(2)

        if proxy is not None:
            await ledger_phase(run, gateway, proxy, problems)
    finally:
        run.running = False
        await asyncio.gather(*workers, return_exceptions=True)
        run.phase.ended = time.monotonic()
    for phase in run.phases:
        phase.ended = phase.ended or time.monotonic()
    return problems


async def ledger_phase(run: Run, gateway: Gateway, proxy: Proxy, problems: list[str]) -> None:
    """The store down while serving; a graceful restart into the outage (the buffer is spilled); the
    store back and a kill -9 at once (mid-replay); a restart that finishes the replay."""
    phase = run.begin("ledger store down, restart, kill -9 mid-replay")
    proxy.cut()
    await asyncio.sleep(3)  # serving goes on; records buffer in memory
    run.running = False  # the restarts below are the operator's, not a fault healthy callers should see
    await asyncio.sleep(1.5)
    gateway.stop(signal.SIGTERM)  # graceful: what the store will not take goes to the spill file
    gateway.start()  # into the outage: the ledger keeps retrying its store
    proxy.restore()
    await asyncio.sleep(0.05)
    gateway.stop(signal.SIGKILL)  # mid-replay (or just before it): the claimed file must survive
    gateway.start()
    spill = Path(gateway.environment["CHATGATE_LEDGER_SPILL"])

    async def replayed() -> bool:
        return not spill.exists() and not spill.with_name(spill.name + ".replaying").exists()

    if not await wait_for(replayed, 20):
        problems.append("the ledger's spill was not replayed within 20 s")
    await asyncio.sleep(1.0)  # the writer's interval: the last batch lands
    phase.notes.append(f"spill files left: {int(spill.exists())}")


def table(run: Run, found: set[str] | None, secrets_found: int, problems: list[str]) -> tuple[str, bool]:
    lines = [
        "| phase | healthy requests | healthy ok | recovery | notes |",
        "| --- | --- | --- | --- | --- |",
    ]
    met = not problems
    for phase in run.phases:
        recovery = ""
        if phase.recovered_at:
            if phase.first_success:
                waited = phase.first_success - phase.recovered_at
                recovery = f"{waited:.2f} s"
                met &= waited <= RECOVERY_GOAL
            else:
                recovery = "never"
        errors = ", ".join(f"{code} x{n}" for code, n in sorted(phase.errors.items()))
        notes = "; ".join([*phase.notes, *([errors] if errors and phase.graded else [])])
        mark = "" if not phase.graded else (" (goal met)" if phase.rate >= GOAL else " (GOAL MISSED)")
        met &= not phase.graded or phase.rate >= GOAL
        lines.append(f"| {phase.name} | {phase.total} | {phase.rate:.2%}{mark} | {recovery} | {notes} |")
    if found is None:
        lines.append("\nledger: not checked (no PostgreSQL on 127.0.0.1:5432)")
    else:
        lost = len(run.sent_ids - found)
        met &= lost == 0
        lines.append(f"\nledger records: expected {len(run.sent_ids)}, found {len(found)}, lost {lost}")
    met &= secrets_found == 0
    lines.append(f"secrets found in logs and bodies: {secrets_found}")
    lines.extend(f"problem: {problem}" for problem in problems)
    lines.append(f"\nchaos: {'every goal met' if met else 'GOALS MISSED'}")
    return "\n".join(lines), met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outage", type=float, default=20.0, help="seconds of total upstream outage")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "chaos.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chatgate-chaos-") as folder:
        return asyncio.run(chaos(Path(folder), args.outage, args.out))


async def chaos(folder: Path, outage: float, out: Path) -> int:
    have_postgres = postgres_answers()
    if not have_postgres and os.environ.get("CI"):
        print("chaos: PostgreSQL is not answering on 127.0.0.1:5432, and CI is set: failing")
        return 1
    upstream_key = "sk-ant-chaos-" + secrets.token_hex(12)
    healthy_key, poison_key = "sk-gw-healthy-" + secrets.token_hex(8), "sk-gw-poison-" + secrets.token_hex(8)
    sim_port = free_port()
    simulator = spawn(
        [sys.executable, "-m", "service", "simulate", "--port", str(sim_port)], env(), folder / "simulator.log"
    )
    simulator_url = f"http://127.0.0.1:{sim_port}"
    wait_http(simulator_url + "/_sim/stats", simulator)
    keys_file = folder / "keys.toml"
    keys_file.write_text(keys_toml({"healthy": healthy_key, "poison": poison_key}))
    proxy = Proxy(POSTGRES) if have_postgres else None
    ledger_url = f"postgresql://postgres@127.0.0.1:{proxy.port}/test" if proxy is not None else "off"
    http_port, grpc_port = free_port(), free_port()
    gateway_env = {
        **env(),
        "ANTHROPIC_API_KEY": upstream_key,
        "ANTHROPIC_BASE_URL": simulator_url,
        "CHATGATE_KEYS_FILE": str(keys_file),
        "CHATGATE_KEYS_RELOAD_INTERVAL": "0.2",
        "CHATGATE_RETRY_ATTEMPTS": "4",
        "CHATGATE_RETRY_BASE_DELAY": "0.1",
        "CHATGATE_RETRY_MAX_DELAY": "1.0",
        "CHATGATE_LEDGER_URL": ledger_url,
        "CHATGATE_LEDGER_SPILL": str(folder / "ledger.spill.jsonl"),
    }
    argv = [sys.executable, "-m", "service", "serve", "--http-port", str(http_port), "--grpc-port", str(grpc_port)]
    gateway = Gateway(argv, gateway_env, folder / "gateway.log", http_port)
    gateway.start()
    run = Run(f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", simulator_url, healthy_key, poison_key)
    try:
        problems = await phases(run, gateway, proxy, outage, keys_file)
    finally:
        gateway.stop()
        simulator.send_signal(signal.SIGTERM)
        simulator.wait(timeout=20)
    found = await ledger_ids(ledger_url.replace(f":{proxy.port}/", ":5432/"), run.sent_ids) if proxy else None
    if proxy is not None:
        proxy.close()
    output = gateway.output() + (folder / "simulator.log").read_bytes() + b"".join(run.bodies)
    secret_hits = sum(output.count(key.encode()) for key in (upstream_key, healthy_key, poison_key))
    report, met = table(run, found, secret_hits, problems)
    print(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps({"report": report, "met": met}, option=orjson.OPT_INDENT_2))
    return 0 if met else 1


def keys_toml(keys: dict[str, str]) -> str:
    from service.core.auth import hash_key

    return "".join(f'[[keys]]\nname = "{name}"\nhash = "{hash_key(key)}"\n' for name, key in keys.items())


if __name__ == "__main__":
    raise SystemExit(main())
