"""The composition root: builds the core, the providers and both edges, and runs them in one process."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import uvicorn
from prometheus_client.multiprocess import mark_process_dead
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from . import observability
from .callers import KeyReloader, default_quota, load_keys
from .cli import version
from .config import DEFAULT_UPSTREAM, Settings, UpstreamConfig
from .core import Admission, ChatService, Limits, ModelCatalog, RetryPolicy
from .core.auth import KeyChecker
from .core.errors import InvalidRequest
from .core.lifecycle import Lifecycle
from .core.limits import Limiter, LocalLimiter
from .grpc_api import GrpcSettings, build_grpc_server
from .http_api import HttpSettings, create_admin_app, create_app
from .http_api.openai_chat import error_json
from .logs import configure_logging, structured_lane
from .observability import access
from .store.ledger import Ledger
from .store.responses import StoredResponses
from .upstreams import CatalogRefresher, build_catalog, build_providers
from .usage import make_archive, make_ledger, start_ledger, usage_reader

log = logging.getLogger("chatgate")
SIMULATOR_KEY = "sk-ant-simulator"


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the gateway shuts both listeners down together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class StartupError(Exception):
    """The gateway cannot start (a port in use, say); the message is one line for the operator."""


def grpc_address(host: str, port: int) -> str:
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind(host: str, port: int, *, shared: bool = False) -> socket.socket:
    """A listening TCP socket; ``shared`` lets worker processes bind the same port (SO_REUSEPORT).

    It is created with ``IPPROTO_TCP`` on purpose: asyncio sets TCP_NODELAY only
    on accepted sockets of that protocol, and without it every response written
    as headers then body waits ~40 ms for the peer's delayed ACK (Nagle).
    """
    host = host.strip("[]")  # `[::1]` as in a URL
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:  # only between the workers of one supervisor: a second instance must fail
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # `::` serves IPv4 too
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(f"port {port} is in use on {host}") from None
        raise StartupError(f"cannot listen on {host} port {port}: {exc.strerror}") from None
    return sock


class JsonErrorProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, answering a request it cannot parse in OpenAI's error shape
    (the SDKs read `error.message`) rather than with a plain-text body."""

    def send_400_response(self, msg: str) -> None:
        observability.refused("http", "invalid_http_request")  # counted, like every other refusal
        body = error_json(InvalidRequest(f"The HTTP request could not be parsed: {msg}", code="invalid_http_request"))
        head = [
            b"HTTP/1.1 400 Bad Request\r\n",
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join([*head, body]))
        self.transport.close()


def uvicorn_server(app: Any, log_level: str, grace: float) -> QuietServer:
    # log_config=None: uvicorn's records go through our own logging format.
    config = uvicorn.Config(
        app,
        log_level=log_level,
        log_config=None,
        access_log=False,
        lifespan="off",
        http=JsonErrorProtocol,
        proxy_headers=False,  # nothing reads client addresses; it costs a middleware call per request
        timeout_graceful_shutdown=int(grace),
        server_header=False,
        date_header=False,
    )
    return QuietServer(config)


@dataclass(slots=True)
class Upstream:
    """The default upstream as it will be called: the configured one, or the embedded simulator."""

    config: UpstreamConfig
    simulator: QuietServer | None = None
    task: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        if self.simulator is not None and self.task is not None:
            self.simulator.should_exit = True
            await self.task


async def start_upstream(settings: Settings) -> Upstream:
    """The real Anthropic API when a key is set; otherwise the simulator, in-process on a loopback port."""
    config = settings.default_upstream()
    if not settings.uses_simulator:
        return Upstream(config)
    from .simulator import Simulator  # only needed without a key

    sock = bind("127.0.0.1", 0)
    server = uvicorn_server(Simulator(), "warning", 5)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    port = sock.getsockname()[1]
    log.warning("=" * 72)
    log.warning("ANTHROPIC_API_KEY is not set: serving from the built-in SIMULATOR on 127.0.0.1:%d.", port)
    log.warning("Replies are deterministic stand-ins, not Claude. Set ANTHROPIC_API_KEY to call Anthropic.")
    log.warning("=" * 72)
    return Upstream(replace(config, base_url=f"http://127.0.0.1:{port}", api_keys=(SIMULATOR_KEY,)), server, task)


def build_chat(settings: Settings, catalog: ModelCatalog, upstream: Upstream) -> ChatService:
    configs = [upstream.config, *settings.upstream_configs()[1:]]
    retry = RetryPolicy(
        attempts=settings.retry_attempts,
        base_delay=settings.retry_base_delay,
        max_delay=settings.retry_max_delay,
        max_retry_after=settings.retry_max_wait,
    )
    return ChatService(
        catalog,
        build_providers(configs),
        strict_by_default=settings.compatibility == "strict",
        limits=Limits(max_choices=settings.max_choices, request_timeout=settings.request_timeout, retry=retry),
        admission=Admission(settings.max_in_flight),
        on_attempt=observability.attempt,
        trace_attempt=tracer.attempt if (tracer := observability.active_tracing()) is not None else None,
        limiter=build_limiter(settings),
        default_quota=default_quota(settings),
    )


