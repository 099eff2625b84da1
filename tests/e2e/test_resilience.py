"""Resilience through real sockets: retries, keys, breaker, fallback, time, overload, heartbeats, safety.

Each test drives a gateway process the way clients do (the official OpenAI SDK,
raw HTTP, generated gRPC stubs) against the simulator's per-request faults, and
checks what the client sees and what the upstream received.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import openai
import pytest

from chatgate.v1 import chat_service_pb2_grpc
from tests.support import (
    UPSTREAM_KEY,
    Gateway,
    Simulator,
    eventually,
    grpc_request,
    marker,
    metric_sum,
    start_gateway,
    start_simulator,
)

MODEL = "claude-haiku-4-5"
FAST_RETRIES = {
    "CHATGATE_RETRY_ATTEMPTS": "3",
    "CHATGATE_RETRY_BASE_DELAY": "0.01",
    "CHATGATE_RETRY_MAX_DELAY": "0.05",
    "CHATGATE_RETRY_MAX_WAIT": "2",
    "CHATGATE_BREAKER_FAILURES": "100000",
    "CHATGATE_HEARTBEAT": "0.3",
    "CHATGATE_UPSTREAM_FIRST_BYTE_TIMEOUT": "1.5",
    "CHATGATE_MODELS": json.dumps(
        [{"id": "primary", "upstream_id": "claude-opus-4-7", "max_output_tokens": 1000, "fallback": [MODEL]}]
    ),
}
LIMITED_KEY = "sk-ant-limited-key-0001"
REVOKED_KEY = "sk-ant-revoked-key-0002"


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    sim = start_simulator(tmp_path_factory.mktemp("faulty"), key_faults=(f"{LIMITED_KEY}=429:30", f"{REVOKED_KEY}=401"))
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def resilient(faulty: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    env = {**FAST_RETRIES, "ANTHROPIC_API_KEY": UPSTREAM_KEY, "ANTHROPIC_BASE_URL": faulty.url}
    gateway = start_gateway(tmp_path_factory.mktemp("resilient"), env=env)
    yield gateway
    gateway.stop()


def sdk(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.http_url + "/v1", api_key="unused", max_retries=0, timeout=30)


def attempts(sim: Simulator, tag: str) -> int:
    return sum(tag in str(entry["body"]) for entry in sim.received())


def ask(gateway: Gateway, text: str, **body: object) -> httpx.Response:
    payload = {"model": MODEL, "messages": [{"role": "user", "content": text}], **body}
    return httpx.post(gateway.http_url + "/v1/chat/completions", json=payload, timeout=30)


# --- retries before the first byte ----------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_a_transient_529_is_retried_invisibly(resilient: Gateway, faulty: Simulator, stream: bool) -> None:
    tag = marker()
    client = sdk(resilient)
    text = f"{tag} sim:status=529 sim:times=2"
    messages = [{"role": "user", "content": text}]
    if stream:
        chunks = list(client.chat.completions.create(model=MODEL, messages=messages, stream=True))  # type: ignore[arg-type]
        reply = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        reply = client.chat.completions.create(model=MODEL, messages=messages).choices[0].message.content or ""  # type: ignore[arg-type]
    assert reply.startswith("[chatgate simulator]")
    assert attempts(faulty, tag) == 3


@pytest.mark.parametrize("text", ["sim:status=500", "sim:html=502", "sim:status=529", "sim:truncated"])
def test_retries_are_bounded_exactly(resilient: Gateway, faulty: Simulator, text: str) -> None:
    tag = marker()
    response = ask(resilient, f"{tag} {text}")
    assert response.status_code in (502, 503)
    assert attempts(faulty, tag) == 3  # the configured attempts, no hidden retries below
    assert response.headers["x-should-retry"] == "false"  # spent here: the SDK must not multiply them
    if response.status_code == 503:  # an overload without retry-after still tells the client when
        assert float(response.headers["retry-after"]) >= 1 and "retry-after-ms" in response.headers


@pytest.mark.parametrize(
    ("text", "status"),
    [("sim:status=400", 400), ("sim:status=404", 404), ("sim:status=413", 413), ("sim:status=403", 403)],
)
def test_client_errors_are_never_retried(resilient: Gateway, faulty: Simulator, text: str, status: int) -> None:
    tag = marker()
    assert ask(resilient, f"{tag} {text}").status_code == status
    assert attempts(faulty, tag) == 1


def test_a_long_retry_after_goes_to_the_client_at_once(resilient: Gateway, faulty: Simulator) -> None:
    tag = marker()
    response = ask(resilient, f"{tag} sim:status=429 sim:retry_after=30")
    assert response.status_code == 429 and response.headers["retry-after"] == "30"
    assert attempts(faulty, tag) == 1


def test_a_short_retry_after_is_waited_out(resilient: Gateway, faulty: Simulator) -> None:
    tag = marker()
    response = ask(resilient, f"{tag} sim:status=429 sim:retry_after=1 sim:times=1")
    assert response.status_code == 200 and attempts(faulty, tag) == 2


def test_nothing_is_retried_after_the_first_byte(resilient: Gateway, faulty: Simulator) -> None:
    tag = marker()
    with httpx.stream(
        "POST",
        resilient.http_url + "/v1/chat/completions",
        json={"model": MODEL, "stream": True, "messages": [{"role": "user", "content": f"{tag} sim:error_after=2"}]},
        timeout=30,
    ) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert '"server_overloaded"' in lines[-1] and attempts(faulty, tag) == 1
    text = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content", "") for line in lines[:-1])
    assert text == "[chatgate simulator] "  # delivered once, never spliced with a retry


def test_grpc_retries_the_same_way(resilient: Gateway, faulty: Simulator) -> None:
    tag = marker()
    stub = chat_service_pb2_grpc.ChatCompletionServiceStub(grpc.insecure_channel(resilient.grpc_target))
    chunks = list(stub.StreamChatCompletion(grpc_request(f"{tag} sim:status=503 sim:times=2"), timeout=30))
    assert chunks and attempts(faulty, tag) == 3


# --- fallback -----------------------------------------------------------------------------


def test_a_failing_model_falls_back_before_the_first_byte(resilient: Gateway, faulty: Simulator) -> None:
    tag = marker()
    raw = sdk(resilient).chat.completions.with_raw_response.create(
        model="primary", messages=[{"role": "user", "content": f"{tag} sim:status=529 sim:only_model=claude-opus-4-7"}]
    )
    reply = raw.parse()
    assert reply.model == "claude-haiku-4-5-20251001"  # the model that really answered
    assert "model=adjusted" in raw.headers["x-chatgate-adjusted"]
    models = [e["body"]["model"] for e in faulty.received() if tag in str(e["body"])]
    assert models == ["claude-opus-4-7"] * 3 + ["claude-haiku-4-5-20251001"]


def test_client_errors_never_fall_back(resilient: Gateway, faulty: Simulator) -> None:
    tag = marker()
    response = ask(resilient, f"{tag} sim:status=400 sim:only_model=claude-opus-4-7", model="primary")
    assert response.status_code == 400 and attempts(faulty, tag) == 1


# --- time -----------------------------------------------------------------------------------


def test_the_deadline_header_bounds_a_stalled_upstream(resilient: Gateway, faulty: Simulator) -> None:
    before = faulty.stats()["aborted"]
    payload = {"model": MODEL, "messages": [{"role": "user", "content": f"{marker()} sim:stall=10"}]}
    response = httpx.post(
        resilient.http_url + "/v1/chat/completions",
        json=payload,
        headers={"x-chatgate-timeout-ms": "500"},
        timeout=30,
    )
    assert response.status_code == 504 and response.json()["error"]["code"] == "deadline_exceeded"
    assert eventually(lambda: faulty.stats()["aborted"] > before)  # the upstream call was abandoned


def test_a_bad_deadline_header_is_a_400_naming_it(resilient: Gateway) -> None:
    payload = {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
    response = httpx.post(
        resilient.http_url + "/v1/chat/completions", json=payload, headers={"x-chatgate-timeout-ms": "soon"}
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "x-chatgate-timeout-ms"


def test_a_silent_upstream_gets_keep_alive_comments_and_the_sdk_is_unbothered(resilient: Gateway) -> None:
    with httpx.stream(
        "POST",
        resilient.http_url + "/v1/chat/completions",
        json={"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "sim:stall_after_start=1.2"}]},
        timeout=30,
    ) as response:
        lines = list(response.iter_lines())
    assert ": keep-alive" in lines  # written while the upstream was silent after message_start
    assert [line for line in lines if line][-1] == "data: [DONE]"
    chunks = list(
        sdk(resilient).chat.completions.create(
            model=MODEL, stream=True, messages=[{"role": "user", "content": "sim:stall_after_start=0.8"}]
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("[chatgate")


# --- the end of a stream is message_stop ---------------------------------------------------------


@pytest.mark.parametrize("text", ["sim:hold_open=20", "sim:reset_after_stop"])
def test_a_complete_answer_ends_at_message_stop_whatever_the_connection_does(resilient: Gateway, text: str) -> None:
    started = time.monotonic()
    chunks = list(
        sdk(resilient).chat.completions.create(
            model=MODEL, stream=True, messages=[{"role": "user", "content": f"{marker()} {text}"}]
        )
    )
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert time.monotonic() - started < 15  # [DONE] follows message_stop, not the upstream's close


@pytest.mark.parametrize("text", ["sim:close_after=2", "sim:drop_after=2"])
def test_a_stream_cut_before_message_stop_is_an_error_never_a_stop(resilient: Gateway, text: str) -> None:
    with pytest.raises(openai.APIError) as caught:
        list(
            sdk(resilient).chat.completions.create(
                model=MODEL, stream=True, messages=[{"role": "user", "content": f"{marker()} {text}"}]
            )
        )
    assert "incomplete_stream" in str(caught.value.body)


# --- nothing the upstream says is trusted ---------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_quoting_the_key_and_its_address_is_scrubbed(resilient: Gateway, stream: bool) -> None:
    response = ask(resilient, f"{marker()} sim:echo_key sim:status=400", stream=stream)
    assert response.status_code == 400
    for secret in (UPSTREAM_KEY, "10.20.30.40", "8443"):
        assert secret not in response.text
    assert "[redacted]" in response.text
    stub = chat_service_pb2_grpc.ChatCompletionServiceStub(grpc.insecure_channel(resilient.grpc_target))
    with pytest.raises(grpc.RpcError) as caught:
        stub.CreateChatCompletion(grpc_request(f"{marker()} sim:echo_key sim:status=500"), timeout=30)
    shown = str(caught.value.details()) + str(caught.value.trailing_metadata())  # type: ignore[attr-defined]
    assert UPSTREAM_KEY not in shown and "10.20.30.40" not in shown
    assert UPSTREAM_KEY not in resilient.log()


def test_a_schema_nested_too_deep_is_a_400_naming_the_param(resilient: Gateway) -> None:
    # 400 levels of properties (800 JSON levels): within orjson's parse limit, past Python's recursion limit.
    schema = '{"type":"object","properties":{"x":' * 400 + "{}" + "}}" * 400
    body = (
        '{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"x"}],'
        f'"tools":[{{"type":"function","function":{{"name":"f","parameters":{schema}}}}}]}}'
    )
    response = httpx.post(
        resilient.http_url + "/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "tools[0].function.parameters"


def test_a_huge_model_name_is_not_echoed_back(resilient: Gateway) -> None:
    response = ask(resilient, "x", model="m" * 100_000)
    assert response.status_code == 404 and len(response.content) < 2_000


# --- keys, breaker, readiness ------------------------------------------------------------------


def test_a_rate_limited_key_rests_while_the_healthy_one_serves(faulty: Simulator, tmp_path: Path) -> None:
    env = {
        **FAST_RETRIES,
        "ANTHROPIC_API_KEY": LIMITED_KEY,
        "ANTHROPIC_API_KEYS": UPSTREAM_KEY,
        "ANTHROPIC_BASE_URL": faulty.url,
    }
    gateway = start_gateway(tmp_path, env=env)
    try:
        before = faulty.stats()["by_key"]
        client = sdk(gateway)
        for i in range(200):
            reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"hi {i}"}])
            assert reply.choices[0].message.content
        after = faulty.stats()["by_key"]
        limited = after.get(LIMITED_KEY[-4:], 0) - before.get(LIMITED_KEY[-4:], 0)
        assert limited == 1  # one 429, then the key rested for its retry-after (30 s)
        metrics = httpx.get(gateway.http_url + "/metrics").text
        assert (
            'chatgate_upstream_key_events_total{event="rested",key="anthropic#1",upstream="anthropic"} 1.0' in metrics
        )
    finally:
        gateway.stop()
    assert LIMITED_KEY not in gateway.log() and UPSTREAM_KEY not in gateway.log()


def key_state(gateway: Gateway) -> dict[str, object]:
    status = httpx.get(gateway.http_url + "/status/upstreams").json()
    return status["upstreams"]["anthropic"][0]  # type: ignore[no-any-return]


def grpc_health(gateway: Gateway) -> int:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(gateway.grpc_target))
    return health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status  # type: ignore[no-any-return]


def test_a_revoked_only_key_is_verified_before_it_is_exiled_and_readiness_stays(
    faulty: Simulator, tmp_path: Path
) -> None:
    """Evidence before exile, and readiness about this process: the upstream's 401 makes the gateway
    answer 502 itself, while /readyz and gRPC health stay serving (every replica shares the key)."""
    from grpc_health.v1 import health_pb2

    gateway = start_gateway(
        tmp_path, env={**FAST_RETRIES, "ANTHROPIC_API_KEY": REVOKED_KEY, "ANTHROPIC_BASE_URL": faulty.url}
    )
    try:
        response = ask(gateway, "x")
        assert response.status_code == 502 and response.json()["error"]["code"] == "upstream_authentication_failed"
        assert key_state(gateway)["state"] == "quarantined"  # one answer is evidence, not a verdict
        assert eventually(lambda: key_state(gateway)["state"] == "rejected", timeout=10)  # verified: 401 again
        tag = marker()
        again = ask(gateway, tag)
        assert again.status_code == 502 and attempts(faulty, tag) == 0  # refused without another upstream call
        ready = httpx.get(gateway.http_url + "/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        assert httpx.get(gateway.http_url + "/livez").status_code == 200
        assert grpc_health(gateway) == health_pb2.HealthCheckResponse.SERVING
    finally:
        gateway.stop()
    log = gateway.log()
    assert "rejected key anthropic#1 again on verification" in log and REVOKED_KEY not in log


def test_one_401_does_not_end_the_gateway(faulty: Simulator, tmp_path: Path) -> None:
    """A single 401 on the only key (a blip) fails that request alone; the key is verified and stays."""
    gateway = start_gateway(
        tmp_path, env={**FAST_RETRIES, "ANTHROPIC_API_KEY": UPSTREAM_KEY, "ANTHROPIC_BASE_URL": faulty.url}
    )
    try:
        blip = ask(gateway, f"{marker()} sim:status=401 sim:times=1")
        assert blip.status_code == 502
        for i in range(20):
            assert ask(gateway, f"after {i}").status_code == 200
        assert eventually(lambda: key_state(gateway)["state"] == "in_rotation", timeout=10)
        assert httpx.get(gateway.http_url + "/readyz").status_code == 200
    finally:
        gateway.stop()
    assert "verified: back in rotation" in gateway.log()


def test_the_last_keys_breaker_lets_a_bounded_trickle_through_and_closes_at_once(
    faulty: Simulator, tmp_path: Path
) -> None:
    """Never black-hole the last route: with the only key's breaker open (cooldown 30 s), calls still
    pass at a bounded rate, so the first one after the upstream recovers closes it."""
    env = {
        **FAST_RETRIES,
        "CHATGATE_RETRY_ATTEMPTS": "1",
        "CHATGATE_BREAKER_FAILURES": "3",
        "CHATGATE_BREAKER_COOLDOWN": "30",
        "ANTHROPIC_API_KEY": UPSTREAM_KEY,
        "ANTHROPIC_BASE_URL": faulty.url,
    }
    gateway = start_gateway(tmp_path, env=env)
    try:
        for _ in range(3):
            assert ask(gateway, f"{marker()} sim:status=500").status_code == 502
        assert key_state(gateway)["breaker"] == "open"
        assert ask(gateway, f"{marker()} sim:status=500").status_code == 502  # passed: the trickle
        tag = marker()
        fast = ask(gateway, tag)
        assert fast.status_code == 503 and fast.json()["error"]["code"] == "circuit_open"
        assert 0 < float(fast.headers["retry-after-ms"]) <= 250 and attempts(faulty, tag) == 0
        assert httpx.get(gateway.http_url + "/readyz").status_code == 200  # the upstream is not readiness
        assert eventually(lambda: ask(gateway, "recovered").status_code == 200, timeout=2)
        assert key_state(gateway)["breaker"] == "closed"
        assert ask(gateway, "after").status_code == 200
    finally:
        gateway.stop()


# --- overload --------------------------------------------------------------------------------------


def test_past_the_in_flight_limit_requests_are_refused_at_once(faulty: Simulator, tmp_path: Path) -> None:
    env = {
        **FAST_RETRIES,
        "CHATGATE_MAX_IN_FLIGHT": "2",
        "ANTHROPIC_API_KEY": UPSTREAM_KEY,
        "ANTHROPIC_BASE_URL": faulty.url,
    }
    gateway = start_gateway(tmp_path, env=env)
    try:
        slow = {
            "model": MODEL,
            "stream": True,
            "messages": [{"role": "user", "content": "sim:pace_ms=100 sim:words=20"}],
        }
        url = gateway.http_url + "/v1/chat/completions"
        with (
            httpx.Client(timeout=30) as first,
            httpx.Client(timeout=30) as second,
            first.stream("POST", url, json=slow) as one,
            second.stream("POST", url, json=slow) as two,
        ):
            # Keep the line iterators: dropping one closes its connection, and the client leaves.
            lines_one, lines_two = one.iter_lines(), two.iter_lines()
            next(lines_one), next(lines_two)
            refused = ask(gateway, "third")
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "server_overloaded"
            assert refused.headers["retry-after"] == "1"
            assert list(lines_one)[-2] == "data: [DONE]" and list(lines_two)[-2] == "data: [DONE]"
        assert eventually(lambda: ask(gateway, "slots are back").status_code == 200)
    finally:
        gateway.stop()


def test_a_mid_stream_overload_still_says_when_to_retry(resilient: Gateway) -> None:
    from google.rpc import error_details_pb2, status_pb2

    stub = chat_service_pb2_grpc.ChatCompletionServiceStub(grpc.insecure_channel(resilient.grpc_target))
    with pytest.raises(grpc.RpcError) as caught:
        list(stub.StreamChatCompletion(grpc_request(f"{marker()} sim:error_after=2"), timeout=30))
    raw = dict(caught.value.trailing_metadata())["grpc-status-details-bin"]  # type: ignore[attr-defined]
    kinds = {detail.type_url.rsplit("/", 1)[-1] for detail in status_pb2.Status.FromString(raw).details}
    assert error_details_pb2.RetryInfo.DESCRIPTOR.full_name in kinds


def test_drain_turns_unready_refuses_new_work_and_keeps_answering(faulty: Simulator, tmp_path: Path) -> None:
    import signal

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    env = {
        **FAST_RETRIES,
        "CHATGATE_DRAIN_DELAY": "2",
        "ANTHROPIC_API_KEY": UPSTREAM_KEY,
        "ANTHROPIC_BASE_URL": faulty.url,
    }
    gateway = start_gateway(tmp_path, env=env)
    try:
        gateway.process.send_signal(signal.SIGTERM)
        assert eventually(lambda: httpx.get(gateway.http_url + "/readyz").status_code == 503)
        assert httpx.get(gateway.http_url + "/readyz").json()["status"] == "draining"  # answered, not refused
        refused = ask(gateway, "late")
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"
        health = health_pb2_grpc.HealthStub(grpc.insecure_channel(gateway.grpc_target))
        status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert gateway.process.wait(timeout=15) == 0
    finally:
        gateway.stop()


def ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_both_protocols_listen_on_ipv6(faulty: Simulator, tmp_path: Path, host: str) -> None:
    from tests.support import free_port, spawn, wait_until

    http_port, grpc_port = free_port(), free_port()
    env = {"ANTHROPIC_API_KEY": UPSTREAM_KEY, "ANTHROPIC_BASE_URL": faulty.url}
    args = ["serve", "--host", host, "--http-port", str(http_port), "--grpc-port", str(grpc_port)]
    process, log_path = spawn(args, tmp_path, env)
    try:
        url = f"http://[::1]:{http_port}"
        wait_until(lambda: httpx.get(url + "/readyz", timeout=1).status_code == 200, process, log_path)
        payload = {"model": MODEL, "messages": [{"role": "user", "content": "over IPv6"}]}
        assert httpx.post(url + "/v1/chat/completions", json=payload, timeout=30).status_code == 200
        stub = chat_service_pb2_grpc.ChatCompletionServiceStub(grpc.insecure_channel(f"[::1]:{grpc_port}"))
        assert stub.CreateChatCompletion(grpc_request("over IPv6"), timeout=30).choices
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_malformed_http_framing_gets_an_openai_error_body(resilient: Gateway) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", resilient.http_port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"content-type: application/json" in head.lower()
    assert json.loads(body)["error"]["code"] == "invalid_http_request"
    assert ask(resilient, "still serving").status_code == 200
    scraped = httpx.get(resilient.http_url + "/metrics").text
    assert metric_sum(scraped, "chatgate_requests_total", outcome="invalid_http_request") >= 1  # counted too


def test_a_stream_with_no_first_byte_in_time_is_retried(resilient: Gateway, faulty: Simulator) -> None:
    tag = marker()
    chunks = list(
        sdk(resilient).chat.completions.create(
            model=MODEL, stream=True, messages=[{"role": "user", "content": f"{tag} sim:stall=3 sim:times=1"}]
        )
    )
    assert chunks and attempts(faulty, tag) == 2  # the first attempt gave up after 1.5 s without a byte


def test_the_whole_request_timeout_bounds_a_reply(faulty: Simulator, tmp_path: Path) -> None:
    env = {
        **FAST_RETRIES,
        "CHATGATE_REQUEST_TIMEOUT": "1",
        "ANTHROPIC_API_KEY": UPSTREAM_KEY,
        "ANTHROPIC_BASE_URL": faulty.url,
    }
    gateway = start_gateway(tmp_path, env=env)
    try:
        before = faulty.stats()["aborted"]
        response = ask(gateway, f"{marker()} sim:stall=5")
        assert response.status_code == 504 and response.json()["error"]["code"] == "upstream_timeout"
        assert eventually(lambda: faulty.stats()["aborted"] > before)
        assert ask(gateway, "quick").status_code == 200
    finally:
        gateway.stop()
