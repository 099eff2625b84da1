"""Claude through Amazon Bedrock (both endpoints) and Google Vertex AI, through real sockets.

The simulator plays each platform's wire: SigV4 recomputed with botocore, InvokeModel streams in
AWS's event-stream framing with both checksums, OAuth tokens it issues against a service-account
JWT, and each platform's error shapes. The gateway calls it with the platforms' own libraries, as
it would call AWS and Google. Every surface (Chat Completions, Responses, Messages, gRPC) runs over
every route, whole and streamed; then the faults: a corrupted frame, an expiring and a revoked
token, a refused signature, and failover from route to route.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import grpc
import httpx
import openai
import pytest

from chatgate.v1 import chat_pb2, chat_service_pb2, chat_service_pb2_grpc
from tests.support import (
    UPSTREAM_KEY,
    Gateway,
    Simulator,
    eventually,
    free_port,
    grpc_request,
    marker,
    start_gateway,
    start_simulator,
)

HAIKU = "claude-haiku-4-5-20251001"
PRICE = {"input": 1.0, "output": 5.0, "cache_read": 0.1, "cache_write_5m": 1.25, "cache_write_1h": 2.0}
# One catalog entry per route: the same Claude model, reached three ways.
ROUTED = {"bedrock": "haiku-bedrock", "invoke": "haiku-invoke", "vertex": "haiku-vertex"}
PLATFORM_OF = {"bedrock": "bedrock", "invoke": "bedrock", "vertex": "vertex"}
AWS = {
    "AWS_ACCESS_KEY_ID": "AKIACHATGATESIMULATOR",
    "AWS_SECRET_ACCESS_KEY": "chatgate-simulator-secret-access-key",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # never wait on an instance role that is not there
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def model_entry(name: str, routes: list[Any]) -> str:
    return (
        f'[[models]]\nid = "{name}"\nupstream_id = "{HAIKU}"\nmax_output_tokens = 64000\n'
        f"routes = {toml_value(routes)}\nprice = {toml_value(PRICE)}\n"
    )


def routes_config(sim: str, account_file: Path, *, busy: str = "", dead: str = "") -> str:
    text = f"""
[upstreams.bedrock]
kind = "bedrock"
base_url = "{sim}/anthropic"
region = "us-east-1"

[upstreams.invoke]
kind = "bedrock"
endpoint = "invoke"
base_url = "{sim}"
region = "us-east-1"
inference_profile = "us"

[upstreams.vertex]
kind = "vertex"
base_url = "{sim}"
project = "chatgate-sim"
region = "us-east5"
credentials_file = "{account_file}"
token_margin = 1
"""
    if busy and dead:
        text += f"""
[upstreams.busy]
kind = "anthropic"
base_url = "{busy}"
api_key = "{UPSTREAM_KEY}"

[upstreams.refused]
kind = "anthropic"
base_url = "{dead}"
api_key = "{UPSTREAM_KEY}"

[upstreams.bedrock_busy]
kind = "bedrock"
base_url = "{busy}/anthropic"
region = "us-east-1"

[upstreams.invoke_refused]
kind = "bedrock"
endpoint = "invoke"
base_url = "{dead}"
region = "us-east-1"
"""
    for route, name in ROUTED.items():
        text += model_entry(name, [route])
    if busy and dead:
        text += model_entry("haiku-failover-529", ["busy", "bedrock_busy", {"upstream": "vertex", "price_factor": 1.5}])
        text += model_entry("haiku-failover-refused", ["refused", "invoke_refused", "vertex"])
    return text


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    sim = start_simulator(tmp_path_factory.mktemp("sim"), api_key=UPSTREAM_KEY)
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def busy_simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """An upstream in an outage: every message request answers 529 (503 on InvokeModel)."""
    sim = start_simulator(tmp_path_factory.mktemp("busy"), api_key=UPSTREAM_KEY)
    httpx.post(sim.url + "/_sim/outage", json={"seconds": 3600}, timeout=5).raise_for_status()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def account_file(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The service-account key whose tokens the simulator issues, as Google would hand it out."""
    path = tmp_path_factory.mktemp("gcp") / "service-account.json"
    path.write_text(httpx.get(simulator.url + "/_sim/vertex/service-account", timeout=5).text)
    return path


