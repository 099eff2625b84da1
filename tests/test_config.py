"""Settings precedence: flags beat environment, environment beats the file, the file beats defaults."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from service.app.catalog import build_catalog
from service.app.config import ConfigError, load_settings, options
from tests.support import ROOT, free_port


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
    upstream = {"ANTHROPIC_API_KEY": "sk-ant-x"}
    with pytest.raises(ConfigError, match="without API keys"):
        load_settings({"host": "0.0.0.0"}, upstream)
    assert load_settings({"host": "0.0.0.0", "allow_unauthenticated": True}, upstream).host == "0.0.0.0"
    assert load_settings({"host": "0.0.0.0"}, {**upstream, "CHATGATE_API_KEYS": "k"}).api_keys == ("k",)


@pytest.mark.parametrize("key", [None, "", "   "])
def test_fails_closed_without_an_upstream_key_off_loopback(key: str | None) -> None:
    env = {"CHATGATE_API_KEYS": "k"} | ({"ANTHROPIC_API_KEY": key} if key is not None else {})
    with pytest.raises(ConfigError, match="no upstream key"):
        load_settings({"host": "0.0.0.0"}, env)
    asked = load_settings({"host": "0.0.0.0"}, {**env, "CHATGATE_SIMULATOR": "on"})
    assert asked.uses_simulator  # only when the operator asks for it
    assert load_settings({}, env).uses_simulator  # loopback: the embedded default
    with pytest.raises(ConfigError, match="no upstream key"):
        load_settings({}, {**env, "CHATGATE_SIMULATOR": "off"})


def test_several_default_upstream_keys() -> None:
    settings = load_settings({}, {"ANTHROPIC_API_KEY": "a", "ANTHROPIC_API_KEYS": "b, a ,c"})
    assert settings.default_upstream().api_keys == ("a", "b", "c") and not settings.uses_simulator


def test_unknown_keys_in_the_file_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        load_settings({"config": write(tmp_path, "[server]\nhttp_prot = 1\n")}, {})


def test_models_in_the_file_override_and_extend_the_catalog(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        '[[models]]\nid = "claude-haiku-4-5"\nmax_output_tokens = 1000\n\n'
        '[[models]]\nid = "house-model"\nupstream_id = "claude-haiku-4-5-20251001"\n'
        'max_output_tokens = 2000\naliases = ["cheap"]\n',
    )
    settings = load_settings({"config": config}, {})
    catalog = build_catalog(settings)
    assert catalog.resolve("claude-haiku-4-5").max_output_tokens == 1000
    assert catalog.resolve("cheap").upstream_id == "claude-haiku-4-5-20251001"
    assert catalog.resolve("claude-3.5-haiku").id == "claude-3.5-haiku"


# --- every bad setting: one line naming it, exit status 2, never a traceback -------------------

BAD_SETTINGS = [
    (["--grpc-port", "70000"], {}, "", "--grpc-port"),
    (["--http-port", "-1"], {}, "", "--http-port"),
    ([], {"CHATGATE_GRPC_PORT": "seventy"}, "", "CHATGATE_GRPC_PORT"),
    ([], {}, "[limits]\nmax_body_bytes = -1\n", "limits.max_body_bytes"),
    ([], {"CHATGATE_MAX_BODY_BYTES": "0"}, "", "CHATGATE_MAX_BODY_BYTES"),
    ([], {}, "[limits]\nmax_choices = 0\n", "limits.max_choices"),
    (["--workers", "0"], {}, "", "--workers"),
    (["--log-level", "loud"], {}, "", "--log-level"),
    ([], {"CHATGATE_COMPATIBILITY": "loose"}, "", "CHATGATE_COMPATIBILITY"),
    ([], {"CHATGATE_UPSTREAM_CLIENT": "requests"}, "", "CHATGATE_UPSTREAM_CLIENT"),
    ([], {}, '[server]\nreflection = "maybe"\n', "server.reflection"),
    ([], {}, "[upstream]\nread_timeout = 0\n", "upstream.read_timeout"),
    ([], {"ANTHROPIC_BASE_URL": "api.anthropic.com"}, "", "ANTHROPIC_BASE_URL"),
    ([], {}, '[[models]]\nid = "new-model"\n', "models[0] needs `max_output_tokens`"),
    ([], {}, '[[models]]\nid = "m"\nmax_output_tokens = "lots"\n', "models[0].max_output_tokens"),
    ([], {}, '[[models]]\nid = "claude-haiku-4-5"\nthinking = "deep"\n', "thinking must be one of"),
    ([], {}, '[[models]]\nid = "m"\nmax_output_tokens = 5\nprovider = "nowhere"\n', "models[0].provider"),
    ([], {}, '[[models]]\nid = "m"\nmax_output_tokens = 5\ncolour = "red"\n', "unknown key `colour`"),
    ([], {"CHATGATE_MODELS": "not json"}, "", "CHATGATE_MODELS"),
    ([], {}, '[upstreams.backup]\nkind = "anthropic"\n', "upstreams.backup.api_key is required"),
    ([], {}, '[upstreams.backup]\nkind = "gemini"\napi_key = "k"\n', "upstreams.backup.kind"),
    ([], {}, "[server]\nhttp_prot = 1\n", "unknown key `http_prot`"),
    ([], {}, "[nonsense]\na = 1\n", "unknown section [nonsense]"),
    ([], {}, "not toml at all [\n", "cannot read config file"),
    (["--host", "0.0.0.0"], {"CHATGATE_API_KEYS": "k1"}, "", "no upstream key"),
    (["--host", "0.0.0.0"], {"CHATGATE_API_KEYS": "k1", "ANTHROPIC_API_KEY": " "}, "", "no upstream key"),
    ([], {"CHATGATE_SIMULATOR": "maybe"}, "", "CHATGATE_SIMULATOR"),
    ([], {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "sometimes"}, "", "OTEL_TRACES_SAMPLER"),
    (
        [],
        {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER_ARG": "2"},
        "",
        "OTEL_TRACES_SAMPLER_ARG",
    ),
    (
        [],
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
        "",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ),
    ([], {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "", "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ([], {"OTEL_TRACES_EXPORTER": "zipkin"}, "", "OTEL_TRACES_EXPORTER"),
    ([], {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_BSP_SCHEDULE_DELAY": "soon"}, "", "OTEL_BSP_SCHEDULE_DELAY"),
    (
        [],
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_HEADERS": "sk-ant-secret-in-header"},
        "",
        "OTEL_EXPORTER_OTLP_HEADERS",
    ),
    (
        [],
        {"CHATGATE_MODELS": '[{"id": "a", "max_output_tokens": 5, "fallback": ["nope"]}]'},
        "",
        "falls back to 'nope'",
    ),
    # A bad value in a secret setting is named, never shown.
    ([], {}, '[upstream]\napi_keys = ["sk-ant-secret-in-a-list", 5]\n', "upstream.api_keys"),
    ([], {}, '[auth]\napi_keys = ["sk-ant-secret-gateway-key", 5]\n', "auth.api_keys"),
    ([], {}, '[upstreams.backup]\napi_keys = ["sk-ant-secret-backup", 5]\n', "upstreams.backup.api_keys"),
    ([], {"CHATGATE_LEDGER_URL": "mysql://user:sk-ant-secret-password@db/ledger"}, "", "ledger.url"),
]


@pytest.mark.parametrize(("args", "env", "config", "named"), BAD_SETTINGS)
def test_a_bad_setting_is_one_line_and_exit_status_2(
    tmp_path: Path, args: list[str], env: dict[str, str], config: str, named: str
) -> None:
    if config:
        args = [*args, "--config", write(tmp_path, config)]
    result = run_cli(["serve", "--http-port", "0", "--grpc-port", "0", *args], env)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("chatgate: ") and named in lines[0], result.stderr
    assert "Traceback" not in result.stderr and "serving from the built-in SIMULATOR" not in result.stderr
    assert "sk-ant-secret" not in result.stderr


def run_cli(args: list[str], env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CHATGATE_"))}
    clean["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "gen")])
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_worker_that_fails_at_start_stops_the_supervisor() -> None:
    """Workers share ports with SO_REUSEPORT; a port held by another socket makes every worker's bind fail."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        result = run_cli(["serve", "--workers", "2", "--http-port", str(taken), "--grpc-port", str(free_port())], {})
    assert result.returncode == 1, result.stderr
    assert "failed to start" in result.stderr