def build_limiter(settings: Settings) -> Limiter:
    """Caller limits in Redis when configured (shared by replicas), else counted in this process."""
    if settings.limits_redis_url:
        from .store.limits_redis import RedisLimiter  # redis is imported only when configured

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
        refresher = CatalogRefresher(settings, chat, getattr(chat.providers[DEFAULT_UPSTREAM], "list_models", None))
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
    chat = build_chat(settings, catalog, upstream)
    lifecycle = Lifecycle()
    try:
        grpc_server = build_grpc_server(
            chat,
            keys,
            grpc_address(settings.host, settings.grpc_port),
            GrpcSettings(reflection=settings.reflection, max_message_bytes=settings.max_body_bytes, reuse_port=shared),
            lifecycle,
        )
    except (OSError, RuntimeError):  # grpc reports a failed bind as RuntimeError
        listeners.close()
        await upstream.stop()
        raise StartupError(f"port {settings.grpc_port} is in use on {settings.host} (gRPC)") from None
    ledger, archive = make_ledger(settings), make_archive(settings)
    usage = usage_reader(settings, ledger.store) if ledger is not None else None
    http_settings = HttpSettings(
        settings.max_body_bytes,
        heartbeat=settings.heartbeat,
        log_content=settings.log_content,
        metrics_route=listeners.admin is None,
        usage=usage,
        responses=archive,
    )
    http_server = uvicorn_server(
        create_app(chat, keys, lifecycle, http_settings), settings.log_level, settings.shutdown_grace
    )
    stop = stop_signal()
    await grpc_server.start()
    health_task = asyncio.create_task(grpc_server.follow(lambda: chat.ready))
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
    http_server.should_exit = True
    await asyncio.gather(grpc_server.stop(settings.shutdown_grace), http_task, return_exceptions=True)
    health_task.cancel()
    await background.stop()
    if admin is not None:
        await admin.stop()
    await chat.aclose()
    await upstream.stop()
    if (tracing := observability.active_tracing()) is not None:
        tracing.shutdown()  # exports the spans still buffered
    log.info("chatgate stopped")


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
        from .observability.tracing import from_environment

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
    from .simulator import Simulator

    sock = bind(host, port)
    app = Simulator(api_key=api_key, replay_dir=Path(replay_dir) if replay_dir else None, key_faults=key_faults)
    config = uvicorn.Config(app, log_level="info", access_log=False, lifespan="off", http="httptools")
    log.warning(
        "chatgate SIMULATOR of Anthropic's Messages API on http://%s:%d (not Claude)", host, sock.getsockname()[1]
    )
    await uvicorn.Server(config).serve(sockets=[sock])


RESTART_WINDOW = 60.0  # seconds
MAX_RESTARTS = 5  # within the window, before the supervisor gives up


def run_workers(settings: Settings) -> int:
    """Runs ``settings.workers`` processes that share both ports and returns the exit status.

    A worker that dies before it is ready (a port it cannot bind, say) stops the
    whole group with status 1: restarting it would fail the same way forever. A
    worker that dies after it was ready is restarted, at most ``MAX_RESTARTS``
    times a minute. SIGTERM and SIGINT stop every worker (status 0).
    """
    context = multiprocessing.get_context("spawn")
    metrics_dir = None
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:  # one /metrics view across the workers
        metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="chatgate-metrics-")
    try:
        return supervise(settings, context)
    finally:
        if metrics_dir is not None:  # ours: nothing else reads it once the workers are gone
            shutil.rmtree(metrics_dir, ignore_errors=True)
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]


def supervise(settings: Settings, context: Any) -> int:
    stopping = False
    status = 0

    def start() -> tuple[multiprocessing.process.BaseProcess, Any]:
        ready = context.Event()
        process = context.Process(target=worker_main, args=(settings, ready), daemon=False)
        process.start()
        return process, ready

    def stop_all(signum: int = 0, _: object = None) -> None:
        nonlocal stopping
        stopping = True
        for process, _ready in workers:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    def forward(signum: int, _: object = None) -> None:
        for process, _ready in workers:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signum)

    workers = [start() for _ in range(settings.workers)]
    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    signal.signal(signal.SIGHUP, forward)  # each worker reloads its gateway keys
    log.info(
        "started %d workers sharing HTTP port %d and gRPC port %d",
        settings.workers,
        settings.http_port,
        settings.grpc_port,
    )
    restarts: list[float] = []
    while True:
        for i, (process, ready) in enumerate(workers):
            process.join(timeout=0.2)
            if process.exitcode is None or stopping:
                continue
            mark_process_dead(process.pid)  # type: ignore[no-untyped-call]
            if not ready.is_set():
                log.error("worker %d failed to start (exit status %s); stopping", process.pid, process.exitcode)
                status = 1
                stop_all()
                break
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < RESTART_WINDOW] + [now]
            if len(restarts) > MAX_RESTARTS:
                log.error("workers died %d times within %.0f s; stopping", len(restarts), RESTART_WINDOW)
                status = 1
                stop_all()
                break
            log.error("worker %d exited with %s; starting a new one", process.pid, process.exitcode)
            time.sleep(1)
            workers[i] = start()
        if stopping and all(p.exitcode is not None for p, _ in workers):
            return status


def worker_main(settings: Settings, ready: Any) -> None:
    configure_logging(settings.log_level, settings.log_format)
    try:
        run_loop(serve(settings, on_ready=ready.set))
    except StartupError as exc:
        log.error("worker cannot start: %s", exc)
        raise SystemExit(2) from None


def run_loop(main: Any) -> None:
    """uvloop where installed (it trims event-loop overhead and grpc.aio runs on it);
    CHATGATE_LOOP=asyncio chooses the standard loop."""
    if os.environ.get("CHATGATE_LOOP") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(main)
            return
    asyncio.run(main)
