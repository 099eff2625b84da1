"""Several worker processes sharing both ports (`server.workers`), supervised: restarted when one dies,
all stopped together."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from prometheus_client.multiprocess import mark_process_dead

from .config import Settings
from .gateway import serve
from .listeners import StartupError
from .logs import configure_logging

log = logging.getLogger("chatgate")


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


def of_worker(settings: Settings, index: int) -> Settings:
    """A worker's own settings: its own ledger spill file (`spill.jsonl` -> `spill.w1.jsonl`), kept
    across its restarts, so no two processes append to or replay one file."""
    spill = Path(settings.ledger_spill)
    return dataclasses.replace(settings, ledger_spill=str(spill.with_name(f"{spill.stem}.w{index}{spill.suffix}")))


def supervise(settings: Settings, context: Any) -> int:
    stopping = False
    status = 0

    def start(index: int) -> tuple[multiprocessing.process.BaseProcess, Any]:
        ready = context.Event()
        process = context.Process(target=worker_main, args=(of_worker(settings, index), ready), daemon=False)
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

    workers = [start(i) for i in range(settings.workers)]
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
            workers[i] = start(i)
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