@pytest.fixture(scope="module")
def gateway(
    simulator: Simulator, busy_simulator: Simulator, account_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    log_dir = tmp_path_factory.mktemp("gw")
    config = log_dir / "chatgate.toml"
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connections are refused
    config.write_text(routes_config(simulator.url, account_file, busy=busy_simulator.url, dead=dead))
    env = {
        **AWS,
        "ANTHROPIC_API_KEY": UPSTREAM_KEY,
        "ANTHROPIC_BASE_URL": simulator.url,
        "CHATGATE_CONFIG": str(config),
        "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent",  # only the configured key file may be used
    }
    started = start_gateway(log_dir, env=env)
    yield started
    started.stop()


def platform_count(simulator: Simulator, name: str) -> int:
    return int(httpx.get(simulator.url + "/_sim/platforms", timeout=5).json()[name])


# --- every surface over every route --------------------------------------------------------------


def ask_chat(gateway: Gateway, model: str, text: str, stream: bool) -> str:
    client = openai.OpenAI(base_url=gateway.http_url + "/v1", api_key="unused", max_retries=0)
    if not stream:
        answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])
        assert answer.choices[0].finish_reason == "stop"
        return answer.choices[0].message.content or ""
    parts, finish = [], None
    for chunk in client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], stream=True):
        for choice in chunk.choices:
            parts.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert finish == "stop"
    return "".join(parts)


def ask_responses(gateway: Gateway, model: str, text: str, stream: bool) -> str:
    client = openai.OpenAI(base_url=gateway.http_url + "/v1", api_key="unused", max_retries=0)
    if not stream:
        response = client.responses.create(model=model, input=text)
        assert response.status == "completed"
        return response.output_text
    done = None
    with client.responses.stream(model=model, input=text) as events:
        for event in events:
            if event.type == "response.completed":
                done = event.response
    assert done is not None and done.status == "completed"
    return done.output_text


def ask_messages(gateway: Gateway, model: str, text: str, stream: bool) -> str:
    client = anthropic.Anthropic(base_url=gateway.http_url, api_key="unused", max_retries=0)
    messages: Any = [{"role": "user", "content": text}]
    if not stream:
        message = client.messages.create(model=model, max_tokens=200, messages=messages)
        assert message.stop_reason == "end_turn"
        return "".join(b.text for b in message.content if b.type == "text")
    with client.messages.stream(model=model, max_tokens=200, messages=messages) as events:
        final = events.get_final_message()
    assert final.stop_reason == "end_turn"
    return "".join(b.text for b in final.content if b.type == "text")


def ask_grpc(gateway: Gateway, model: str, text: str, stream: bool) -> str:
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        stub = chat_service_pb2_grpc.ChatCompletionServiceStub(channel)
        request = grpc_request(text, model=model)
        if not stream:
            answer = stub.CreateChatCompletion(request, timeout=20)
            assert answer.choices[0].finish_reason == chat_pb2.FINISH_REASON_STOP
            return str(answer.choices[0].message.content[0].text)
        parts, finish = [], 0
        for chunk in stub.StreamChatCompletion(request, timeout=20):
            for choice in chunk.choices:
                parts.append(choice.delta.content)
                finish = choice.finish_reason or finish
        assert finish == chat_pb2.FINISH_REASON_STOP
        return "".join(parts)


SURFACES = {"chat": ask_chat, "responses": ask_responses, "messages": ask_messages, "grpc": ask_grpc}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("surface", list(SURFACES))
@pytest.mark.parametrize("route", list(ROUTED))
def test_every_surface_answers_over_every_route(
    gateway: Gateway, simulator: Simulator, route: str, surface: str, stream: bool
) -> None:
    text = f"hello over {route} {marker()}"
    platform = PLATFORM_OF[route]
    before = platform_count(simulator, platform)
    answer = SURFACES[surface](gateway, ROUTED[route], text, stream)
    assert f"You said: {text}" in answer
    assert platform_count(simulator, platform) == before + 1  # the platform's own route answered
    assert simulator.find(text)["body"]["model"] == HAIKU  # read back from the platform's own model id


def test_the_simulator_saw_each_platforms_own_wire(gateway: Gateway, simulator: Simulator) -> None:
    """What reached the Anthropic simulator behind each front: the model named by the platform's id."""
    for route, model in ROUTED.items():
        text = f"wire {route} {marker()}"
        ask_chat(gateway, model, text, stream=route == "invoke")
        seen = simulator.find(text)
        assert seen["body"]["model"] == HAIKU  # each front read its platform's id back to Anthropic's


