"""Settings, each declared once: its environment variable, file key, flag, type, default and check.

Precedence: flags beat environment, environment beats the TOML file, the file
beats defaults. Every value is checked when it is read; a bad one is a
``ConfigError`` whose one-line message names the setting, where the value came
from and what is accepted (the CLI prints it and exits with status 2).

The table is the ``Settings`` dataclass itself: each field's ``option(...)``
says where it may come from. ``FILE_KEYS``, ``ENV_KEYS`` and the command-line
flags are derived from it, so nothing is declared twice.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

UPSTREAM_KINDS = ("anthropic", "bedrock", "vertex")
DEFAULT_UPSTREAM = "anthropic"
UPSTREAM_ENV_PREFIX = "CHATGATE_UPSTREAMS__"


class ConfigError(ValueError):
    """A setting is missing, malformed or unsafe; the message says which."""


Parse = Callable[[Any], Any]  # raises ValueError with what is accepted


@dataclass(frozen=True, slots=True)
class Option:
    env: str | None
    file: str | None  # "table.key"
    flag: str | None
    parse: Parse
    help: str
    # For on/off flags: the value the bare flag sets (they take no argument).
    flag_value: bool | None = None
    # A key, a password or a URL that may hold one: its value never appears in an error.
    secret: bool = False


def option(
    default: Any,
    parse: Parse,
    help: str,
    *,
    env: str | None = None,
    file: str | None = None,
    flag: str | None = None,
    flag_value: bool | None = None,
    secret: bool = False,
) -> Any:
    meta = {"option": Option(env, file, flag, parse, help, flag_value, secret)}
    if isinstance(default, dict):  # mutable: each Settings gets its own
        return field(default_factory=dict, repr=not secret, metadata=meta)
    return field(default=default, repr=not secret, metadata=meta)


# --- value parsers: each returns the typed value or raises ValueError("accepted ...") ---------


def integer(low: int, high: int | None = None) -> Parse:
    def parse(value: Any) -> int:
        try:
            number = int(value) if not isinstance(value, bool | float) else None
        except (TypeError, ValueError):
            number = None
        if number is None or number < low or (high is not None and number > high):
            raise ValueError(f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}")
        return number

    return parse


def number(low: float, *, inclusive: bool = True) -> Parse:
    def parse(value: Any) -> float:
        try:
            result = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            result = None
        if result is None or math.isnan(result) or result < low or (not inclusive and result == low):
            raise ValueError(f"a number {'>=' if inclusive else '>'} {low:g} (seconds)")
        return result

    return parse


def share(value: Any) -> float:
    """A fraction strictly between 0 and 1."""
    try:
        result = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        result = math.nan
    if not 0 < result < 1:  # NaN fails too
        raise ValueError("a number between 0 and 1 (exclusive)")
    return result


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("true or false (also 1/0, yes/no, on/off)")


def choice(*values: str) -> Parse:
    def parse(value: Any) -> str:
        text = str(value).strip().lower() if isinstance(value, str) else None
        if text not in values:
            raise ValueError("one of " + ", ".join(values))
        return text

    return parse


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a string")
    return value


def host(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a host name or IP address")
    return value.strip()


def url(value: Any) -> str:
    if not isinstance(value, str) or not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("an http:// or https:// URL")
    return value.rstrip("/")


def key_list(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(k, str) for k in items):
        raise ValueError("a comma-separated string or a list of strings")
    return tuple(k.strip() for k in items if k.strip())


def tables(what: str, toml: str) -> Parse:
    """An array of tables: `[[toml]]` in the file, a JSON array of objects in the environment."""

    def parse(value: Any) -> tuple[Mapping[str, Any], ...]:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ValueError(f"a JSON array of {what} objects") from None
        if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
            raise ValueError(f"a list of {what} tables ([[{toml}]])")
        return tuple(value)

    return parse


key_tables = tables("key", "auth.keys")
model_tables = tables("model", "models")


# --- named upstreams ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """One upstream API the gateway calls: `[upstreams.NAME]`, or the default one from `[upstream]`."""

    name: str
    kind: str
    base_url: str
    api_keys: tuple[str, ...] = field(repr=False)
    connect_timeout: float
    read_timeout: float
    pool_timeout: float
    first_byte_timeout: float
    breaker_failures: int
    breaker_cooldown: float
    breaker_window: float
    breaker_ratio: float
    client: str
    max_connections: int
    trust_env: bool = False
    anthropic_version: str = "2023-06-01"
    # Cloud routes (docs/bedrock.md, docs/vertex.md); empty: the platform's standard configuration.
    region: str = ""  # Bedrock's AWS region, Vertex AI's location (`global` included)
    project: str = ""  # Vertex AI's Google Cloud project
    endpoint: str = "messages"  # Bedrock: `messages` (bedrock-mantle) or `invoke` (bedrock-runtime)
    inference_profile: str = ""  # Bedrock: the prefix of cross-region profile ids (`us`, `eu`, `global`)
    credentials_file: str = ""  # Vertex AI: a service-account key file instead of ADC
    betas: tuple[str, ...] | None = None  # the betas the platform accepts (None: the built-in list)
    lacking: tuple[str, ...] | None = None  # Messages fields the platform does not serve (None: built-in)
    price_factor: float = 0.0  # token prices on this upstream against the list prices (0: the kind's default)
    token_margin: float = 300.0  # Vertex AI: seconds before expiry that an access token is renewed
    # Set by the composition root for the embedded simulator: a Vertex service account's key info,
    # Bedrock's access key and secret.
    service_account: Mapping[str, Any] | None = field(default=None, repr=False)
    aws_keys: tuple[str, str] | None = field(default=None, repr=False)


UPSTREAM_KEYS: dict[str, Parse] = {
    "kind": choice(*UPSTREAM_KINDS),
    "base_url": url,
    "api_key": text,
    "api_keys": key_list,
    "connect_timeout": number(0, inclusive=False),
    "read_timeout": number(0, inclusive=False),
    "pool_timeout": number(0, inclusive=False),
    "first_byte_timeout": number(0, inclusive=False),
    "breaker_failures": integer(1),
    "breaker_cooldown": number(0, inclusive=False),
    "breaker_window": number(0, inclusive=False),
    "breaker_ratio": share,
    "client": choice("aiohttp", "httpx"),
    "max_connections": integer(1),
    "trust_env": boolean,
    "anthropic_version": choice("2023-06-01", "2026-10-21"),
    "region": text,
    "project": text,
    "endpoint": choice("messages", "invoke"),
    "inference_profile": text,
    "credentials_file": text,
    "betas": key_list,
    "lacking": key_list,
    "price_factor": number(0, inclusive=False),
    "token_margin": number(0),
}
UPSTREAM_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


def upstream_tables(value: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict) or not all(isinstance(t, dict) for t in value.values()):
        raise ValueError("tables [upstreams.NAME]")
    return {str(name): dict(table) for name, table in value.items()}


# --- the table --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = option(
        "127.0.0.1", host, "listen address for both protocols", env="CHATGATE_HOST", file="server.host", flag="--host"
    )
    http_port: int = option(
        8080,
        integer(0, 65535),
        "HTTP port (0 picks a free one)",
        env="CHATGATE_HTTP_PORT",
        file="server.http_port",
        flag="--http-port",
    )
    grpc_port: int = option(
        50051,
        integer(0, 65535),
        "gRPC port (0 picks a free one)",
        env="CHATGATE_GRPC_PORT",
        file="server.grpc_port",
        flag="--grpc-port",
    )
    api_keys: tuple[str, ...] = option(
        (),
        key_list,
        "gateway keys clients must send (comma-separated); none means authentication is off",
        env="CHATGATE_API_KEYS",
        file="auth.api_keys",
        secret=True,
    )
    auth_keys: tuple[Mapping[str, Any], ...] = option(
        (),
        key_tables,
        "named gateway keys ([[auth.keys]]: name, hash, models, expires; env: a JSON array)",
        env="CHATGATE_AUTH_KEYS",
        file="auth.keys",
    )
    keys_file: str = option(
        "",
        text,
        "a TOML file of named gateway keys ([[keys]], as [[auth.keys]]), reloaded when it changes or on SIGHUP",
        env="CHATGATE_KEYS_FILE",
        file="auth.keys_file",
    )
    keys_reload_interval: float = option(
        5.0,
        number(0, inclusive=False),
        "seconds between checks of the key files for changes",
        env="CHATGATE_KEYS_RELOAD_INTERVAL",
        file="auth.reload_interval",
    )
    allow_unauthenticated: bool = option(
        False,
        boolean,
        "allow a non-loopback --host without gateway keys",
        env="CHATGATE_ALLOW_UNAUTHENTICATED",
        file="server.allow_unauthenticated",
        flag="--allow-unauthenticated",
        flag_value=True,
    )
    admin_port: int = option(
        0,
        integer(0, 65535),
        "a separate port for /metrics, /livez and /readyz (0: none; /metrics is then on the HTTP port)",
        env="CHATGATE_ADMIN_PORT",
        file="server.admin_port",
        flag="--admin-port",
    )
    reflection: bool = option(
        True,
        boolean,
        "gRPC server reflection",
        env="CHATGATE_REFLECTION",
        file="server.reflection",
        flag="--no-reflection",
        flag_value=False,
    )
    anthropic_api_key: str = option(
        "",
        text,
        "the default upstream's Anthropic key; none on a loopback host means the built-in simulator",
        env="ANTHROPIC_API_KEY",
        file="upstream.api_key",
        secret=True,
    )
    anthropic_api_keys: tuple[str, ...] = option(
        (),
        key_list,
        "more keys for the default upstream (comma-separated), used in turn; a key answered 429 rests, "
        "one answered 401/403 leaves the rotation",
        env="ANTHROPIC_API_KEYS",
        file="upstream.api_keys",
        secret=True,
    )
    simulator: str = option(
        "auto",
        choice("auto", "on", "off"),
        "the built-in simulator: auto serves it only with no key on a loopback host; on serves it anywhere",
        env="CHATGATE_SIMULATOR",
        file="upstream.simulator",
    )
    anthropic_base_url: str = option(
        "https://api.anthropic.com",
        url,
        "the default upstream's base URL",
        env="ANTHROPIC_BASE_URL",
        file="upstream.base_url",
    )
    trust_env: bool = option(
        False,
        boolean,
        "upstream calls honour HTTPS_PROXY, HTTP_PROXY and NO_PROXY",
        env="CHATGATE_UPSTREAM_TRUST_ENV",
        file="upstream.trust_env",
    )
    anthropic_version: str = option(
        "2023-06-01",
        choice("2023-06-01", "2026-10-21"),
        "the anthropic-version sent with translated requests (and native ones that name none); "
        "2026-10-21 drops temperature, top_p and top_k",
        env="CHATGATE_ANTHROPIC_VERSION",
        file="upstream.anthropic_version",
    )
    upstream_client: str = option(
        "aiohttp",
        choice("aiohttp", "httpx"),
        "HTTP client for upstream calls",
        env="CHATGATE_UPSTREAM_CLIENT",
        file="upstream.client",
    )
    connect_timeout: float = option(
        10.0,
        number(0, inclusive=False),
        "seconds allowed to connect to the upstream",
        env="CHATGATE_UPSTREAM_CONNECT_TIMEOUT",
        file="upstream.connect_timeout",
    )
    read_timeout: float = option(
        600.0,
        number(0, inclusive=False),
        "longest silence allowed from the upstream, seconds",
        env="CHATGATE_UPSTREAM_READ_TIMEOUT",
        file="upstream.read_timeout",
    )
    pool_timeout: float = option(
        10.0,
        number(0, inclusive=False),
        "seconds a request may wait for a free upstream connection",
        env="CHATGATE_UPSTREAM_POOL_TIMEOUT",
        file="upstream.pool_timeout",
    )
    max_connections: int = option(
        1000,
        integer(1),
        "upstream connections per process",
        env="CHATGATE_UPSTREAM_MAX_CONNECTIONS",
        file="upstream.max_connections",
    )
    first_byte_timeout: float = option(
        60.0,
        number(0, inclusive=False),
        "streams: seconds until the upstream's first event",
        env="CHATGATE_UPSTREAM_FIRST_BYTE_TIMEOUT",
        file="upstream.first_byte_timeout",
    )
    breaker_failures: int = option(
        5,
        integer(1),
        "failed requests within the breaker window that may open a key's breaker (the minimum volume)",
        env="CHATGATE_BREAKER_FAILURES",
        file="upstream.breaker_failures",
    )
    breaker_cooldown: float = option(
        30.0,
        number(0, inclusive=False),
        "seconds an open breaker fails fast before one probe call (the last key: one call every 0.25 s)",
        env="CHATGATE_BREAKER_COOLDOWN",
        file="upstream.breaker_cooldown",
    )
    breaker_window: float = option(
        30.0,
        number(0, inclusive=False),
        "seconds of history a key's breaker judges the failure rate over",
        env="CHATGATE_BREAKER_WINDOW",
        file="upstream.breaker_window",
    )
    breaker_ratio: float = option(
        0.5,
        share,
        "share of a key's requests in the window that must have failed (from more than one caller) to open it",
        env="CHATGATE_BREAKER_RATIO",
        file="upstream.breaker_ratio",
    )
    retry_attempts: int = option(
        3,
        integer(1, 10),
        "attempts per model before the first byte (1 turns retries off)",
        env="CHATGATE_RETRY_ATTEMPTS",
        file="retry.attempts",
    )
    retry_base_delay: float = option(
        0.25,
        number(0),
        "seconds; full-jitter exponential backoff starts here",
        env="CHATGATE_RETRY_BASE_DELAY",
        file="retry.base_delay",
    )
    retry_max_delay: float = option(
        4.0,
        number(0),
        "longest backoff between attempts, seconds",
        env="CHATGATE_RETRY_MAX_DELAY",
        file="retry.max_delay",
    )
    retry_max_wait: float = option(
        10.0,
        number(0),
        "longest upstream retry-after the gateway waits out itself; longer ones go to the client",
        env="CHATGATE_RETRY_MAX_WAIT",
        file="retry.max_wait",
    )
    upstreams: dict[str, dict[str, Any]] = option(  # noqa: RUF009 (a field() with a default factory)
        {},
        upstream_tables,
        "more upstreams by name ([upstreams.NAME]); models choose one with `provider`",
        file="upstreams",
    )
    compatibility: str = option(
        "lenient",
        choice("lenient", "strict"),
        "what to do with fields the upstream cannot honour exactly",
        env="CHATGATE_COMPATIBILITY",
        file="compatibility.mode",
    )
    max_choices: int = option(
        8, integer(1, 128), "the largest `n` served by fan-out", env="CHATGATE_MAX_CHOICES", file="limits.max_choices"
    )
    max_in_flight: int = option(
        1000,
        integer(0),
        "chat requests in flight per process before new ones get 503 at once (0: no limit)",
        env="CHATGATE_MAX_IN_FLIGHT",
        file="limits.max_in_flight",
    )
    caller_rpm: int = option(
        0,
        integer(0),
        "requests per minute per caller (a key's own `rpm` wins; 0: no limit)",
        env="CHATGATE_LIMIT_RPM",
        file="limits.rpm",
    )
    caller_tpm: int = option(
        0,
        integer(0),
        "tokens (input and output) per minute per caller (a key's own `tpm` wins; 0: no limit)",
        env="CHATGATE_LIMIT_TPM",
        file="limits.tpm",
    )
    caller_streams: int = option(
        0,
        integer(0),
        "concurrent streams per caller (a key's own `streams` wins; 0: no limit)",
        env="CHATGATE_LIMIT_STREAMS",
        file="limits.streams",
    )
    caller_budget_usd: float = option(
        0.0,
        number(0),
        "spend per caller and budget period in US dollars, from the catalog's prices (0: no budget)",
        env="CHATGATE_LIMIT_BUDGET_USD",
        file="limits.budget_usd",
    )
    caller_budget_period: str = option(
        "day",
        choice("day", "month"),
        "the period a spend budget covers (UTC)",
        env="CHATGATE_LIMIT_BUDGET_PERIOD",
        file="limits.budget_period",
    )
    limits_redis_url: str = option(
        "",
        text,
        "redis://host:port/db: caller limits shared by every replica (empty: counted in this process)",
        env="CHATGATE_LIMITS_REDIS_URL",
        file="limits.redis_url",
        secret=True,
    )
    limits_lease_ttl: float = option(
        30.0,
        number(1),
        "seconds a stream's lease lives in Redis without renewal: how soon a dead replica's streams are freed",
        env="CHATGATE_LIMITS_LEASE_TTL",
        file="limits.lease_ttl",
    )
    limits_redis_failure: str = option(
        "allow",
        choice("allow", "refuse"),
        "when Redis cannot be reached: allow the request (logged, counted) or refuse it (503)",
        env="CHATGATE_LIMITS_REDIS_FAILURE",
        file="limits.redis_failure",
    )
    request_timeout: float = option(
        3600.0,
        number(0, inclusive=False),
        "longest a whole request may take, streams included, seconds",
        env="CHATGATE_REQUEST_TIMEOUT",
        file="limits.request_timeout",
    )
    max_body_bytes: int = option(
        8 * 1024 * 1024,
        integer(1024),
        "largest HTTP body and gRPC message, bytes",
        env="CHATGATE_MAX_BODY_BYTES",
        file="limits.max_body_bytes",
    )
    shutdown_grace: float = option(
        20.0,
        number(0),
        "seconds in-flight requests get after SIGTERM",
        env="CHATGATE_SHUTDOWN_GRACE",
        file="server.shutdown_grace",
    )
    replicated: bool = option(
        False,
        boolean,
        "this process is one of several replicas: refuse to start with per-process state (a SQLite ledger "
        "or response store, caller limits without Redis), which would split between them",
        env="CHATGATE_REPLICATED",
        file="server.replicated",
    )
    drain_delay: float = option(
        0.0,
        number(0),
        "seconds after SIGTERM that the listeners stay open, unready, answering 503 (for load balancers to notice)",
        env="CHATGATE_DRAIN_DELAY",
        file="server.drain_delay",
    )
    heartbeat: float = option(
        15.0,
        number(0),
        "seconds of silence after which a stream gets a keep-alive: an SSE comment, an empty gRPC chunk (0: off)",
        env="CHATGATE_HEARTBEAT",
        file="server.heartbeat",
    )
    workers: int = option(
        1,
        integer(1, 256),
        "processes sharing both ports",
        env="CHATGATE_WORKERS",
        file="server.workers",
        flag="--workers",
    )
    log_level: str = option(
        "info",
        choice("debug", "info", "warning", "error"),
        "log level",
        env="CHATGATE_LOG_LEVEL",
        file="server.log_level",
        flag="--log-level",
    )
    log_format: str = option(
        "auto",
        choice("auto", "json", "text"),
        "log lines as JSON or readable text; auto: text on a terminal, JSON otherwise",
        env="CHATGATE_LOG_FORMAT",
        file="log.format",
        flag="--log-format",
    )
    access_log: bool = option(
        True,
        boolean,
        "one access line per request (chatgate.access)",
        env="CHATGATE_ACCESS_LOG",
        file="log.access",
    )
    log_content: bool = option(
        False,
        boolean,
        "put request bodies (message content) in the access log",
        env="CHATGATE_LOG_CONTENT",
        file="log.content",
    )
    config_file: str = option("", text, "the TOML file the settings came from (--config, CHATGATE_CONFIG)")
    models: tuple[Mapping[str, Any], ...] = option(
        (),
        model_tables,
        "model entries that override or extend the catalog ([[models]]; env: a JSON array)",
        env="CHATGATE_MODELS",
        file="models",
    )
    routes: tuple[str, ...] = option(
        (),
        key_list,
        "the upstreams that serve every model, in order, failing over before the first byte "
        "(e.g. anthropic,bedrock,vertex; empty: each model's own `provider`)",
        env="CHATGATE_ROUTES",
        file="catalog.routes",
    )
    models_refresh_interval: float = option(
        21600.0,
        number(0),
        "seconds between reads of the upstream's Models API (limits, capabilities); 0: never, the built-in table only",
        env="CHATGATE_CATALOG_REFRESH_INTERVAL",
        file="catalog.refresh_interval",
    )
    ledger_url: str = option(
        "sqlite:chatgate-ledger.sqlite3",
        text,
        "where the usage ledger goes: sqlite:PATH (one machine), postgresql://... (replicas), or off",
        env="CHATGATE_LEDGER_URL",
        file="ledger.url",
        secret=True,  # a PostgreSQL URL may hold a password
    )
    ledger_spill: str = option(
        "chatgate-ledger.spill.jsonl",
        text,
        "the file the ledger spills to while its store is down (written into the store when it returns)",
        env="CHATGATE_LEDGER_SPILL",
        file="ledger.spill",
    )
    responses_url: str = option(
        "",
        text,
        "where stored responses (/v1/responses with store: true) go: sqlite:PATH, postgresql://..., or off; "
        "empty: the ledger's store",
        env="CHATGATE_RESPONSES_URL",
        file="responses.url",
        secret=True,
    )
    responses_retention: float = option(
        30 * 86400.0,
        number(60),
        "seconds a stored response can be read and continued (OpenAI keeps them 30 days)",
        env="CHATGATE_RESPONSES_RETENTION",
        file="responses.retention",
    )
    admin_key: str = option(
        "",
        text,
        "the key that reads /admin/usage (Authorization: Bearer); empty: the endpoint refuses everyone",
        env="CHATGATE_ADMIN_KEY",
        file="admin.key",
        secret=True,
    )
    replace_default_models: bool = option(
        False,
        boolean,
        "serve only the models listed in [[models]]",
        env="CHATGATE_CATALOG_REPLACE_DEFAULTS",
        file="catalog.replace_defaults",
    )

    @property
    def default_keys(self) -> tuple[str, ...]:
        """The default upstream's keys; an empty key counts as none."""
        keys = (self.anthropic_api_key.strip(), *self.anthropic_api_keys)
        return tuple(dict.fromkeys(k for k in keys if k))

    @property
    def has_keys(self) -> bool:
        """Gateway keys are configured somewhere (the keys themselves are read by `service.app.callers`)."""
        return bool(self.api_keys or self.auth_keys or self.keys_file)

    @property
    def uses_simulator(self) -> bool:
        """The simulator answers when asked for, or by default with no key on a loopback host."""
        return self.simulator == "on" or (self.simulator == "auto" and not self.default_keys)

    @property
    def anthropic_routed(self) -> bool:
        """Whether the default upstream serves models (`catalog.routes` may send them all to clouds)."""
        return not self.routes or DEFAULT_UPSTREAM in self.routes

    def default_upstream(self) -> UpstreamConfig:
        return UpstreamConfig(
            name=DEFAULT_UPSTREAM,
            kind="anthropic",
            base_url=self.anthropic_base_url,
            api_keys=self.default_keys,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            pool_timeout=self.pool_timeout,
            first_byte_timeout=self.first_byte_timeout,
            breaker_failures=self.breaker_failures,
            breaker_cooldown=self.breaker_cooldown,
            breaker_window=self.breaker_window,
            breaker_ratio=self.breaker_ratio,
            client=self.upstream_client,
            max_connections=self.max_connections,
            trust_env=self.trust_env,
            anthropic_version=self.anthropic_version,
        )

    def check_shared_state(self) -> None:
        """A replica must keep its state where the others see it."""
        per_process = []
        if self.ledger_url.startswith("sqlite:"):
            per_process.append("ledger.url is SQLite (one file per pod)")
        responses = self.responses_url or self.ledger_url
        if responses.startswith("sqlite:"):
            per_process.append("responses.url is SQLite (a response stored on one pod is unknown to the others)")
        if not self.limits_redis_url:
            per_process.append("limits.redis_url is empty (each pod would count a caller's limits alone)")
        if per_process:
            raise ConfigError(
                "server.replicated is on but " + "; ".join(per_process) + ": use postgresql://... and redis://..."
            )

    def upstream_configs(self) -> list[UpstreamConfig]:
        """The default upstream, then every `[upstreams.NAME]`, each checked and complete."""
        default = self.default_upstream()
        configs = [default]
        for name, table in self.upstreams.items():
            where = f"upstreams.{name}"
            if name == DEFAULT_UPSTREAM:
                raise ConfigError(f"{where}: the name {name!r} is the default upstream's; configure it in [upstream]")
            if not UPSTREAM_NAME.match(name):
                raise ConfigError(f"{where}: a name is lower-case letters, digits, '-' and '_', starting with a letter")
            values: dict[str, Any] = {}
            for key, value in table.items():
                parse = UPSTREAM_KEYS.get(key)
                if parse is None:
                    raise ConfigError(f"{where}: unknown key `{key}` (known: {', '.join(UPSTREAM_KEYS)})")
                values[key] = _parse(parse, value, f"{where}.{key}", secret=key in SECRET_UPSTREAM_KEYS)
            keys = tuple(k for k in (values.pop("api_key", "").strip(), *values.pop("api_keys", ())) if k)
            kind = values.get("kind", default.kind)
            if not keys and kind == "anthropic":
                raise ConfigError(f"{where}.api_key is required (or {upstream_env(name, 'api_key')})")
            if kind != "anthropic" and "base_url" not in values:
                values["base_url"] = ""  # the platform's own endpoint for the region
            fields_ = set(UpstreamConfig.__dataclass_fields__) - {"name", "api_keys"}
            inherited = {k: getattr(default, k) for k in fields_ if k not in values}
            configs.append(UpstreamConfig(name=name, api_keys=keys, **{**inherited, **values}))
        return configs

    def check_routes(self, names: set[str]) -> None:
        unknown = [name for name in self.routes if name not in names]
        if unknown:
            raise ConfigError(
                f"catalog.routes names no configured upstream: {', '.join(unknown)} (known: {sorted(names)})"
            )

    def check(self) -> None:
        """Rules that involve more than one setting."""
        if self.replicated:
            self.check_shared_state()
        if self.workers > 1 and (self.http_port == 0 or self.grpc_port == 0):
            raise ConfigError("workers: several workers need fixed ports to share; port 0 picks one per worker")
        if not self.has_keys and not self.allow_unauthenticated and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to listen on {self.host} without API keys: set CHATGATE_API_KEYS, "
                "or pass --allow-unauthenticated if something in front of the gateway authenticates"
            )
        anthropic_routed = self.anthropic_routed
        if anthropic_routed and self.simulator == "auto" and not self.default_keys and not is_loopback(self.host):
            # Fail closed: a deployment whose secret went missing must not serve fake answers.
            raise ConfigError(
                f"no upstream key: set ANTHROPIC_API_KEY (an empty one counts as none) to serve on {self.host}, "
                "or CHATGATE_SIMULATOR=on to serve the built-in simulator there on purpose"
            )
        if anthropic_routed and self.simulator == "off" and not self.default_keys:
            raise ConfigError("no upstream key: set ANTHROPIC_API_KEY, or allow the simulator (CHATGATE_SIMULATOR)")
        self.check_routes({c.name for c in self.upstream_configs()})


