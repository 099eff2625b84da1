"""The composition root: builds the core, the providers and both edges, and runs them in one process."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import resource
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from .. import observability
from ..core import Admission, ChatService, Limits, ModelCatalog, RetryPolicy
from ..core.auth import KeyChecker
from ..core.lifecycle import Lifecycle
from ..core.limits import Limiter, LocalLimiter
from ..grpc_api import GrpcSettings, build_grpc_server
from ..http_api import HttpSettings, create_admin_app, create_app
from ..http_api.responses_socket import OpenSockets
from ..observability import access
from ..store.ledger import Ledger
from ..store.responses import StoredResponses
from .callers import KeyReloader, default_quota, load_keys
from .catalog import CatalogRefresher, build_catalog, build_providers
from .config import DEFAULT_UPSTREAM, ConfigError, Settings, UpstreamConfig, is_loopback
from .listeners import QuietServer, StartupError, bind, grpc_address, uvicorn_server
from .logs import structured_lane
from .usage import make_archive, make_ledger, start_ledger, usage_reader
from .version import version

if TYPE_CHECKING:
    from ..simulator import Simulator

log = logging.getLogger("chatgate")
SIMULATOR_KEY = "sk-ant-simulator"


@dataclass(slots=True)
class Upstream:
    """The upstreams as they will be called: as configured, or the embedded simulator."""

    config: UpstreamConfig  # the default one
    simulator: QuietServer | None = None
    task: asyncio.Task[None] | None = None
    # Every upstream, the default first; None: as configured.
    configs: list[UpstreamConfig] | None = None

    async def stop(self) -> None:
        if self.simulator is not None and self.task is not None:
            self.simulator.should_exit = True
            await self.task


async def start_upstream(settings: Settings) -> Upstream:
    """The real Anthropic API when a key is set; otherwise the simulator, in-process on a loopback port."""
    config = settings.default_upstream()
    # Routes that leave Anthropic out need no key: the simulator then stands in for the clouds only
    # on a loopback host (or when asked for), never because a production secret is missing.
    wanted = settings.anthropic_routed or is_loopback(settings.host) or settings.simulator == "on"
    if not settings.uses_simulator or not wanted:
        return Upstream(config)
    from ..simulator import Simulator  # only needed without a key

    sock = bind("127.0.0.1", 0)
    simulator = Simulator()
    server = uvicorn_server(simulator, "warning", 5)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    log.warning("=" * 72)
    log.warning("ANTHROPIC_API_KEY is not set: serving from the built-in SIMULATOR on 127.0.0.1:%d.", port)
    log.warning("Replies are deterministic stand-ins, not Claude. Set ANTHROPIC_API_KEY to call Anthropic.")
    clouds = [c for c in settings.upstream_configs()[1:] if c.kind != "anthropic" and not c.base_url]
    for cloud in clouds:
        log.warning("Upstream %s (%s) has no base_url: the simulator serves its route too.", cloud.name, cloud.kind)
    log.warning("=" * 72)
    default = replace(config, base_url=base, api_keys=(SIMULATOR_KEY,))
    configs = [default, *(simulated(c, simulator, base) if c in clouds else c for c in settings.upstream_configs()[1:])]
    return Upstream(default, server, task, configs)


def simulated(config: UpstreamConfig, simulator: Simulator, base: str) -> UpstreamConfig:
    """A cloud upstream pointed at the embedded simulator's route for it, with the simulator's credentials."""
    from ..simulator import platforms

    if config.kind == "bedrock":
        return replace(
            config,
            base_url=base + "/anthropic" if config.endpoint == "messages" else base,
            region=config.region or "us-east-1",
            api_keys=(),
            aws_keys=(platforms.AWS_ACCESS_KEY, platforms.AWS_SECRET_KEY),
        )
    return replace(
        config,
        base_url=base,
        project=platforms.SA_PROJECT,
        credentials_file="",
        service_account=simulator.platforms.service_account(base),
    )


def build_chat(
    settings: Settings, catalog: ModelCatalog, upstream: Upstream, archive: StoredResponses | None = None
) -> ChatService:
    configs = upstream.configs or [upstream.config, *settings.upstream_configs()[1:]]
    retry = RetryPolicy(
        attempts=settings.retry_attempts,
        base_delay=settings.retry_base_delay,
        max_delay=settings.retry_max_delay,
        max_retry_after=settings.retry_max_wait,
    )
    providers = build_providers(configs)
    for model in catalog:
        for served in model.on_routes():
            if served.provider not in providers:
                raise ConfigError(
                    f"model {model.id} is routed to the upstream {served.provider}, which has no key: "
                    "set ANTHROPIC_API_KEY, or route the models elsewhere (catalog.routes / CHATGATE_ROUTES)"
                )
    return ChatService(
        catalog,
        providers,
        strict_by_default=settings.compatibility == "strict",
        limits=Limits(max_choices=settings.max_choices, request_timeout=settings.request_timeout, retry=retry),
        admission=Admission(settings.max_in_flight),
        on_attempt=observability.attempt,
        trace_attempt=tracer.attempt if (tracer := observability.active_tracing()) is not None else None,
        limiter=build_limiter(settings),
        default_quota=default_quota(settings),
        archive=archive,
    )


async def start_chat(
    settings: Settings,
    catalog: ModelCatalog,
    upstream: Upstream,
    archive: StoredResponses | None,
    listeners: Listeners,
) -> ChatService:
    """The use case and its providers; a cloud upstream whose credentials or region cannot be
    found stops the start with a one-line error."""
    try:
        return build_chat(settings, catalog, upstream, archive)
    except ConfigError as exc:
        listeners.close()
        await upstream.stop()
        raise StartupError(str(exc)) from None


def build_limiter(settings: Settings) -> Limiter:
    """Caller limits in Redis when configured (shared by replicas), else counted in this process."""
    if settings.limits_redis_url:
        from ..store.limits_redis import RedisLimiter  # redis is imported only when configured

        return RedisLimiter(
            settings.limits_redis_url,
            on_failure=settings.limits_redis_failure,
            lease_ttl=settings.limits_lease_ttl,
            on_event=observability.store_event,
        )
    return LocalLimiter()


def raise_file_limit() -> None:
    """Each stream holds two sockets (client and upstream): allow as many as the hard limit does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass(slots=True)