def access_line(gateway: Gateway, request_id: str) -> dict[str, Any]:
    """The request's access-log line, which the gateway writes once the exchange closes: that may be
    a moment after the client has its answer, so it is waited for."""
    found: list[dict[str, Any]] = []

    def logged() -> bool:
        found[:] = [
            json.loads(raw)
            for raw in gateway.log().splitlines()
            if request_id in raw and '"chatgate.access"' in raw.replace(" ", "")
        ]
        return bool(found)

    assert eventually(logged), f"no access line for {request_id}"
    return found[-1]


def test_the_access_log_names_the_route_that_answered(gateway: Gateway) -> None:
    response = httpx.post(
        gateway.http_url + "/v1/chat/completions",
        json={"model": ROUTED["vertex"], "messages": [{"role": "user", "content": f"logged {marker()}"}]},
        timeout=10,
    )
    assert response.status_code == 200
    line = access_line(gateway, response.headers["x-request-id"])
    assert (line["served_model"], line["upstream"]) == (ROUTED["vertex"], "vertex")


# --- counting tokens ------------------------------------------------------------------------------


def count(gateway: Gateway, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "count these words please"}]}
    headers = {"anthropic-version": "2023-06-01"}
    return httpx.post(gateway.http_url + "/v1/messages/count_tokens", json=body, headers=headers, timeout=10)


def test_token_counting_where_the_platform_counts(gateway: Gateway) -> None:
    direct = count(gateway, "claude-haiku-4-5")
    assert direct.status_code == 200
    for route in ("invoke", "vertex"):
        counted = count(gateway, ROUTED[route])
        assert counted.status_code == 200, counted.text
        assert counted.json() == direct.json()  # the same count, from the platform's counting API


def test_token_counting_where_it_does_not_is_a_clear_501(gateway: Gateway) -> None:
    refused = count(gateway, ROUTED["bedrock"])
    assert refused.status_code == 501
    error = refused.json()
    assert error["type"] == "error" and "not offered" in error["error"]["message"]
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        stub = chat_service_pb2_grpc.ChatCompletionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as failed:
            stub.CountTokens(grpc_request("count me", model=ROUTED["bedrock"]), timeout=10)
    assert failed.value.code() == grpc.StatusCode.UNIMPLEMENTED


# --- betas each platform does not offer -----------------------------------------------------------


