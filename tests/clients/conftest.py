"""The real clients' suite: each client, at the version pinned in tests/node/package.json or the dev
lock, against what `make run` serves (no Anthropic key on a loopback host: the built-in simulator),
with telemetry and update checks off. Each test asserts on what the client itself returned."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import Gateway, start_gateway


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """`make run`: the gateway with its embedded simulator, nothing configured."""
    gateway = start_gateway(tmp_path_factory.mktemp("make-run"))
    yield gateway
    gateway.stop()