def options() -> list[tuple[str, Option, Any]]:
    """(field name, option, default) for every setting, in declaration order."""
    return [(f.name, f.metadata["option"], f.default) for f in fields(Settings)]


FILE_KEYS: dict[str, str] = {opt.file: name for name, opt, _ in options() if opt.file}
ENV_KEYS: dict[str, str] = {opt.env: name for name, opt, _ in options() if opt.env}
PARSERS: dict[str, Parse] = {name: opt.parse for name, opt, _ in options()}
SECRETS = frozenset(name for name, opt, _ in options() if opt.secret)
SECRET_UPSTREAM_KEYS = frozenset({"api_key", "api_keys"})


def upstream_env(name: str, key: str) -> str:
    return f"{UPSTREAM_ENV_PREFIX}{name.upper()}__{key.upper()}"


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def _parse(parse: Parse, value: Any, source: str, *, secret: bool = False) -> Any:
    try:
        return parse(value)
    except ValueError as exc:
        if secret:  # neither the value nor a message that might quote it
            expected = str(exc)
            if any(part in expected for part in _strings_in(value)):
                expected = "a valid value"
            raise ConfigError(
                f"{source}: the value is not valid (not shown: it is secret); expected {expected}"
            ) from None
        shown = value if not isinstance(value, str) or len(value) < 60 else value[:57] + "..."
        raise ConfigError(f"{source}: {shown!r} is not valid; expected {exc}") from None


