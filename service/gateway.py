"""The composition root: builds the core, the provider and both edges, and runs them in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import resource
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from prometheus_client.multiprocess import mark_process_dead

from .config import Settings
from .core import ChatService, ModelCatalog
from .core.auth import KeyChecker
from .core.lifecycle import Lifecycle
from .grpc_api import GrpcSettings, build_grpc_server
from .http_api import HttpSettings, create_app
from .providers.anthropic import AnthropicProvider, AnthropicSettings, Timeouts

log = logging.getLogger("chatgate")
SIMULATOR_KEY = "sk-ant-simulator"


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the gateway shuts both listeners down together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int, *, shared: bool = False) -> socket.socket:
    """A listening TCP socket; ``shared`` lets worker processes bind the same port (SO_REUSEPORT).

    It is created with ``IPPROTO_TCP`` on purpose: asyncio sets TCP_NODELAY only
    on accepted sockets of that protocol, and without it every response written
    as headers then body waits ~40 ms for the peer's delayed ACK (Nagle).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def uvicorn_server(app: Any, log_level: str, grace: float) -> QuietServer:
    # log_config=None: uvicorn's records go through our own logging format.
    config = uvicorn.Config(
        app,
        log_level=log_level,
        log_config=None,
        access_log=False,
        lifespan="off",
        http="httptools",
        proxy_headers=False,  # nothing reads client addresses; it costs a middleware call per request
        timeout_graceful_shutdown=int(grace),
        server_header=False,
        date_header=False,
    )
    return QuietServer(config)


@dataclass(slots=True)
class Upstream:
    base_url: str
    api_key: str
    simulator: QuietServer | None = None
    task: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        if self.simulator is not None and self.task is not None:
            self.simulator.should_exit = True
            await self.task


async def start_upstream(settings: Settings) -> Upstream:
    """The real Anthropic API when a key is set; otherwise the simulator, in-process on a loopback port."""
    if not settings.uses_simulator:
        return Upstream(settings.anthropic_base_url, settings.anthropic_api_key)
    from .simulator import Simulator  # only needed without a key

    sock = bind("127.0.0.1", 0)
    server = uvicorn_server(Simulator(), "warning", 5)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    port = sock.getsockname()[1]
    log.warning("=" * 72)
    log.warning("ANTHROPIC_API_KEY is not set: serving from the built-in SIMULATOR on 127.0.0.1:%d.", port)
    log.warning("Replies are deterministic stand-ins, not Claude. Set ANTHROPIC_API_KEY to call Anthropic.")
    log.warning("=" * 72)
    return Upstream(f"http://127.0.0.1:{port}", SIMULATOR_KEY, server, task)


def build_chat(settings: Settings, upstream: Upstream) -> ChatService:
    catalog = (
        ModelCatalog.from_config(settings.models, replace_defaults=settings.replace_default_models)
        if settings.models or settings.replace_default_models
        else ModelCatalog.default()
    )
    provider = AnthropicProvider(
        AnthropicSettings(
            base_url=upstream.base_url,
            api_key=upstream.api_key,
            timeouts=Timeouts(read=settings.read_timeout),
            client="httpx" if settings.upstream_client == "httpx" else "aiohttp",
        )
    )
    return ChatService(
        catalog, provider, strict_by_default=settings.compatibility == "strict", max_choices=settings.max_choices
    )


def raise_file_limit() -> None:
    """Each stream holds two sockets (client and upstream): allow as many as the hard limit does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(settings: Settings) -> None:
    raise_file_limit()
    upstream = await start_upstream(settings)
    chat = build_chat(settings, upstream)
    keys = KeyChecker(settings.api_keys)
    lifecycle = Lifecycle()
    shared = settings.workers > 1
    grpc_server = build_grpc_server(
        chat,
        keys,
        f"{settings.host}:{settings.grpc_port}",
        GrpcSettings(reflection=settings.reflection, max_message_bytes=settings.max_body_bytes, reuse_port=shared),
    )
    http_socket = bind(settings.host, settings.http_port, shared=shared)
    http_server = uvicorn_server(
        create_app(chat, keys, lifecycle, HttpSettings(settings.max_body_bytes)),
        settings.log_level,
        settings.shutdown_grace,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await grpc_server.start()
    http_task = asyncio.create_task(http_server.serve(sockets=[http_socket]))
    while not http_server.started and not http_task.done():  # noqa: ASYNC110 (uvicorn offers no event)
        await asyncio.sleep(0.01)
    lifecycle.started = True
    log.info(
        "chatgate serving HTTP on http://%s:%d and gRPC on %s:%d%s",
        settings.host,
        http_socket.getsockname()[1],
        settings.host,
        grpc_server.port,
        "" if keys.enabled else " (no API keys configured: authentication is off)",
    )
    await asyncio.wait([asyncio.ensure_future(stop.wait()), http_task], return_when=asyncio.FIRST_COMPLETED)
    log.info("shutting down: draining for up to %.0f s", settings.shutdown_grace)
    lifecycle.draining = True
    http_server.should_exit = True
    await asyncio.gather(grpc_server.stop(settings.shutdown_grace), http_task, return_exceptions=True)
    await chat.provider.aclose()
    await upstream.stop()
    log.info("chatgate stopped")


async def simulate(host: str, port: int, api_key: str | None, replay_dir: str | None) -> None:
    from .simulator import Simulator

    sock = bind(host, port)
    app = Simulator(api_key=api_key, replay_dir=Path(replay_dir) if replay_dir else None)
    config = uvicorn.Config(app, log_level="info", access_log=False, lifespan="off", http="httptools")
    log.warning(
        "chatgate SIMULATOR of Anthropic's Messages API on http://%s:%d (not Claude)", host, sock.getsockname()[1]
    )
    await uvicorn.Server(config).serve(sockets=[sock])


def run_workers(settings: Settings) -> None:
    """Runs ``settings.workers`` processes that share both ports; restarts one that dies; stops them on SIGTERM."""
    context = multiprocessing.get_context("spawn")
    stopping = False
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:  # one /metrics view across the workers
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="chatgate-metrics-")

    def start() -> multiprocessing.process.BaseProcess:
        process = context.Process(target=worker_main, args=(settings,), daemon=False)
        process.start()
        return process

    def stop(signum: int, _: object) -> None:
        nonlocal stopping
        stopping = True
        for process in workers:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    workers = [start() for _ in range(settings.workers)]
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "started %d workers sharing HTTP port %d and gRPC port %d",
        settings.workers,
        settings.http_port,
        settings.grpc_port,
    )
    while True:
        for i, process in enumerate(workers):
            process.join(timeout=0.2)
            if process.exitcode is not None and not stopping:
                log.error("worker %d exited with %s; starting a new one", process.pid, process.exitcode)
                mark_process_dead(process.pid)  # type: ignore[no-untyped-call]
                time.sleep(1)
                workers[i] = start()
        if stopping and all(p.exitcode is not None for p in workers):
            return


def worker_main(settings: Settings) -> None:
    from .cli import configure_logging

    configure_logging(settings.log_level)
    run_loop(serve(settings))


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