class Listeners:
    http: socket.socket
    admin: socket.socket | None = None

    def close(self) -> None:
        self.http.close()
        if self.admin is not None:
            self.admin.close()


def bind_listeners(settings: Settings, shared: bool) -> Listeners:
    """Listeners first: a port in use fails before the simulator or anything else starts."""
    listeners = Listeners(bind(settings.host, settings.http_port, shared=shared))
    try:
        if settings.admin_port:
            listeners.admin = bind(settings.host, settings.admin_port, shared=shared)
        if not shared and settings.grpc_port:  # gRPC binds later and reports a clash noisily; ask the kernel first
            bind(settings.host, settings.grpc_port).close()
    except StartupError:
        listeners.close()
        raise
    return listeners


class AdminListener:
    """`/metrics` and the probes on their own port (`server.admin_port`), so the public one need not expose them."""

    def __init__(self, chat: ChatService, lifecycle: Lifecycle, sock: socket.socket, usage: Any = None) -> None:
        self.server = uvicorn_server(create_admin_app(chat, lifecycle, usage), "warning", 1)
        self.task = asyncio.create_task(self.server.serve(sockets=[sock]))

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


@dataclass(slots=True)
class Background:
    """Work beside serving: reloading gateway keys, refreshing the model catalog."""

    reloader: KeyReloader
    refresher: CatalogRefresher
    ledger: Ledger | None
    archive: StoredResponses | None

    @classmethod
    async def start(
        cls,
        settings: Settings,
        keys: KeyChecker,
        chat: ChatService,
        ledger: Ledger | None,
        archive: StoredResponses | None,
    ) -> Background:
        reloader = KeyReloader(settings, keys, settings.keys_reload_interval)
        reloader.start()
        refresher = CatalogRefresher(settings, chat, getattr(chat.providers.get(DEFAULT_UPSTREAM), "list_models", None))
        await refresher.start()
        if ledger is not None:
            await start_ledger(ledger, chat)
        if archive is not None:
            await archive.start()
        return cls(reloader, refresher, ledger, archive)

    async def stop(self) -> None:
        """After the servers: every request has ended, so the ledger has every record to flush."""
        await self.reloader.stop()
        await self.refresher.stop()
        if self.ledger is not None:
            observability.set_ledger(None)
            await self.ledger.stop()
        if self.archive is not None:
            await self.archive.stop()


# Young objects are collected every this many net allocations (Python's default is 700).
GC_THRESHOLD = 10_000


