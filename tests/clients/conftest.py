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


CLOUD_UPSTREAMS = """
[upstreams.invoke]
kind = "bedrock"
endpoint = "invoke"

[upstreams.vertex]
kind = "vertex"
"""


@pytest.fixture(scope="session", params=["invoke", "vertex"])
def served_by_cloud(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """`make run` with every model routed to one cloud: the embedded simulator plays Bedrock's InvokeModel
    (SigV4, event-stream frames) or Vertex AI (OAuth tokens), as in docs/bedrock.md and docs/vertex.md."""
    log_dir = tmp_path_factory.mktemp(f"make-run-{request.param}")
    config = log_dir / "chatgate.toml"
    config.write_text(CLOUD_UPSTREAMS)
    env = {
        "CHATGATE_CONFIG": str(config),
        "CHATGATE_ROUTES": request.param,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    gateway = start_gateway(log_dir, env=env)
    yield gateway
    gateway.stop()