def test_every_file_setting_has_an_environment_variable_and_help() -> None:
    for name, opt, _ in options():
        assert opt.help, name
        if opt.file and name != "upstreams":  # upstreams: CHATGATE_UPSTREAMS__NAME__KEY per key
            assert opt.env, f"{name} ({opt.file}) has no environment variable"


def test_named_upstreams_from_file_and_environment(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        '[upstreams.backup]\nkind = "anthropic"\nbase_url = "http://127.0.0.1:9"\nread_timeout = 30\n\n'
        '[[models]]\nid = "backup-sonnet"\nupstream_id = "claude-haiku-4-5"\nmax_output_tokens = 64000\n'
        'provider = "backup"\n',
    )
    env = {"CHATGATE_UPSTREAMS__BACKUP__API_KEY": "sk-ant-backup"}
    settings = load_settings({"config": config}, env)
    default, backup = settings.upstream_configs()
    assert (default.name, backup.name, backup.base_url, backup.read_timeout) == (
        "anthropic",
        "backup",
        "http://127.0.0.1:9",
        30.0,
    )
    assert backup.api_keys == ("sk-ant-backup",) and "sk-ant-backup" not in repr(backup)
    assert build_catalog(settings).resolve("backup-sonnet").provider == "backup"


def test_the_settings_table_is_generated_from_the_settings() -> None:
    import subprocess
    import sys

    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "settings_table.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout


