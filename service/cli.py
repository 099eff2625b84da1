"""The ``chatgate`` command: ``serve`` runs the gateway, ``simulate`` the Anthropic simulator alone."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .config import ConfigError, load_settings, options
from .logs import configure_logging


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="chatgate", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve HTTP and gRPC from one process")
    serve.add_argument("--config", help="TOML config file (CHATGATE_CONFIG)")
    for name, opt, default in options():  # the flags come from the settings table
        if opt.flag is None:
            continue
        where = f"{opt.env}, " if opt.env else ""
        if opt.flag_value is not None:
            serve.add_argument(
                opt.flag, dest=name, action="store_const", const=opt.flag_value, default=None, help=opt.help
            )
        else:
            serve.add_argument(opt.flag, dest=name, metavar="VALUE", help=f"{opt.help} ({where}default {default})")
    simulate = commands.add_parser("simulate", help="run the Anthropic Messages API simulator alone")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8090)
    simulate.add_argument("--api-key", help="accept only this x-api-key (default: any non-empty key)")
    simulate.add_argument("--replay-dir", help="directory of recorded responses for sim:replay=NAME")
    simulate.add_argument(
        "--key-fault",
        action="append",
        default=[],
        metavar="KEY=STATUS[:SECONDS]",
        help="answer every request made with KEY with STATUS (and retry-after SECONDS); repeatable",
    )
    return root


def fail(message: str) -> None:
    """A misconfiguration: one line, exit status 2, never a traceback."""
    print(f"chatgate: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> None:
    parsed = parser().parse_args(argv)
    if parsed.command == "simulate":
        if not 0 <= parsed.port <= 65535:
            fail(f"--port: {parsed.port} is not valid; expected an integer from 0 to 65535")
        faults: dict[str, tuple[int, str | None]] = {}
        for item in parsed.key_fault:
            key, _, fault = item.partition("=")
            status, _, retry = fault.partition(":")
            if not key or not status.isdigit():
                fail(f"--key-fault: expected KEY=STATUS[:SECONDS], not {item.split('=')[0][:4]}...")
            faults[key] = (int(status), retry or None)
        configure_logging("info")
        from .gateway import run_loop, simulate

        run_loop(simulate(parsed.host, parsed.port, parsed.api_key, parsed.replay_dir, faults))
        return
    flags = {k: v for k, v in vars(parsed).items() if k != "command"}
    from .upstreams import build_catalog

    try:
        settings = load_settings(flags, os.environ)
        catalog = build_catalog(settings)  # a bad [[models]] entry fails here, before anything starts
    except ConfigError as exc:
        fail(str(exc))
        return
    configure_logging(settings.log_level)
    from .gateway import StartupError, run_loop, run_workers, serve

    if settings.workers > 1:
        raise SystemExit(run_workers(settings))
    try:
        run_loop(serve(settings, catalog))
    except StartupError as exc:
        fail(str(exc))
