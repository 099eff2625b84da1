"""The ``chatgate`` command: ``serve`` runs the gateway, ``simulate`` the Anthropic simulator alone."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from .config import ConfigError, load_settings


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="chatgate", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve HTTP and gRPC from one process")
    serve.add_argument("--host", help="listen address (CHATGATE_HOST, default 127.0.0.1)")
    serve.add_argument("--http-port", type=int, help="HTTP port (CHATGATE_HTTP_PORT, default 8080)")
    serve.add_argument("--grpc-port", type=int, help="gRPC port (CHATGATE_GRPC_PORT, default 50051)")
    serve.add_argument("--config", help="TOML config file (CHATGATE_CONFIG)")
    serve.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        default=None,
        help="allow a non-loopback --host without API keys",
    )
    serve.add_argument(
        "--no-reflection", dest="reflection", action="store_false", default=None, help="turn gRPC server reflection off"
    )
    serve.add_argument("--workers", type=int, help="processes sharing both ports (CHATGATE_WORKERS, default 1)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="default info")
    simulate = commands.add_parser("simulate", help="run the Anthropic Messages API simulator alone")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8090)
    simulate.add_argument("--api-key", help="accept only this x-api-key (default: any non-empty key)")
    simulate.add_argument("--replay-dir", help="directory of recorded responses for sim:replay=NAME")
    return root


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # httpx logs every request line at INFO; the gateway reports what matters itself.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> None:
    options = parser().parse_args(argv)
    if options.command == "simulate":
        from .gateway import simulate

        configure_logging("info")
        from .gateway import run_loop

        run_loop(simulate(options.host, options.port, options.api_key, options.replay_dir))
        return
    flags = {k: v for k, v in vars(options).items() if k != "command"}
    try:
        settings = load_settings(flags, os.environ)
    except ConfigError as exc:
        print(f"chatgate: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level)
    from .gateway import run_loop, run_workers, serve

    if settings.workers > 1:
        run_workers(settings)
    else:
        run_loop(serve(settings))
