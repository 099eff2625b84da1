"""Cloud routes in the configuration: routes placed on the catalog with each upstream's ids and prices,
and a cloud upstream whose credentials, region or project cannot be found stopping the start with one
line and exit status 2 (never a traceback, never the simulator in production's place)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from service.app.catalog import build_catalog
from service.app.config import ConfigError, load_settings
from service.core.models import Route
from tests.test_config import run_cli

CLOUDS = """
[upstreams.bedrock]
kind = "bedrock"
region = "us-east-1"
inference_profile = "us"

[upstreams.world]
kind = "bedrock"
region = "us-west-2"
inference_profile = "global"

[upstreams.vertex]
kind = "vertex"
project = "p"
region = "us-east5"
"""
# No AWS or Google credentials anywhere, and no instance role to wait for.
NO_CLOUD_CREDENTIALS = {
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_ACCESS_KEY_ID": "",
    "AWS_SECRET_ACCESS_KEY": "",
    "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/key.json",
}


def settings(tmp_path: Path, toml: str, env: dict[str, str] | None = None) -> Any:
    path = tmp_path / "chatgate.toml"
    path.write_text(toml)
    return load_settings({"config": str(path)}, env or {})


def test_catalog_routes_put_every_model_on_each_upstream_with_its_id_and_price(tmp_path: Path) -> None:
    catalog = build_catalog(settings(tmp_path, CLOUDS, {"CHATGATE_ROUTES": "anthropic,bedrock,world,vertex"}))
    haiku = catalog.resolve("claude-haiku-4-5")
    assert (haiku.provider, haiku.upstream_id, haiku.price_factor) == ("anthropic", "claude-haiku-4-5-20251001", 1.0)
    assert haiku.routes == (
        Route("bedrock", "us.anthropic.claude-haiku-4-5-20251001-v1:0", 1.1),  # a regional profile costs more
        Route("world", "global.anthropic.claude-haiku-4-5-20251001-v1:0", 1.0),
        Route("vertex", "claude-haiku-4-5@20251001", 1.1),
    )


def test_a_model_names_its_own_routes_ids_and_prices(tmp_path: Path) -> None:
    toml = (
        CLOUDS
        + """
[[models]]
id = "claude-haiku-4-5"
routes = [{ upstream = "vertex", model = "claude-haiku-4-5@custom", price_factor = 1.25 }, "bedrock"]
"""
    )
    haiku = build_catalog(settings(tmp_path, toml, {"CHATGATE_ROUTES": "anthropic,world"})).resolve("claude-haiku-4-5")
    assert (haiku.provider, haiku.upstream_id, haiku.price_factor) == ("vertex", "claude-haiku-4-5@custom", 1.25)
    assert haiku.routes == (Route("bedrock", "us.anthropic.claude-haiku-4-5-20251001-v1:0", 1.1),)


@pytest.mark.parametrize(
    ("toml", "env", "named"),
    [
        (CLOUDS, {"CHATGATE_ROUTES": "anthropic,nowhere"}, "nowhere"),
        (CLOUDS + '[[models]]\nid = "claude-haiku-4-5"\nroutes = ["anthropic", "elsewhere"]\n', {}, "elsewhere"),
        (CLOUDS + '[[models]]\nid = "claude-haiku-4-5"\nroutes = [{ model = "x" }]\n', {}, "routes[0]"),
        (CLOUDS + '[[models]]\nid = "claude-haiku-4-5"\nroutes = []\n', {}, "at least one"),
    ],
)
def test_a_route_to_nowhere_is_a_one_line_config_error(
    tmp_path: Path, toml: str, env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError) as failed:
        loaded = settings(tmp_path, toml, env)
        loaded.check()
        build_catalog(loaded)
    assert named in str(failed.value) and "\n" not in str(failed.value)


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ('[upstreams.bedrock]\nkind = "bedrock"\nregion = "us-east-1"\n', "no AWS credentials"),
        ('[upstreams.bedrock]\nkind = "bedrock"\n', "region is required"),
        ('[upstreams.vertex]\nkind = "vertex"\nproject = "p"\n', "no Google credentials"),
    ],
)
def test_a_cloud_upstream_without_credentials_stops_the_start_with_one_line(
    tmp_path: Path, table: str, named: str
) -> None:
    config = tmp_path / "chatgate.toml"
    config.write_text(table)
    env = {
        **NO_CLOUD_CREDENTIALS,
        "ANTHROPIC_API_KEY": "sk-ant-secret-key-for-the-test",
        "CHATGATE_ROUTES": "anthropic," + table.split("]", maxsplit=1)[0].split(".")[1],
        "CHATGATE_LEDGER_URL": "off",
        "AWS_REGION": "",
        "AWS_DEFAULT_REGION": "",
    }
    result = run_cli(["serve", "--http-port", "0", "--grpc-port", "0", "--config", str(config)], env)
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("chatgate: ")]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert "Traceback" not in result.stderr and "sk-ant-secret" not in result.stderr


def test_clouds_without_a_key_never_fall_back_to_the_simulator_off_loopback(tmp_path: Path) -> None:
    """Routed to Bedrock only, on a public address, with no credentials: the start fails, closed."""
    config = tmp_path / "chatgate.toml"
    config.write_text('[upstreams.bedrock]\nkind = "bedrock"\nregion = "us-east-1"\n')
    env = {
        **NO_CLOUD_CREDENTIALS,
        "CHATGATE_ROUTES": "bedrock",
        "CHATGATE_API_KEYS": "sk-gw-test",
        "CHATGATE_LEDGER_URL": "off",
    }
    args = ["serve", "--host", "0.0.0.0", "--http-port", "0", "--grpc-port", "0", "--config", str(config)]
    result = run_cli(args, env)
    assert result.returncode == 2, result.stderr
    assert "no AWS credentials" in result.stderr and "SIMULATOR" not in result.stderr


@pytest.mark.parametrize(
    ("kind", "module", "extra"), [("bedrock", "botocore", "bedrock"), ("vertex", "google.auth", "vertex")]
)
def test_a_cloud_upstream_without_its_extra_is_named_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, module: str, extra: str
) -> None:
    import importlib.util

    from service.app import platforms

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))
    loaded = settings(tmp_path, f'[upstreams.cloud]\nkind = "{kind}"\n')
    with pytest.raises(ConfigError) as failed:
        platforms.check_extras(loaded.upstream_configs())
    assert f"chatgate[{extra}]" in str(failed.value) and "make run CLOUDS=1" in str(failed.value)
    platforms.check_extras(settings(tmp_path, "").upstream_configs())  # nothing to check without clouds
