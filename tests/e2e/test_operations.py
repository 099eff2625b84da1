"""Operating the gateway, through real processes: request ids, the access log, metrics, traces and
named, hashed gateway keys, over both protocols; and, at DEBUG level, no key anywhere.

One gateway serves the module: keys from a keys file (reloaded without a restart),
an admin port for `/metrics`, JSON logs at DEBUG, and spans exported to an
in-process OTLP collector.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import openai
import pytest
from google.rpc import error_details_pb2, status_pb2

from chatgate.v1 import chat_service_pb2, chat_service_pb2_grpc
from service.core.auth import hash_key
from tests.otlp_collector import Collector, start_collector
from tests.support import (
    MAPPING_ONLY,
    MODEL,
    UPSTREAM_KEY,
    Gateway,
    Simulator,
    eventually,
    free_port,
    grpc_request,
    marker,
    metric_sum,
    start_gateway,
)

KEY_A = "cgk-test-team-a-0123456789abcdefghijklmnop"
KEY_HAIKU = "cgk-test-haiku-only-0123456789abcdefghijkl"
KEY_OLD = "cgk-test-expired-0123456789abcdefghijklmno"
KEY_NEW = "cgk-test-added-later-0123456789abcdefghijk"
ALL_KEYS = (KEY_A, KEY_HAIKU, KEY_OLD, KEY_NEW, UPSTREAM_KEY)
HAIKU = "claude-haiku-4-5"
NOT_HAIKU = "claude-sonnet-4-6"
# Every name a `claude-haiku-*` key may use, dated ids beside aliases, newest model first.
HAIKU_NAMES = ["claude-haiku-5-5", HAIKU, "claude-haiku-4-5-20251001"]
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"

# Every response body and header the tests saw, for the final no-secrets check.
SEEN: list[str] = []


def keys_file(path: Path, *, with_new: bool = False) -> None:
    entries = [
        ("team-a", KEY_A, "", ""),
        ("team-haiku", KEY_HAIKU, 'models = ["claude-haiku-*"]', ""),
        ("team-old", KEY_OLD, "", "expires = 2020-01-01"),
    ]
    if with_new:
        entries.append(("team-new", KEY_NEW, "", ""))
    text = "".join(
        f'[[keys]]\nname = "{name}"\nhash = "{hash_key(key)}"\n{models}\n{expires}\n\n'
        for name, key, models, expires in entries
    )
    path.write_text(text)


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    found = start_collector()
    yield found
    found.stop()


@pytest.fixture(scope="module")
def ops(simulator: Simulator, collector: Collector, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp("ops")
    keys_file(directory / "keys.toml")
    admin = free_port()
    gateway = start_gateway(
        directory,
        env={
            **MAPPING_ONLY,
            "ANTHROPIC_API_KEY": UPSTREAM_KEY,
            "ANTHROPIC_BASE_URL": simulator.url,
            "CHATGATE_KEYS_FILE": str(directory / "keys.toml"),
            "CHATGATE_KEYS_RELOAD_INTERVAL": "0.2",
            "CHATGATE_ADMIN_PORT": str(admin),
            "CHATGATE_LOG_LEVEL": "debug",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_SERVICE_NAME": "chatgate-test",
        },
    )
    gateway.admin_port = admin  # type: ignore[attr-defined]
    gateway.keys_path = directory / "keys.toml"  # type: ignore[attr-defined]
    yield gateway
    gateway.stop()


def openai_client(gateway: Gateway, key: str = KEY_A, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.http_url + "/v1", api_key=key, max_retries=0, timeout=30, default_headers=headers
    )


def grpc_stub(gateway: Gateway) -> chat_service_pb2_grpc.ChatCompletionServiceStub:
    return chat_service_pb2_grpc.ChatCompletionServiceStub(grpc.insecure_channel(gateway.grpc_target))


def access_lines(gateway: Gateway) -> list[dict[str, Any]]:
    lines = []
    for line in gateway.log().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("logger") == "chatgate.access":
                lines.append(record)
    return lines


def access_line(gateway: Gateway, request_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []
    eventually(lambda: bool(found.extend(r for r in access_lines(gateway) if r["request_id"] == request_id) or found))
    assert found, f"no access line for {request_id}"
    return found[-1]


def chat(gateway: Gateway, key: str, text: str, *, model: str = MODEL, **headers: str) -> httpx.Response:
    response = httpx.post(
        gateway.http_url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}", **headers},
        json={"model": model, "messages": [{"role": "user", "content": text}]},
        timeout=30,
    )
    SEEN.append(str(response.headers) + response.text)
    return response


def test_a_request_id_is_kept_answered_logged_and_sent_upstream(ops: Gateway, simulator: Simulator) -> None:
    tag = marker()
    raw = openai_client(ops, **{"x-request-id": f"caller-{tag}"}).chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": tag}]
    )
    SEEN.append(str(raw.headers) + raw.text)
    assert raw.headers["x-request-id"] == f"caller-{tag}"
    assert raw.headers["x-upstream-request-id"].startswith("req_sim_")
    assert simulator.find(tag)["headers"]["x-request-id"] == f"caller-{tag}"
    line = access_line(ops, f"caller-{tag}")
    assert line["upstream_request_id"] == raw.headers["x-upstream-request-id"]


def test_a_malformed_or_missing_request_id_is_replaced(ops: Gateway) -> None:
    for sent in ("has spaces in it", "x" * 200, None):
        headers = {"x-request-id": sent} if sent is not None else {}
        response = chat(ops, KEY_A, marker(), **headers)
        assert response.status_code == 200
        assert re.fullmatch(r"req_[0-9a-f]{24}", response.headers["x-request-id"])


def test_grpc_calls_carry_the_request_id_both_ways(ops: Gateway, simulator: Simulator) -> None:
    tag = marker()
    metadata = (("authorization", f"Bearer {KEY_A}"), ("x-request-id", f"grpc-{tag}"))
    stub = grpc_stub(ops)
    reply, call = stub.CreateChatCompletion.with_call(grpc_request(tag), metadata=metadata, timeout=10)
    assert dict(call.trailing_metadata())["x-request-id"] == f"grpc-{tag}"
    assert simulator.find(tag)["headers"]["x-request-id"] == f"grpc-{tag}"
    stream = stub.StreamChatCompletion(grpc_request(tag + " s"), metadata=metadata, timeout=10)
    assert dict(stream.initial_metadata())["x-request-id"] == f"grpc-{tag}"
    assert list(stream)
    line = access_line(ops, f"grpc-{tag}")
    assert line["protocol"] == "grpc" and line["caller"] == "team-a" and line["status"] == "OK"
    SEEN.append(str(reply) + str(call.trailing_metadata()))


def test_errors_the_gateway_makes_carry_the_request_id(ops: Gateway) -> None:
    response = chat(ops, "cgk-not-a-key", marker(), **{"x-request-id": "bad-key-call"})
    assert response.status_code == 401 and response.headers["x-request-id"] == "bad-key-call"
    response = httpx.post(
        ops.http_url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {KEY_A}", "content-type": "application/json", "x-request-id": "bad-json"},
        content=b"{not json",
    )
    assert response.status_code == 400 and response.headers["x-request-id"] == "bad-json"
    assert access_line(ops, "bad-json")["outcome"] == "invalid_json"
    response = httpx.get(ops.http_url + "/v1/nothing-here", headers={"x-request-id": "lost-404"})
    assert response.status_code == 404 and response.headers["x-request-id"] == "lost-404"
    with pytest.raises(grpc.RpcError) as caught:
        grpc_stub(ops).CreateChatCompletion(
            grpc_request("x"), metadata=(("authorization", "Bearer nope"), ("x-request-id", "grpc-denied")), timeout=10
        )
    trailers = dict(caught.value.trailing_metadata())  # type: ignore[attr-defined]
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    assert trailers["x-request-id"] == "grpc-denied"
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    infos = [d for d in status.details if d.Is(error_details_pb2.RequestInfo.DESCRIPTOR)]
    info = error_details_pb2.RequestInfo()
    infos[0].Unpack(info)
    assert info.request_id == "grpc-denied"


def test_the_access_line_says_who_what_and_how_it_went(ops: Gateway) -> None:
    tag = marker()
    stream = openai_client(ops, **{"x-request-id": f"line-{tag}"}).chat.completions.create(
        model="claude-haiku-4-5",
        messages=[{"role": "user", "content": f"{tag} sim:cache"}],
        stream=True,
        temperature=1.5,
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    line = access_line(ops, f"line-{tag}")
    assert line["level"] == "info" and line["msg"] == "request"
    expected = {
        "protocol": "http",
        "route": "/v1/chat/completions",
        "mode": "stream",
        "caller": "team-a",
        "model": "claude-haiku-4-5",
        "served_model": "claude-haiku-4-5",
        "status": "200",
        "outcome": "ok",
        "attempts": 1,
        "finish_reasons": ["stop"],
        "adjusted": "temperature=adjusted",
    }
    assert {k: line.get(k) for k in expected} == expected
    assert line["input_tokens"] > 0 and line["output_tokens"] > 0
    assert line["cache_read_tokens"] > 0 and line["cache_write_tokens"] > 0
    assert 0 < line["ttfb_ms"] <= line["duration_ms"] and line["bytes_in"] > 0 and line["bytes_out"] > 0
    assert line["trace_id"] and len(line["trace_id"]) == 32
    assert "content" not in line and tag not in json.dumps({k: v for k, v in line.items() if k != "request_id"})


def test_log_lines_about_a_request_name_it(ops: Gateway) -> None:
    """The adjustment and failure lines carry the request id, not only the access line."""
    response = chat(ops, KEY_A, f"{marker()} sim:status=529", **{"x-request-id": "overloaded-1"})
    assert response.status_code in {529, 503}
    warnings = [
        json.loads(line)
        for line in ops.log().splitlines()
        if line.startswith("{") and '"overloaded-1"' in line and '"chatgate.access"' not in line
    ]
    assert any(w["level"] == "warning" and "upstream" in w["msg"] for w in warnings)


def test_callers_keys_allow_lists_and_expiry(ops: Gateway, simulator: Simulator) -> None:
    tag = marker()
    by_header = httpx.post(
        ops.http_url + "/v1/chat/completions",
        headers={"x-api-key": KEY_HAIKU},
        json={"model": HAIKU, "messages": [{"role": "user", "content": tag}]},
        timeout=30,
    )
    assert by_header.status_code == 200, by_header.text
    assert access_line(ops, by_header.headers["x-request-id"])["caller"] == "team-haiku"

    denied_tag = marker()
    denied = chat(ops, KEY_HAIKU, denied_tag, model=NOT_HAIKU)
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "model_access_denied" and denied.json()["error"]["param"] == "model"
    with pytest.raises(AssertionError):
        simulator.find(denied_tag)  # no upstream call
    with pytest.raises(grpc.RpcError) as caught:
        grpc_stub(ops).CreateChatCompletion(
            grpc_request(denied_tag, model=NOT_HAIKU),
            metadata=(("authorization", f"Bearer {KEY_HAIKU}"),),
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]

    models = openai_client(ops, KEY_HAIKU).models.list()
    assert [m.id for m in models.data] == HAIKU_NAMES

    expired = chat(ops, KEY_OLD, marker())
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
    assert KEY_OLD not in expired.text


def test_grpc_list_models_follows_the_callers_allow_list(ops: Gateway) -> None:
    reply = grpc_stub(ops).ListModels(
        chat_service_pb2.ListModelsRequest(), metadata=(("authorization", f"Bearer {KEY_HAIKU}"),), timeout=10
    )
    assert [m.id for m in reply.models] == HAIKU_NAMES


def test_keys_reload_without_a_restart(ops: Gateway) -> None:
    path: Path = ops.keys_path  # type: ignore[attr-defined]
    assert chat(ops, KEY_NEW, marker()).status_code == 401
    keys_file(path, with_new=True)
    assert eventually(lambda: chat(ops, KEY_NEW, marker()).status_code == 200, timeout=10)
    # A broken file keeps the keys in force, and says so.
    path.write_text("[[keys]]\nname = 'broken'\n")
    assert eventually(lambda: "gateway keys not reloaded" in ops.log(), timeout=10)
    assert chat(ops, KEY_NEW, marker()).status_code == 200
    # SIGHUP reloads at once, whatever the file's time stamp says.
    keys_file(path)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    ops.process.send_signal(signal.SIGHUP)
    assert eventually(lambda: chat(ops, KEY_NEW, marker()).status_code == 401, timeout=10)
    assert chat(ops, KEY_A, marker()).status_code == 200


def test_metrics_carry_model_caller_and_outcome_and_live_on_the_admin_port(ops: Gateway) -> None:
    admin = f"http://127.0.0.1:{ops.admin_port}"  # type: ignore[attr-defined]
    assert httpx.get(ops.http_url + "/metrics").status_code == 404  # not on the public port
    before = httpx.get(admin + "/metrics").text
    assert chat(ops, KEY_A, marker()).status_code == 200
    assert chat(ops, "wrong", marker()).status_code == 401
    stub = grpc_stub(ops)
    stub.CreateChatCompletion(grpc_request(marker()), metadata=(("authorization", f"Bearer {KEY_A}"),), timeout=10)
    list(
        stub.StreamChatCompletion(grpc_request(marker()), metadata=(("authorization", f"Bearer {KEY_A}"),), timeout=10)
    )
    with pytest.raises(grpc.RpcError):
        stub.CreateChatCompletion(grpc_request(marker()), metadata=(("authorization", "Bearer wrong"),), timeout=10)
    after = httpx.get(admin + "/metrics").text
    assert httpx.get(admin + "/readyz").status_code == 200 and httpx.get(admin + "/livez").status_code == 200

    def grew(name: str, **labels: str) -> float:
        return metric_sum(after, name, **labels) - metric_sum(before, name, **labels)

    ok = {"model": MODEL, "caller": "team-a", "outcome": "ok"}
    assert grew("chatgate_requests_total", protocol="http", route="/v1/chat/completions", mode="unary", **ok) == 1
    route = "/chatgate.v1.ChatCompletionService/StreamChatCompletion"
    assert grew("chatgate_requests_total", protocol="grpc", route=route, mode="stream", **ok) == 1
    assert grew("chatgate_requests_total", protocol="http", outcome="invalid_api_key") == 1
    assert grew("chatgate_requests_total", protocol="grpc", outcome="invalid_api_key") == 1
    assert grew("chatgate_tokens_total", model=MODEL, caller="team-a", kind="output") > 0
    assert grew("chatgate_tokens_total", model=MODEL, caller="team-a", kind="input") > 0
    assert grew("chatgate_time_to_first_token_seconds_count", protocol="grpc", model=MODEL) == 1
    assert grew("chatgate_request_duration_seconds_count", protocol="http", route="/v1/chat/completions") >= 2
    assert grew("chatgate_upstream_seconds_count", protocol="grpc") == 2
    assert 'chatgate_open_streams{protocol="grpc"} 0.0' in after
    assert "chatgate_in_flight_requests" in after


def test_spans_arrive_with_the_callers_trace_and_genai_attributes(ops: Gateway, collector: Collector) -> None:
    parent = f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"
    response = chat(ops, KEY_A, marker(), **{"traceparent": parent, "x-request-id": "traced-http"})
    assert response.status_code == 200
    metadata = (("authorization", f"Bearer {KEY_A}"), ("traceparent", parent), ("x-request-id", "traced-grpc"))
    grpc_stub(ops).CreateChatCompletion(grpc_request(marker()), metadata=metadata, timeout=10)

    def spans_for(request_id: str) -> list[Any]:
        servers = [s for s in collector.spans if s.attributes.get("chatgate.request_id") == request_id]
        if not servers:
            return []
        children = [s for s in collector.spans if s.parent_span_id == servers[0].span_id]
        return [servers[0], *children]

    for request_id in ("traced-http", "traced-grpc"):
        assert eventually(lambda rid=request_id: len(spans_for(rid)) >= 2, timeout=10), collector.spans[-5:]
        server, client = spans_for(request_id)[:2]
        assert server.trace_id == CLIENT_TRACE and server.parent_span_id == "00f067aa0ba902b7"
        assert server.kind == 2 and client.kind == 3  # SERVER, CLIENT
        assert server.attributes["gen_ai.operation.name"] == "chat"
        assert server.attributes["gen_ai.request.model"] == MODEL
        assert server.attributes["gen_ai.response.model"] == MODEL
        assert server.attributes["gen_ai.usage.input_tokens"] > 0
        assert server.attributes["gen_ai.usage.output_tokens"] > 0
        assert server.attributes["gen_ai.response.finish_reasons"] == ["stop"]
        assert client.name.startswith("chat ") and client.attributes["gen_ai.provider.name"] == "anthropic"
        assert client.trace_id == CLIENT_TRACE


def test_no_key_reaches_a_log_a_body_a_header_a_metric_or_a_span(ops: Gateway, collector: Collector) -> None:
    """Runs last in this module: everything the gateway said, at DEBUG level, grepped for every key."""
    # Make sure the upstream quoting the key back is part of what is checked.
    response = chat(ops, KEY_A, f"{marker()} sim:echo_key")
    assert response.status_code >= 400
    admin = f"http://127.0.0.1:{ops.admin_port}"  # type: ignore[attr-defined]
    everything = [
        ops.log(),
        httpx.get(admin + "/metrics").text,
        *SEEN,
        *(raw.decode("latin-1") for raw in collector.raw),
        *(json.dumps(s.attributes) for s in collector.spans),
    ]
    assert '"level": "debug"' in ops.log() or '"level":"debug"' in ops.log()  # the log really is at DEBUG
    for text in everything:
        for key in ALL_KEYS:
            assert key not in text
            assert hash_key(key)[7:] not in text  # nor its digest


def test_upstream_calls_go_through_the_proxy_only_when_told_to(simulator: Simulator, tmp_path: Path) -> None:
    """The simulator doubles as a forward proxy: it answers absolute-URI requests for any host. The
    upstream named here does not resolve, so an answer proves the request went through the proxy."""
    env = {
        **MAPPING_ONLY,
        "ANTHROPIC_API_KEY": UPSTREAM_KEY,
        "ANTHROPIC_BASE_URL": "http://upstream.invalid:9",
        "HTTP_PROXY": simulator.url,
        "NO_PROXY": "",
        "CHATGATE_UPSTREAM_CONNECT_TIMEOUT": "2",
    }
    for trust, expected in (("true", 200), ("false", 502)):
        (tmp_path / trust).mkdir()
        gateway = start_gateway(tmp_path / trust, env={**env, "CHATGATE_UPSTREAM_TRUST_ENV": trust})
        try:
            tag = marker()
            response = httpx.post(
                gateway.http_url + "/v1/chat/completions",
                json={"model": MODEL, "messages": [{"role": "user", "content": tag}]},
                timeout=30,
            )
            assert response.status_code == expected, response.text
            if expected == 200:
                assert simulator.find(tag)["has_api_key"]
        finally:
            gateway.stop()