def settle_collector() -> None:
    """Tunes the garbage collector for serving, once everything has started.

    What start-up made (modules, the schema's descriptors, the catalog) lives as long
    as the process, so it is frozen out of the collector's sight: a full collection
    no longer walks 50,000 objects. And with 64 requests in flight, Python's default
    of a collection every 700 net allocations ran about 1,000 collections per 8,000
    requests, each walking the in-flight requests' objects: 0.48 s of collector time,
    a tenth of the CPU. At 10,000 it ran 3, and RSS stayed where it was (64.8 MiB),
    because a finished request leaves no reference cycles behind (tested): refcounting
    frees it. Cycles that error paths make are still found, a little later."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


def mark_ready(lifecycle: Lifecycle, on_ready: Callable[[], None] | None) -> None:
    lifecycle.started = True
    settle_collector()
    if on_ready is not None:
        on_ready()


async def serve(
    settings: Settings, catalog: ModelCatalog | None = None, on_ready: Callable[[], None] | None = None
) -> None:
    raise_file_limit()
    catalog = catalog or build_catalog(settings)
    keys = KeyChecker(load_keys(settings))
    shared = settings.workers > 1
    listeners = bind_listeners(settings, shared)
    setup_observability(settings)
    upstream = await start_upstream(settings)
    ledger, archive = make_ledger(settings), make_archive(settings)
    chat = await start_chat(settings, catalog, upstream, archive, listeners)
    lifecycle = Lifecycle()
    try:
        grpc_server = build_grpc_server(
            chat,
            keys,
            grpc_address(settings.host, settings.grpc_port),
            GrpcSettings(
                reflection=settings.reflection,
                max_message_bytes=settings.max_body_bytes,
                reuse_port=shared,
                heartbeat=settings.heartbeat,
            ),
            lifecycle,
        )
    except (OSError, RuntimeError):  # grpc reports a failed bind as RuntimeError
        listeners.close()
        await upstream.stop()
        raise StartupError(f"port {settings.grpc_port} is in use on {settings.host} (gRPC)") from None
    usage = usage_reader(settings, ledger.store) if ledger is not None else None
    http_settings = HttpSettings(
        settings.max_body_bytes,
        heartbeat=settings.heartbeat,
        log_content=settings.log_content,
        metrics_route=listeners.admin is None,
        usage=usage,
    )
    app = create_app(chat, keys, lifecycle, http_settings)
    http_server = uvicorn_server(app, settings.log_level, settings.shutdown_grace)
    stop = stop_signal()
    await grpc_server.start()
    http_task = asyncio.create_task(http_server.serve(sockets=[listeners.http]))
    admin = AdminListener(chat, lifecycle, listeners.admin, usage) if listeners.admin is not None else None
    background = await Background.start(settings, keys, chat, ledger, archive)
    while not http_server.started and not http_task.done():  # noqa: ASYNC110 (uvicorn offers no event)
        await asyncio.sleep(0.01)
    mark_ready(lifecycle, on_ready)
    announce(settings, listeners, grpc_server.port, keys)
    await asyncio.wait([asyncio.ensure_future(stop.wait()), http_task], return_when=asyncio.FIRST_COMPLETED)
    # Drain: unready and refusing new chat requests (503 shutting_down) while the
    # listeners stay open for the load balancers to notice, then in-flight work
    # gets the grace, then what is left ends with an explicit shutting_down error.
    lifecycle.draining = True
    chat.admission.closed = True
    await grpc_server.health.enter_graceful_shutdown()
    if settings.drain_delay and not http_task.done():
        log.info("draining: unready, refusing new requests for %.1f s", settings.drain_delay)
        await asyncio.sleep(settings.drain_delay)
    log.info("shutting down: in-flight requests get up to %.0f s", settings.shutdown_grace)
    await stop_http(http_server, app.sockets, settings.shutdown_grace)
    await asyncio.gather(grpc_server.stop(settings.shutdown_grace), http_task, return_exceptions=True)
    await background.stop()
    if admin is not None:
        await admin.stop()
    await chat.aclose()
    await upstream.stop()
    if (tracing := observability.active_tracing()) is not None:
        tracing.shutdown()  # exports the spans still buffered
    log.info("chatgate stopped")


async def stop_http(server: uvicorn.Server, sockets: OpenSockets, grace: float) -> None:
    """Tells the HTTP server to stop once the responses in flight on WebSockets ended: the server
    closes sockets at once when it stops (1012), while HTTP requests get its graceful shutdown. One
    grace in all: what the sockets took is not given again to the HTTP requests."""
    waited = time.monotonic()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(sockets.drained(), grace)
    server.config.timeout_graceful_shutdown = max(1, int(grace - (time.monotonic() - waited)))
    server.should_exit = True


def stop_signal() -> asyncio.Event:
    """Set on SIGTERM or SIGINT: the gateway drains and stops."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


def announce(settings: Settings, listeners: Listeners, grpc_port: int, keys: KeyChecker) -> None:
    log.info(
        "chatgate serving HTTP on http://%s:%d and gRPC on %s:%d%s%s",
        settings.host,
        listeners.http.getsockname()[1],
        settings.host,
        grpc_port,
        f", metrics and probes on port {listeners.admin.getsockname()[1]}" if listeners.admin is not None else "",
        f" ({len(keys)} gateway keys)" if keys.enabled else " (no API keys configured: authentication is off)",
    )


def setup_observability(settings: Settings) -> None:
    tracing = None
    if observability.tracing_configured(os.environ):
        from ..observability.tracing import from_environment

        tracing = from_environment(os.environ, version())
    observability.configure(access_log=settings.access_log, tracing=tracing)
    access.use_lane(structured_lane())


async def simulate(
    host: str,
    port: int,
    api_key: str | None,
    replay_dir: str | None,
    key_faults: dict[str, tuple[int, str | None]] | None = None,
) -> None:
    from ..simulator import Simulator

    sock = bind(host, port)
    app = Simulator(api_key=api_key, replay_dir=Path(replay_dir) if replay_dir else None, key_faults=key_faults)
    config = uvicorn.Config(app, log_level="info", access_log=False, lifespan="off", http="httptools")
    log.warning(
        "chatgate SIMULATOR of Anthropic's Messages API on http://%s:%d (not Claude)", host, sock.getsockname()[1]
    )
    await uvicorn.Server(config).serve(sockets=[sock])