def test_the_configuration_page_lists_every_setting() -> None:
    page = (ROOT / "docs/configuration.md").read_text()
    for name, opt, _ in options():
        for key in (opt.env, opt.file, opt.flag):
            assert key is None or f"`{key}`" in page, f"docs/configuration.md does not list {key} ({name})"


def test_the_readme_stays_a_front_door() -> None:
    """The README is what it is, the two commands, calls and first settings; the rest is in docs/."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    linked = set(re.findall(r"\(docs/([\w-]+\.md)\)", readme))
    assert {path.name for path in (ROOT / "docs").glob("*.md")} <= linked, "every page in docs/ is linked"
    for name in linked:
        assert (ROOT / "docs" / name).is_file(), f"README links docs/{name}, which does not exist"


def test_every_configured_upstream_becomes_a_provider(tmp_path: Path) -> None:
    import asyncio

    from service.app.gateway import Upstream, build_chat

    config = write(
        tmp_path,
        '[upstreams.backup]\nkind = "anthropic"\napi_key = "sk-ant-b"\n\n'
        '[[models]]\nid = "b"\nupstream_id = "claude-haiku-4-5"\nmax_output_tokens = 100\nprovider = "backup"\n',
    )
    settings = load_settings({"config": config}, {"ANTHROPIC_API_KEY": "sk-ant-a"})
    chat = build_chat(settings, build_catalog(settings), Upstream(settings.default_upstream()))
    assert sorted(chat.providers) == ["anthropic", "backup"]
    assert chat.get_model("b").provider == "backup" and chat.get_model("claude-haiku-4-5").provider == "anthropic"
    asyncio.run(chat.aclose())


@pytest.mark.parametrize("taken", ["http", "grpc"])
def test_a_port_in_use_is_one_line_naming_it(taken: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        ports = {"http": port, "grpc": free_port()} if taken == "http" else {"http": free_port(), "grpc": port}
        result = run_cli(["serve", "--http-port", str(ports["http"]), "--grpc-port", str(ports["grpc"])], {})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert lines[-1].startswith("chatgate: port ") and f"port {port} is in use" in lines[-1]
    assert "Traceback" not in result.stderr


def test_a_second_instance_on_the_same_ports_fails(tmp_path: Path) -> None:
    from tests.support import start_gateway

    first = start_gateway(tmp_path)
    try:
        for ports in ((first.http_port, free_port()), (free_port(), first.grpc_port)):
            result = run_cli(["serve", "--http-port", str(ports[0]), "--grpc-port", str(ports[1])], {})
            assert result.returncode == 2 and "is in use" in result.stderr, result.stderr
    finally:
        first.stop()
