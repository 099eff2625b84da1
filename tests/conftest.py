"""Shared fixtures: real processes on loopback ports, driven the way users drive them."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import httpx
import openai
import pytest

from chatgate.v1 import chat_service_pb2_grpc
from tests.support import FIXTURES, MAPPING_ONLY, UPSTREAM_KEY, Gateway, Simulator, start_gateway, start_simulator


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden from the current output")


@pytest.fixture(scope="session")
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture(scope="session")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    sim = start_simulator(tmp_path_factory.mktemp("sim"), api_key=UPSTREAM_KEY, replay_dir=FIXTURES)
    yield sim
    sim.stop()


@pytest.fixture(scope="session")
def gateway(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The gateway as a separate process, pointed at the simulator by ANTHROPIC_BASE_URL."""
    gw = start_gateway(
        tmp_path_factory.mktemp("gw"),
        env={
            **MAPPING_ONLY,
            "ANTHROPIC_API_KEY": UPSTREAM_KEY,
            "ANTHROPIC_BASE_URL": simulator.url,
            "CHATGATE_LOG_LEVEL": "debug",  # everything it says, for the check below
        },
    )
    yield gw
    gw.stop()
    # Every test that used this gateway has run: at DEBUG, its log never held the upstream key
    # (upstream errors that quote it back included; tests/e2e/test_operations.py checks the rest).
    assert '"level":"debug"' in gw.log() and UPSTREAM_KEY not in gw.log()


@pytest.fixture(scope="session")
def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.http_url + "/v1", api_key="unused", max_retries=0, timeout=30)


@pytest.fixture(scope="session")
def http(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.http_url, timeout=30) as session:
        yield session


@pytest.fixture(scope="session")
def stub(gateway: Gateway) -> Iterator[chat_service_pb2_grpc.ChatCompletionServiceStub]:
    channel = grpc.insecure_channel(gateway.grpc_target)
    yield chat_service_pb2_grpc.ChatCompletionServiceStub(channel)
    channel.close()


@pytest.fixture(scope="session")
def grpc_channel(gateway: Gateway) -> Iterator[grpc.Channel]:
    channel = grpc.insecure_channel(gateway.grpc_target)
    yield channel
    channel.close()
