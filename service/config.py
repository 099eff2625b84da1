"""Settings, read once: flags beat environment, environment beats the TOML file, the file beats defaults."""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

# TOML table -> keys it may hold; each key names a Settings field.
FILE_KEYS: dict[str, dict[str, str]] = {
    "server": {
        "host": "host",
        "http_port": "http_port",
        "grpc_port": "grpc_port",
        "reflection": "reflection",
        "allow_unauthenticated": "allow_unauthenticated",
        "shutdown_grace": "shutdown_grace",
        "log_level": "log_level",
        "workers": "workers",
    },
    "auth": {"api_keys": "api_keys"},
    "upstream": {
        "base_url": "anthropic_base_url",
        "api_key": "anthropic_api_key",
        "read_timeout": "read_timeout",
        "client": "upstream_client",
    },
    "limits": {"max_body_bytes": "max_body_bytes", "max_choices": "max_choices"},
    "compatibility": {"mode": "compatibility"},
    "catalog": {"replace_defaults": "replace_default_models"},
}
ENV_KEYS = {
    "CHATGATE_HOST": "host",
    "CHATGATE_HTTP_PORT": "http_port",
    "CHATGATE_GRPC_PORT": "grpc_port",
    "CHATGATE_API_KEYS": "api_keys",
    "CHATGATE_LOG_LEVEL": "log_level",
    "CHATGATE_COMPATIBILITY": "compatibility",
    "CHATGATE_UPSTREAM_CLIENT": "upstream_client",
    "CHATGATE_WORKERS": "workers",
    "ANTHROPIC_API_KEY": "anthropic_api_key",
    "ANTHROPIC_BASE_URL": "anthropic_base_url",
}


class ConfigError(ValueError):
    """A setting is missing, malformed or unsafe; the message says which."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    http_port: int = 8080
    grpc_port: int = 50051
    api_keys: tuple[str, ...] = ()
    allow_unauthenticated: bool = False
    reflection: bool = True
    anthropic_api_key: str = field(default="", repr=False)
    anthropic_base_url: str = "https://api.anthropic.com"
    compatibility: str = "lenient"
    max_choices: int = 8
    max_body_bytes: int = 8 * 1024 * 1024
    read_timeout: float = 600.0
    upstream_client: str = "aiohttp"
    shutdown_grace: float = 20.0
    workers: int = 1
    log_level: str = "info"
    models: tuple[Mapping[str, Any], ...] = ()
    replace_default_models: bool = False

    @property
    def uses_simulator(self) -> bool:
        return not self.anthropic_api_key

    def check(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"workers must be at least 1, not {self.workers}")
        if self.workers > 1 and (self.http_port == 0 or self.grpc_port == 0):
            raise ConfigError("several workers need fixed ports to share; port 0 picks one per worker")
        if self.upstream_client not in ("aiohttp", "httpx"):
            raise ConfigError(f"upstream client must be `aiohttp` or `httpx`, not {self.upstream_client!r}")
        if self.compatibility not in ("lenient", "strict"):
            raise ConfigError(f"compatibility must be `lenient` or `strict`, not {self.compatibility!r}")
        if not self.api_keys and not self.allow_unauthenticated and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to listen on {self.host} without API keys: set CHATGATE_API_KEYS, "
                "or pass --allow-unauthenticated if something in front of the gateway authenticates"
            )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _coerce(name: str, value: Any) -> Any:
    kinds = {f.name: f.type for f in fields(Settings)}
    kind = kinds[name]
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
        if name == "api_keys":
            items = value.split(",") if isinstance(value, str) else value
            return tuple(str(k).strip() for k in items if str(k).strip())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: cannot read {value!r} as {kind}") from exc
    return str(value)


def from_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    values: dict[str, Any] = {}
    for table, content in data.items():
        if table == "models":
            values["models"] = tuple(content)
            continue
        keys = FILE_KEYS.get(table)
        if keys is None or not isinstance(content, dict):
            raise ConfigError(f"{path}: unknown section [{table}]")
        for key, value in content.items():
            if key not in keys:
                raise ConfigError(f"{path}: unknown key `{key}` in [{table}]")
            values[keys[key]] = _coerce(keys[key], value)
    return values


def load_settings(flags: Mapping[str, Any], environ: Mapping[str, str]) -> Settings:
    """``flags`` holds only the options given on the command line (None means not given)."""
    settings = Settings()
    config = flags.get("config") or environ.get("CHATGATE_CONFIG")
    if config:
        settings = replace(settings, **from_file(Path(config)))
    env_values = {name: _coerce(name, environ[var]) for var, name in ENV_KEYS.items() if environ.get(var)}
    settings = replace(settings, **env_values)
    flag_values = {k: v for k, v in flags.items() if v is not None and k != "config"}
    settings = replace(settings, **flag_values)
    settings.check()
    return settings