def _strings_in(value: Any) -> list[str]:
    """Every string inside a setting's value (lists and tables walked), for the secret check."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings_in(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings_in(v)]
    return []


def from_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    values: dict[str, Any] = {}
    for table, content in data.items():
        if table in FILE_KEYS:  # a whole-table setting: [[models]], [upstreams.NAME]
            whole = FILE_KEYS[table]
            values[whole] = _parse(PARSERS[whole], content, f"{path}: {table}", secret=whole in SECRETS)
            continue
        if not isinstance(content, dict) or not any(k.startswith(table + ".") for k in FILE_KEYS):
            raise ConfigError(f"{path}: unknown section [{table}]")
        for key, value in content.items():
            name = FILE_KEYS.get(f"{table}.{key}")
            if name is None:
                raise ConfigError(f"{path}: unknown key `{key}` in [{table}]")
            values[name] = _parse(PARSERS[name], value, f"{path}: {table}.{key}", secret=name in SECRETS)
    return values


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    values = {
        name: _parse(PARSERS[name], environ[var], var, secret=name in SECRETS)
        for var, name in ENV_KEYS.items()
        if environ.get(var)
    }
    upstreams: dict[str, dict[str, Any]] = {}
    for var, value in environ.items():
        if var.startswith(UPSTREAM_ENV_PREFIX) and value:
            name, sep, key = var[len(UPSTREAM_ENV_PREFIX) :].partition("__")
            if not sep or not name or key.lower() not in UPSTREAM_KEYS:
                raise ConfigError(
                    f"{var}: expected {UPSTREAM_ENV_PREFIX}NAME__KEY, KEY one of {', '.join(UPSTREAM_KEYS)}"
                )
            upstreams.setdefault(name.lower(), {})[key.lower()] = value
    if upstreams:
        values["upstreams"] = upstreams
    return values


def merge_upstreams(base: dict[str, dict[str, Any]], extra: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    merged = {name: dict(table) for name, table in base.items()}
    for name, table in extra.items():
        merged.setdefault(name, {}).update(table)
    return merged


def load_settings(flags: Mapping[str, Any], environ: Mapping[str, str]) -> Settings:
    """``flags`` holds only the options given on the command line (None means not given)."""
    settings = Settings()
    config = flags.get("config") or environ.get("CHATGATE_CONFIG")
    if config:
        settings = replace(settings, **from_file(Path(config)), config_file=str(config))
    env_values = from_environment(environ)
    if "upstreams" in env_values:
        env_values["upstreams"] = merge_upstreams(settings.upstreams, env_values["upstreams"])
    settings = replace(settings, **env_values)
    by_flag = {opt.flag: name for name, opt, _ in options() if opt.flag}
    flag_values = {
        name: _parse(PARSERS[name], value, by_flag_name(by_flag, name), secret=name in SECRETS)
        for name, value in flags.items()
        if value is not None and name != "config"
    }
    settings = replace(settings, **flag_values)
    settings.check()
    return settings


def by_flag_name(by_flag: Mapping[str, str], name: str) -> str:
    for flag, field_name in by_flag.items():
        if field_name == name:
            return flag
    return name
