"""Settings precedence: flags beat environment, environment beats the file, the file beats defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import ConfigError, load_settings
from service.upstreams import build_catalog


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "chatgate.toml"
    path.write_text(text)
    return str(path)


def test_defaults() -> None:
    settings = load_settings({}, {})
    assert (settings.host, settings.http_port, settings.grpc_port) == ("127.0.0.1", 8080, 50051)
    assert settings.uses_simulator


def test_flags_beat_environment_beat_file(tmp_path: Path) -> None:
    config = write(tmp_path, '[server]\nhttp_port = 1000\ngrpc_port = 2000\nlog_level = "warning"\n')
    env = {"CHATGATE_CONFIG": config, "CHATGATE_HTTP_PORT": "3000"}
    settings = load_settings({"http_port": None, "grpc_port": None}, env)
    assert (settings.http_port, settings.grpc_port, settings.log_level) == (3000, 2000, "warning")
    assert load_settings({"http_port": 4000}, env).http_port == 4000


def test_keys_from_environment_and_anthropic_variables() -> None:
    settings = load_settings(
        {}, {"CHATGATE_API_KEYS": "a, b,,", "ANTHROPIC_API_KEY": "sk-ant-x", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9"}
    )
    assert settings.api_keys == ("a", "b")
    assert not settings.uses_simulator and settings.anthropic_base_url == "http://127.0.0.1:9"
    assert "sk-ant-x" not in repr(settings)


def test_refuses_a_public_address_without_keys() -> None:
    with pytest.raises(ConfigError, match="without API keys"):
        load_settings({"host": "0.0.0.0"}, {})
    assert load_settings({"host": "0.0.0.0", "allow_unauthenticated": True}, {}).host == "0.0.0.0"
    assert load_settings({"host": "0.0.0.0"}, {"CHATGATE_API_KEYS": "k"}).api_keys == ("k",)


def test_unknown_keys_in_the_file_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        load_settings({"config": write(tmp_path, "[server]\nhttp_prot = 1\n")}, {})


def test_models_in_the_file_override_and_extend_the_catalog(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        '[[models]]\nid = "claude-sonnet-4-5"\nmax_output_tokens = 1000\n\n'
        '[[models]]\nid = "house-model"\nupstream_id = "claude-haiku-4-5-20251001"\n'
        'max_output_tokens = 2000\naliases = ["cheap"]\n',
    )
    settings = load_settings({"config": config}, {})
    catalog = build_catalog(settings)
    assert catalog.resolve("claude-sonnet-4-5").max_output_tokens == 1000
    assert catalog.resolve("cheap").upstream_id == "claude-haiku-4-5-20251001"
    assert catalog.resolve("claude-3.5-haiku").id == "claude-3.5-haiku"