def test_betas_a_platform_lacks_are_dropped_and_reported(gateway: Gateway, simulator: Simulator) -> None:
    text = f"betas {marker()}"
    body = {"model": ROUTED["vertex"], "max_tokens": 50, "messages": [{"role": "user", "content": text}]}
    headers = {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "interleaved-thinking-2025-05-14,made-up-beta-2026-11-01",
    }
    answer = httpx.post(gateway.http_url + "/v1/messages", json=body, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert "anthropic-beta=dropped" in answer.headers["x-chatgate-adjusted"]
    assert simulator.find(text)["headers"].get("anthropic-beta") == "interleaved-thinking-2025-05-14"
    strict = httpx.post(
        gateway.http_url + "/v1/messages",
        json=body,
        headers={**headers, "x-chatgate-compatibility": "strict"},
        timeout=10,
    )
    assert strict.status_code == 400
    assert "made-up-beta-2026-11-01" in strict.json()["error"]["message"]


# --- faults ---------------------------------------------------------------------------------------


def test_a_corrupted_event_stream_frame_is_a_clean_upstream_error(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=gateway.http_url + "/v1", api_key="unused", max_retries=0)
    # Paced, so the frames before the bad one arrive (and are delivered) before it.
    text = f"sim:corrupt_frame=6 sim:pace_ms=5 tell me more about it {marker()}"
    received = []
    with pytest.raises(openai.APIError) as failed:
        for chunk in client.chat.completions.create(
            model=ROUTED["invoke"], messages=[{"role": "user", "content": text}], stream=True
        ):
            received.append(chunk)
    assert "malformed" in str(failed.value).lower()
    assert received  # the frames before the bad one were delivered, then the error: never a silent end
    messages = [{"role": "user", "content": text}]
    body = {"model": ROUTED["invoke"], "max_tokens": 50, "stream": True, "messages": messages}
    native = httpx.post(gateway.http_url + "/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
    assert "event: error" in native.text and "message_stop" not in native.text
    assert "You said" in ask_chat(gateway, ROUTED["invoke"], f"after {marker()}", stream=True)  # still serving


def tokens(simulator: Simulator, change: dict[str, Any]) -> None:
    httpx.post(simulator.url + "/_sim/vertex/tokens", json=change, timeout=5).raise_for_status()


def stats(simulator: Simulator) -> dict[str, int]:
    return dict(httpx.get(simulator.url + "/_sim/platforms", timeout=5).json())


def test_an_expiring_vertex_token_is_renewed_without_a_failed_request(gateway: Gateway, simulator: Simulator) -> None:
    tokens(simulator, {"seconds": 3, "revoke": True})  # short-lived tokens from now on
    try:
        ask_chat(gateway, ROUTED["vertex"], f"first {marker()}", stream=False)  # renews the revoked token
        before = stats(simulator)
        time.sleep(3.2)  # the token has expired by now
        assert "You said" in ask_chat(gateway, ROUTED["vertex"], f"later {marker()}", stream=True)
        after = stats(simulator)
        assert after["tokens_issued"] == before["tokens_issued"] + 1  # renewed ahead of the request
        assert after["refused"] == before["refused"]  # and the upstream never refused one
    finally:
        tokens(simulator, {"seconds": 3600})


def test_a_revoked_vertex_token_is_renewed_and_the_request_answered(gateway: Gateway, simulator: Simulator) -> None:
    ask_chat(gateway, ROUTED["vertex"], f"warm {marker()}", stream=False)
    tokens(simulator, {"revoke": True})  # the gateway still believes its token good for an hour
    before = stats(simulator)
    assert "You said" in ask_messages(gateway, ROUTED["vertex"], f"after revoke {marker()}", stream=False)
    after = stats(simulator)
    assert after["refused"] == before["refused"] + 1  # one 401 ...
    assert after["tokens_issued"] == before["tokens_issued"] + 1  # ... one new token, and the answer


def test_failover_across_routes_when_earlier_ones_are_overloaded(gateway: Gateway) -> None:
    response = httpx.post(
        gateway.http_url + "/v1/chat/completions",
        json={"model": "haiku-failover-529", "messages": [{"role": "user", "content": f"fail over {marker()}"}]},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    adjusted = response.headers["x-chatgate-adjusted"]
    assert "route=busy->bedrock_busy" in adjusted and "route=bedrock_busy->vertex" in adjusted
    request_id = response.headers["x-request-id"]
    assert access_line(gateway, request_id)["upstream"] == "vertex"
    ledger = sqlite3.connect(gateway.log_path.parent / "ledger.sqlite3")
    deadline = time.monotonic() + 10
    row = None
    while row is None and time.monotonic() < deadline:
        row = ledger.execute(
            "SELECT input_tokens, output_tokens, cost_usd FROM usage_ledger WHERE request_id = ?", (request_id,)
        ).fetchone()
        time.sleep(0.1)
    assert row is not None, "the request never reached the ledger"
    listed = (row[0] * PRICE["input"] + row[1] * PRICE["output"]) / 1_000_000
    assert row[2] == pytest.approx(listed * 1.5)  # priced as the route that answered


def test_failover_across_routes_when_earlier_ones_refuse_connections(gateway: Gateway) -> None:
    for stream in (False, True):
        assert "You said" in ask_chat(gateway, "haiku-failover-refused", f"refused {marker()}", stream)
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        stub = chat_service_pb2_grpc.ChatCompletionServiceStub(channel)
        answer, call = stub.CreateChatCompletion.with_call(grpc_request("by grpc", model="haiku-failover-refused"))
    assert answer.choices[0].message.content[0].text.endswith("by grpc.")
    metadata = dict([*call.initial_metadata(), *call.trailing_metadata()])
    adjusted = str(metadata.get("x-chatgate-adjusted", ""))
    assert "route=refused->invoke_refused" in adjusted and "route=invoke_refused->vertex" in adjusted


# --- the gateway's own credentials refused ----------------------------------------------------------


@pytest.fixture(scope="module")
def badly_signed(
    simulator: Simulator, account_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    log_dir = tmp_path_factory.mktemp("badsig")
    config = log_dir / "chatgate.toml"
    config.write_text(routes_config(simulator.url, account_file))
    env = {
        **AWS,
        "AWS_SECRET_ACCESS_KEY": "not-the-secret-the-simulator-knows",
        "ANTHROPIC_API_KEY": UPSTREAM_KEY,
        "ANTHROPIC_BASE_URL": simulator.url,
        "CHATGATE_CONFIG": str(config),
    }
    started = start_gateway(log_dir, env=env)
    yield started
    started.stop()


@pytest.mark.parametrize("route", ["bedrock", "invoke"])
def test_a_refused_signature_is_the_gateways_own_credential_failure(
    badly_signed: Gateway, simulator: Simulator, route: str
) -> None:
    before = stats(simulator)["refused"]
    response = httpx.post(
        badly_signed.http_url + "/v1/chat/completions",
        json={"model": ROUTED[route], "messages": [{"role": "user", "content": f"signed {marker()}"}]},
        timeout=10,
    )
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_authentication_failed"  # the operator's credential, not the client's fault
    assert "not-the-secret" not in response.text and "not-the-secret" not in badly_signed.log()
    assert stats(simulator)["refused"] > before  # the platform answered 403 InvalidSignatureException
    assert "HTTP 403 -> upstream_authentication_failed" in badly_signed.log()
    with grpc.insecure_channel(badly_signed.grpc_target) as channel:
        stub = chat_service_pb2_grpc.ChatCompletionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as failed:
            stub.CreateChatCompletion(grpc_request("signed", model=ROUTED[route]), timeout=10)
    assert failed.value.code() == grpc.StatusCode.INTERNAL


def test_list_models_shows_every_routed_model(gateway: Gateway) -> None:
    listed = {m["id"] for m in httpx.get(gateway.http_url + "/v1/models", timeout=5).json()["data"]}
    assert set(ROUTED.values()) <= listed
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        stub = chat_service_pb2_grpc.ChatCompletionServiceStub(channel)
        models = stub.ListModels(chat_service_pb2.ListModelsRequest(), timeout=5)
    assert set(ROUTED.values()) <= {m.id for m in models.models}


# --- `make run` on a laptop: the embedded simulator plays every route --------------------------------


def test_without_keys_on_loopback_the_embedded_simulator_serves_every_route(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    log_dir = tmp_path_factory.mktemp("embedded")
    config = log_dir / "chatgate.toml"
    config.write_text(
        '[upstreams.bedrock]\nkind = "bedrock"\n[upstreams.invoke]\nkind = "bedrock"\nendpoint = "invoke"\n'
        '[upstreams.vertex]\nkind = "vertex"\n'
    )
    env = {
        "CHATGATE_CONFIG": str(config),
        "CHATGATE_ROUTES": "invoke,bedrock,vertex",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    gateway = start_gateway(log_dir, env=env)
    try:
        for surface, ask in SURFACES.items():
            for stream in (False, True):
                text = f"embedded {surface} {stream} {marker()}"
                assert f"You said: {text}" in ask(gateway, "claude-haiku-4-5", text, stream)
        served = [json.loads(raw) for raw in gateway.log().splitlines() if '"embedded' in raw or '"upstream"' in raw]
        assert {line.get("upstream") for line in served if "upstream" in line} == {"invoke"}
        assert "the simulator serves its route too" in gateway.log()
    finally:
        gateway.stop()


def test_first_party_fields_are_left_out_on_a_cloud_route_and_reported(gateway: Gateway, simulator: Simulator) -> None:
    text = f"fields {marker()}"
    body = {
        "model": ROUTED["vertex"],
        "max_tokens": 50,
        "messages": [{"role": "user", "content": text}],
        "mcp_servers": [{"type": "url", "url": "https://mcp.example/sse", "name": "example"}],
    }
    answer = httpx.post(gateway.http_url + "/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
    assert answer.status_code == 200, answer.text
    assert "mcp_servers=dropped" in answer.headers["x-chatgate-adjusted"]
    assert "mcp_servers" not in simulator.find(text)["body"]


@pytest.mark.parametrize("route", list(ROUTED))
def test_the_platforms_request_id_reaches_the_client(gateway: Gateway, route: str) -> None:
    """As Anthropic's `request-id` does: `x-upstream-request-id` on a translated answer, `request-id` natively."""
    messages = [{"role": "user", "content": f"ids {marker()}"}]
    translated = httpx.post(
        gateway.http_url + "/v1/chat/completions", json={"model": ROUTED[route], "messages": messages}, timeout=10
    )
    native = httpx.post(
        gateway.http_url + "/v1/messages",
        json={"model": ROUTED[route], "max_tokens": 20, "messages": messages},
        headers={"anthropic-version": "2023-06-01"},
        timeout=10,
    )
    assert translated.status_code == native.status_code == 200
    assert translated.headers["x-upstream-request-id"] and native.headers["request-id"]
    assert translated.headers["x-upstream-request-id"] != translated.headers["x-request-id"]
