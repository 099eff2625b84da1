"""Startup, authentication, secrets, cancellation and shutdown, on separate gateway processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import openai
import pytest

from chatgate.v1 import chat_service_pb2_grpc
from tests.support import MODEL, ROOT, UPSTREAM_KEY, Gateway, Simulator, grpc_request, start_gateway

WRONG_KEY = "sk-ant-wrong-SECRET-4f9a2b"


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """What `make run` starts on a fresh machine: no Anthropic key, so the built-in simulator."""
    gateway = start_gateway(tmp_path_factory.mktemp("embedded"))
    yield gateway
    gateway.stop()


def wait_for(predicate: object, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_without_a_key_it_serves_from_the_simulator_and_says_so(embedded: Gateway) -> None:
    assert "serving from the built-in SIMULATOR" in embedded.log()
    client = openai.OpenAI(base_url=embedded.http_url + "/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hello"}])
    assert reply.choices[0].message.content == "[chatgate simulator] You said: hello."
    stub = chat_service_pb2_grpc.ChatCompletionServiceStub(grpc.insecure_channel(embedded.grpc_target))
    assert stub.CreateChatCompletion(grpc_request("hello"), timeout=10).choices[0].message.content[0].text == (
        reply.choices[0].message.content
    )


def test_claude_codes_default_model_request_answers_from_make_run(embedded: Gateway) -> None:
    """Claude Code's current default model sends `system`-role messages between turns under the
    mid-conversation beta, with `?beta=true`; what `make run` serves must accept that out of the box."""
    headers = {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219,mid-conversation-system-2026-04-07",
        "x-api-key": "unused",
    }
    body = {
        "model": "claude-opus-5-5",
        "max_tokens": 256,
        "system": [{"type": "text", "text": "You are Claude Code."}],
        "messages": [
            {"role": "user", "content": "List the files."},
            {"role": "assistant", "content": "I will look."},
            {"role": "system", "content": "The working directory changed to /repo."},
            {"role": "user", "content": "Go on."},
        ],
        "stream": True,
    }
    with httpx.stream(
        "POST", embedded.http_url + "/v1/messages?beta=true", json=body, headers=headers, timeout=30
    ) as reply:
        events = reply.read().decode()
    assert reply.status_code == 200, events
    assert "event: message_stop" in events and '"type":"thinking"' in events.replace(" ", "")  # always thinks


def test_probes(embedded: Gateway) -> None:
    assert httpx.get(embedded.http_url + "/livez").json() == {"status": "ok"}
    assert httpx.get(embedded.http_url + "/readyz").json() == {"status": "ready"}


def test_gateway_keys_guard_both_protocols(simulator: Simulator, tmp_path: Path) -> None:
    gateway = start_gateway(
        tmp_path,
        env={
            "CHATGATE_API_KEYS": "key-one,key-two",
            "ANTHROPIC_API_KEY": UPSTREAM_KEY,
            "ANTHROPIC_BASE_URL": simulator.url,
        },
    )
    try:
        denied = openai.OpenAI(base_url=gateway.http_url + "/v1", api_key="guess-SECRET", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as caught:
            denied.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
        assert caught.value.code == "invalid_api_key" and "guess-SECRET" not in caught.value.response.text
        with pytest.raises(openai.AuthenticationError):
            denied.models.list()
        allowed = openai.OpenAI(base_url=gateway.http_url + "/v1", api_key="key-two", max_retries=0)
        assert allowed.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}]).choices
        stub = chat_service_pb2_grpc.ChatCompletionServiceStub(grpc.insecure_channel(gateway.grpc_target))
        with pytest.raises(grpc.RpcError) as rpc_error:
            stub.CreateChatCompletion(grpc_request("x"), timeout=10)
        assert rpc_error.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        reply = stub.CreateChatCompletion(grpc_request("x"), metadata=[("authorization", "Bearer key-one")], timeout=10)
        assert reply.choices
        assert httpx.get(gateway.http_url + "/livez").status_code == 200
    finally:
        gateway.stop()


def test_a_rejected_upstream_key_is_a_502_that_never_shows_the_key(simulator: Simulator, tmp_path: Path) -> None:
    gateway = start_gateway(
        tmp_path,
        env={"ANTHROPIC_API_KEY": WRONG_KEY, "ANTHROPIC_BASE_URL": simulator.url},
        args=["--log-level", "debug"],
    )
    try:
        response = httpx.post(
            gateway.http_url + "/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
        )
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "upstream_authentication_failed"
        assert response.headers["x-should-retry"] == "false"
        stub = chat_service_pb2_grpc.ChatCompletionServiceStub(grpc.insecure_channel(gateway.grpc_target))
        with pytest.raises(grpc.RpcError) as caught:
            stub.CreateChatCompletion(grpc_request("x"), timeout=10)
        assert caught.value.code() == grpc.StatusCode.INTERNAL  # type: ignore[attr-defined]
        assert WRONG_KEY not in response.text and WRONG_KEY not in str(caught.value.trailing_metadata())  # type: ignore[attr-defined]
    finally:
        gateway.stop()
    assert "SECRET" not in gateway.log()


def test_refuses_a_public_address_without_keys() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service", "serve", "--host", "0.0.0.0"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{ROOT}:{ROOT / 'gen'}"},
    )
    assert result.returncode == 2 and "without API keys" in result.stderr


def test_http_stream_disconnect_cancels_the_upstream(gateway: Gateway, simulator: Simulator) -> None:
    before = simulator.stats()["aborted"]
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "sim:pace_ms=100 sim:words=200"}]}
    with (
        httpx.Client(timeout=10) as session,
        session.stream("POST", gateway.http_url + "/v1/chat/completions", json=body) as response,
    ):
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
    assert wait_for(lambda: simulator.stats()["aborted"] == before + 1), simulator.stats()


@pytest.mark.parametrize("stream", [True, False], ids=["stream_before_first_token", "whole_reply"])
def test_http_disconnect_while_the_upstream_is_silent_cancels_it(
    gateway: Gateway, simulator: Simulator, stream: bool
) -> None:
    before = simulator.stats()["aborted"]
    body = {"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": "sim:stall=10"}]}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gateway.http_url + "/v1/chat/completions", timeout=0.5, json=body)
    assert wait_for(lambda: simulator.stats()["aborted"] == before + 1), simulator.stats()


def test_grpc_cancel_cancels_the_upstream(
    stub: chat_service_pb2_grpc.ChatCompletionServiceStub, simulator: Simulator
) -> None:
    before = simulator.stats()["aborted"]
    call = stub.StreamChatCompletion(grpc_request("sim:pace_ms=100 sim:words=200"), timeout=10)
    next(call)
    call.cancel()
    assert wait_for(lambda: simulator.stats()["aborted"] == before + 1), simulator.stats()


def gateway_with_grace(simulator: Simulator, tmp_path: Path, grace: float | None = None) -> Gateway:
    """A gateway of its own, to be stopped by the test; ``grace`` sets its shutdown grace in seconds."""
    args = []
    if grace is not None:
        config = tmp_path / "chatgate.toml"
        config.write_text(f"[server]\nshutdown_grace = {grace}\n")
        args = ["--config", str(config)]
    return start_gateway(
        tmp_path, env={"ANTHROPIC_API_KEY": UPSTREAM_KEY, "ANTHROPIC_BASE_URL": simulator.url}, args=args
    )


def sse_lines_after_sigterm(gateway: Gateway, text: str) -> list[str]:
    """Starts a stream, sends SIGTERM after its first line, and returns the non-blank lines that follow."""
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": text}]}
    with (
        httpx.Client(timeout=15) as session,
        session.stream("POST", gateway.http_url + "/v1/chat/completions", json=body) as response,
    ):
        lines = response.iter_lines()
        next(lines)
        gateway.process.send_signal(signal.SIGTERM)
        return [line for line in lines if line]


def test_sigterm_lets_an_in_flight_stream_finish_then_exits(simulator: Simulator, tmp_path: Path) -> None:
    gateway = gateway_with_grace(simulator, tmp_path)
    rest = sse_lines_after_sigterm(gateway, "sim:pace_ms=20 sim:words=40")
    assert rest[-1] == "data: [DONE]" and len(rest) > 30  # every word arrived after SIGTERM
    assert gateway.process.wait(timeout=15) == 0
    assert "chatgate stopped" in gateway.log()


def test_a_stream_still_running_when_the_shutdown_grace_ends_gets_an_error_frame(
    simulator: Simulator, tmp_path: Path
) -> None:
    gateway = gateway_with_grace(simulator, tmp_path, grace=1)
    rest = sse_lines_after_sigterm(gateway, "sim:pace_ms=100 sim:words=100")
    assert '"code":"shutting_down"' in rest[-1] and "[DONE]" not in rest[-1]
    assert gateway.process.wait(timeout=15) == 0


def test_a_grpc_stream_still_running_when_the_shutdown_grace_ends_gets_unavailable(
    simulator: Simulator, tmp_path: Path
) -> None:
    gateway = gateway_with_grace(simulator, tmp_path, grace=1)
    stub = chat_service_pb2_grpc.ChatCompletionServiceStub(grpc.insecure_channel(gateway.grpc_target))
    call = stub.StreamChatCompletion(grpc_request("sim:pace_ms=100 sim:words=100"), timeout=15)
    next(call)
    gateway.process.send_signal(signal.SIGTERM)
    with pytest.raises(grpc.RpcError) as caught:
        for _ in call:
            pass
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    details = dict(caught.value.trailing_metadata())["grpc-status-details-bin"]  # type: ignore[attr-defined]
    assert b"shutting_down" in details  # the ErrorInfo reason: retry elsewhere, not a bare cut
    assert gateway.process.wait(timeout=15) == 0
