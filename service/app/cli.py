"""The `chatgate` command: `serve` runs the gateway, `simulate` the Anthropic simulator alone,
`keys` makes and hashes gateway keys."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from .config import ConfigError, load_settings, options
from .logs import configure_logging
from .version import version

DESCRIPTION = """\
chatgate serves Claude through the APIs clients already speak: OpenAI Chat Completions over HTTP
(JSON and SSE) and the chatgate.v1 service over gRPC, from one core.

  chatgate serve                  serve HTTP and gRPC (with no ANTHROPIC_API_KEY on a loopback
                                  host, from the built-in simulator)
  chatgate simulate --port 8090   the Anthropic Messages API simulator alone
  chatgate keys create --name N   a new gateway key and the config lines that admit it
"""

SERVE_EPILOG_HEAD = """\
Every setting below can also come from the environment or the TOML file given with --config
(flags beat environment, environment beats the file, the file beats defaults). A bad value is
one line naming the setting and exit status 2.

  setting (file key)                      environment variable
"""

KEYS_DESCRIPTION = """\
Gateway keys are stored as hashes: `create` prints a new key once (hand it to the caller) and the
[[keys]] entry to put in the keys file (CHATGATE_KEYS_FILE) or, as [[auth.keys]], in the config
file; the gateway reloads them on change or SIGHUP. `hash` prints the entry for an existing key,
read from standard input so it stays out of the shell history.
"""


def serve_epilog() -> str:
    lines = [SERVE_EPILOG_HEAD]
    for _name, opt, default in options():
        if opt.file is None and opt.env is None:
            continue
        shown = "" if default is dataclasses.MISSING or default in ((), {}, "") else f" [default: {default}]"
        lines.append(f"  {opt.file or '-':<40}{opt.env or '(file only)'}\n      {opt.help}{shown}\n")
    lines.append(
        "  [upstreams.NAME] keys can come from CHATGATE_UPSTREAMS__NAME__KEY; OTEL_* variables turn on tracing.\n"
    )
    return "".join(lines)


def simulate_epilog() -> str:
    from ..simulator import scenario

    directives = [line for line in (scenario.__doc__ or "").splitlines() if line.startswith("    sim:")]
    return (
        "Directives, written anywhere in the last user message (or in an `x-sim` header):\n\n"
        + "\n".join(directives)
        + "\n"
    )


class EpilogOnDemand(argparse.ArgumentParser):
    """A command whose epilog is written only when its help is shown: the simulator's directives
    would otherwise import the simulator into every serving process (0.8 MiB of idle RSS)."""

    def __init__(self, *args: Any, epilog_of: Callable[[], str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._epilog_of = epilog_of

    def format_help(self) -> str:
        if self._epilog_of is not None:
            self.epilog, self._epilog_of = self._epilog_of(), None
        return super().format_help()


def parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    root = argparse.ArgumentParser(prog="chatgate", description=DESCRIPTION, formatter_class=raw)
    root.add_argument("--version", action="version", version=f"chatgate {version()}")
    commands = root.add_subparsers(dest="command", required=True, parser_class=EpilogOnDemand)
    serve = commands.add_parser(
        "serve",
        help="serve HTTP and gRPC from one process",
        description="Serve the HTTP and gRPC APIs from one process.",
        epilog_of=serve_epilog,
        formatter_class=raw,
    )
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
    simulate = commands.add_parser(
        "simulate",
        help="run the Anthropic Messages API simulator alone",
        description="An honest, deterministic emulator of Anthropic's Messages API (not Claude).",
        epilog_of=simulate_epilog,
        formatter_class=raw,
    )
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
    usage = commands.add_parser(
        "usage",
        help="read the usage ledger: totals by caller, model and day",
        description="Totals from the usage ledger the settings name (ledger.url: SQLite or PostgreSQL).",
    )
    usage.add_argument("--config", help="the TOML file with the ledger settings (default: CHATGATE_CONFIG)")
    usage.add_argument(
        "--by", default="caller,model,day", help="comma-separated groups: caller, model, day, session, agent"
    )
    usage.add_argument("--since", help="only requests from this day on (YYYY-MM-DD, UTC)")
    usage.add_argument("--json", action="store_true", help="JSON instead of a table")
    keys = commands.add_parser(
        "keys", help="create or hash gateway keys", description=KEYS_DESCRIPTION, formatter_class=raw
    )
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="print a new key once, and its config entry")
    create.add_argument("--name", required=True, help="the caller's name in logs, metrics and the ledger")
    create.add_argument("--models", help="comma-separated model ids or patterns it may use (default: all)")
    create.add_argument("--expires", help="last valid day, YYYY-MM-DD (UTC)")
    hash_ = actions.add_parser("hash", help="print the config entry for an existing key (read from stdin)")
    hash_.add_argument("--name", default="caller", help="the caller's name for the entry")
    return root


def fail(message: str) -> None:
    """A misconfiguration: one line, exit status 2, never a traceback."""
    print(f"chatgate: {message}", file=sys.stderr)
    raise SystemExit(2)


def key_entry(name: str, digest: str, models: list[str], expires: str | None) -> str:
    lines = ["[[keys]]", f'name = "{name}"', f'hash = "{digest}"']
    if models:
        lines.append("models = [" + ", ".join(f'"{m}"' for m in models) + "]")
    if expires:
        lines.append(f"expires = {expires}")
    return "\n".join(lines)


def keys_command(parsed: argparse.Namespace) -> None:
    from ..core.auth import hash_key, new_key
    from .callers import NAME

    if not NAME.match(parsed.name):
        fail("--name: letters, digits, '.', '_' and '-', at most 64")
    if parsed.action == "hash":
        key = sys.stdin.readline().strip()
        if not key:
            fail("keys hash: write the key on standard input")
        print(key_entry(parsed.name, hash_key(key), [], None))
        return
    models = [m.strip() for m in (parsed.models or "").split(",") if m.strip()]
    expires = None
    if parsed.expires:
        try:
            expires = date.fromisoformat(parsed.expires).isoformat()
        except ValueError:
            fail(f"--expires: {parsed.expires!r} is not a date; expected YYYY-MM-DD")
    key = new_key()
    print(f"key (shown once; give it to {parsed.name}): {key}", file=sys.stderr)
    print(key_entry(parsed.name, hash_key(key), models, expires))


def usage_command(parsed: argparse.Namespace) -> None:
    import asyncio

    from ..store import StoreUnavailable
    from .usage import as_json, parse_groups, parse_since, table, totals

    try:
        settings = load_settings({"config": parsed.config} if parsed.config else {}, os.environ)
        by, since = parse_groups(parsed.by), parse_since(parsed.since)
        rows = asyncio.run(totals(settings, by, since))
    except (ConfigError, ValueError, StoreUnavailable) as exc:
        fail(str(exc))
        return
    print(as_json(rows) if parsed.json else table(rows, by))


def check_tracing() -> None:
    from ..observability import tracing_configured

    if tracing_configured(os.environ):
        from ..observability.tracing import ConfigError as TracingError
        from ..observability.tracing import settings_from

        try:
            settings_from(os.environ, version())
        except TracingError as exc:
            raise ConfigError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> None:
    parsed = parser().parse_args(argv)
    if parsed.command == "keys":
        keys_command(parsed)
        return
    if parsed.command == "usage":
        usage_command(parsed)
        return
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
        from .gateway import simulate
        from .workers import run_loop

        run_loop(simulate(parsed.host, parsed.port, parsed.api_key, parsed.replay_dir, faults))
        return
    flags = {k: v for k, v in vars(parsed).items() if k != "command"}
    from .callers import load_keys
    from .catalog import build_catalog
    from .platforms import check_extras
    from .usage import make_archive, store_of

    try:
        settings = load_settings(flags, os.environ)
        catalog = build_catalog(settings)  # a bad [[models]] entry fails here, before anything starts
        check_extras(settings.upstream_configs())  # and a cloud upstream whose library is not installed
        load_keys(settings)  # so does a bad gateway key entry or an unreadable keys file
        store_of(settings)  # and a ledger URL of no known kind
        make_archive(settings)  # or a responses URL (nothing is opened yet)
        check_tracing()  # and a malformed OTEL_* variable
    except ConfigError as exc:
        fail(str(exc))
        return
    configure_logging(settings.log_level, settings.log_format)
    from .gateway import serve
    from .listeners import StartupError
    from .workers import run_loop, run_workers

    if settings.workers > 1:
        raise SystemExit(run_workers(settings))
    try:
        run_loop(serve(settings, catalog))
    except StartupError as exc:
        fail(str(exc))
