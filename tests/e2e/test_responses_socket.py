"""The Responses API over a WebSocket, as Codex and the Agents SDK use it: `response.create` frames in,
the same typed events out, several responses in sequence on one socket (continuing one another
without being stored), authentication from the upgrade, errors as events, and a drain that lets the
response in flight finish before the socket closes with 1001."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.support import UPSTREAM_KEY, Gateway, Simulator, marker, start_gateway

MODEL = "claude-haiku-4-5"
TOOL = {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}
ENDS = ("response.completed", "response.failed", "response.incomplete")


def url(gateway: Gateway) -> str:
    return gateway.http_url.replace("http://", "ws://") + "/v1/responses"


def create(socket: ClientConnection, **body: Any) -> list[dict[str, Any]]:
    """Sends one `response.create` and reads its events up to the last."""
    socket.send(json.dumps({"type": "response.create", "model": MODEL, "store": False, **body}))
    events = [json.loads(socket.recv(timeout=30))]
    if events[0]["type"] == "error":  # refused before the response began
        return events
    while events[-1]["type"] not in ENDS:
        events.append(json.loads(socket.recv(timeout=30)))
    return events


def test_three_turns_with_a_tool_call_on_one_socket(gateway: Gateway, simulator: Simulator) -> None:
    tag = marker()
    with connect(url(gateway)) as socket:
        first = create(socket, input=f"{tag} sim:tool look it up", tools=[TOOL])
        assert first[0]["type"] == "response.created" and first[-1]["type"] == "response.completed"
        assert [e["sequence_number"] for e in first] == list(range(len(first)))
        response = first[-1]["response"]
        (call,) = [item for item in response["output"] if item["type"] == "function_call"]
        # The next turn names the last response on this socket, which was not stored, and sends only
        # the new item: the socket remembers the conversation.
        output = {"type": "function_call_output", "call_id": call["call_id"], "output": "forty-two"}
        second = create(socket, input=[output], tools=[TOOL], previous_response_id=response["id"])
        answer = second[-1]["response"]
        assert second[-1]["type"] == "response.completed"
        assert "forty-two" in answer["output"][-1]["content"][0]["text"]
        third = create(socket, input="sim:notool thanks", previous_response_id=answer["id"])
        assert third[-1]["response"]["output"][-1]["content"][0]["text"].startswith(
            "[chatgate simulator] You said: thanks"
        )
        assert third[-1]["response"]["usage"]["input_tokens"] > answer["usage"]["input_tokens"]
    sent = simulator.find("thanks")["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant", "user"]  # the whole conversation


def test_each_response_on_a_socket_is_a_request_of_its_own(gateway: Gateway) -> None:
    with connect(url(gateway), additional_headers={"x-request-id": "req_upgrade_0123456789"}) as socket:
        first = create(socket, input="sim:notool one")[-1]["response"]["id"]
        second = create(socket, input="sim:notool two")[-1]["response"]["id"]
    lines = [line for line in gateway.log().splitlines() if '"status":"101"' in line and '"chatgate.access"' in line]
    ids = [line.split('"request_id":"', 1)[1].split('"', 1)[0] for line in lines[-2:]]
    assert first != second and len(set(ids)) == 2 and "req_upgrade_0123456789" not in ids


def test_a_bad_frame_is_an_error_event_and_the_socket_keeps_serving(gateway: Gateway) -> None:
    with connect(url(gateway)) as socket:
        socket.send("not json")
        error = json.loads(socket.recv(timeout=10))
        assert error["type"] == "error" and error["status"] == 400 and error["error"]["code"] == "invalid_json"
        bad = create(socket, input="hi", max_output_tokens=-1)
        assert bad[-1]["type"] == "error" and bad[-1]["error"]["param"] == "max_output_tokens"
        good = create(socket, input="sim:notool hello")
        assert good[-1]["type"] == "response.completed"


def test_upstream_failures_end_a_response_with_response_failed(gateway: Gateway) -> None:
    with connect(url(gateway)) as socket:
        events = create(socket, input="sim:error_after=2 sim:words=20")
        assert events[0]["type"] == "response.created"
        assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]


@pytest.fixture
def guarded(simulator: Simulator, tmp_path: Path) -> Iterator[Gateway]:
    env = {
        "CHATGATE_API_KEYS": "sock-key-1",
        "ANTHROPIC_API_KEY": UPSTREAM_KEY,
        "ANTHROPIC_BASE_URL": simulator.url,
        "CHATGATE_SHUTDOWN_GRACE": "20",
    }
    gateway = start_gateway(tmp_path, env=env)
    yield gateway
    gateway.stop()


def test_the_upgrade_is_authenticated_like_any_request(guarded: Gateway) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(url(guarded), additional_headers={"Authorization": "Bearer wrong-SECRET"})
    assert refused.value.response.status_code == 401
    body = json.loads(refused.value.response.body or b"{}")
    assert body["error"]["code"] == "invalid_api_key" and "wrong-SECRET" not in str(body)
    with connect(url(guarded), additional_headers={"Authorization": "Bearer sock-key-1"}) as socket:
        assert create(socket, input="sim:notool hi")[-1]["type"] == "response.completed"


def test_a_drain_lets_the_response_in_flight_finish_then_closes_with_1001(guarded: Gateway) -> None:
    headers = {"Authorization": "Bearer sock-key-1"}
    with (
        connect(url(guarded), additional_headers=headers) as socket,
        connect(url(guarded), additional_headers=headers) as idle,
    ):
        socket.send(
            json.dumps({"type": "response.create", "model": MODEL, "input": "sim:notool sim:words=30 sim:pace_ms=60"})
        )
        first = json.loads(socket.recv(timeout=10))
        assert first["type"] == "response.created"
        guarded.process.send_signal(signal.SIGTERM)  # mid-response
        events = [first]
        while events[-1]["type"] not in ENDS:
            events.append(json.loads(socket.recv(timeout=30)))
        assert events[-1]["type"] == "response.completed"  # the response in flight finished
        words = events[-1]["response"]["output"][-1]["content"][0]["text"].split()
        assert len(words) == 30
        for client in (socket, idle):
            with pytest.raises(ConnectionClosed) as closed:
                client.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001  # going away: reconnect
    assert guarded.process.wait(timeout=30) == 0


def test_other_websocket_paths_are_refused(gateway: Gateway) -> None:
    other = gateway.http_url.replace("http://", "ws://") + "/v1/chat/completions"
    with pytest.raises((InvalidStatus, ConnectionClosed)), connect(other) as socket:
        socket.recv(timeout=5)


def test_a_warm_up_frame_answers_without_calling_the_upstream(gateway: Gateway, simulator: Simulator) -> None:
    tag = marker()
    with connect(url(gateway)) as socket:
        warm = create(socket, input=f"{tag} sim:notool warm", generate=False)
        assert [e["type"] for e in warm] == ["response.created", "response.in_progress", "response.completed"]
        assert warm[-1]["response"]["output"] == []
        with pytest.raises(AssertionError):
            simulator.find(tag)  # nothing went upstream
        # The warmed conversation continues like any response on the socket.
        answer = create(socket, input="sim:notool now", previous_response_id=warm[-1]["response"]["id"])
        assert answer[-1]["type"] == "response.completed"
    assert [m["role"] for m in simulator.find(tag)["body"]["messages"]] == ["user"]  # both user turns, merged


def test_the_official_sdks_websocket_client_holds_a_conversation(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=gateway.http_url + "/v1", api_key="unused")
    with client, client.responses.connect() as connection:
        previous: str | None = None
        texts = []
        for turn in ("first", "second", "third"):
            extra = {"previous_response_id": previous} if previous else {}
            connection.response.create(model=MODEL, input=f"sim:notool {turn}", store=False, **extra)
            for event in connection:
                if event.type == "response.completed":
                    previous = event.response.id
                    texts.append(event.response.output_text)
                    break
                assert event.type not in ("error", "response.failed"), event
        # Steering is not offered: the API's own refusal, and the socket goes on.
        connection.send({"type": "response.steer", "previous_response_id": previous, "input": "faster"})  # type: ignore[arg-type]
        refused = connection.recv()
        assert refused.type == "response.steer.failed" and refused.error.code == "steering_not_supported"
    assert texts == [f"[chatgate simulator] You said: {t}." for t in ("first", "second", "third")]


@pytest.mark.parametrize("answer", ["sim:words=60 sim:pace_ms=100", "sim:stall_after_start=5 sim:words=3"])
def test_a_client_that_leaves_mid_response_cancels_the_upstream_call(
    answer: str, gateway: Gateway, simulator: Simulator
) -> None:
    """Writing or silent (a model thinking): either way the upstream call ends within a second."""
    before = simulator.stats()["aborted"]
    with connect(url(gateway)) as socket:
        socket.send(json.dumps({"type": "response.create", "model": MODEL, "input": answer}))
        assert json.loads(socket.recv(timeout=10))["type"] == "response.created"
    deadline = time.monotonic() + 1
    while simulator.stats()["aborted"] == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert simulator.stats()["aborted"] > before  # the upstream stream was closed, not read to its end
    time.sleep(0.2)
    last = [line for line in gateway.log().splitlines() if '"chatgate.access"' in line and '"/v1/responses"' in line][
        -1
    ]
    assert '"outcome":"client_disconnected"' in last
    assert "unexpected failure" not in gateway.log()
