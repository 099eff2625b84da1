"""One request as the gateway handled it: who asked, what for, what answered, how it ended.

An edge opens an ``Exchange`` when a request arrives and fills in what only it
knows (protocol, route, caller, status, bytes, time to first byte); the use case
fills in what only it knows (model asked and served, attempts, usage, the
upstream's request id). When the request ends, the access log, the metrics and
the trace span all read the same record, so they never disagree.

The request id is the gateway's: the client's own ``x-request-id`` when it is
well-formed (so a caller's id survives end to end), else a new one. It goes
upstream for correlation and onto every log line about the request, through
``REQUEST_ID`` (a context variable the log formatter reads).
"""

from __future__ import annotations

import fnmatch
import random
import re
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from chatgate.v1 import chat_pb2

from .limits import Quota
from .models import Prices

# Printable, header-safe, bounded: anything else is replaced, never echoed.
_WELL_FORMED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,127}")

REQUEST_ID: ContextVar[str] = ContextVar("chatgate_request_id", default="")


def new_request_id() -> str:
    """96 random bits. An id must be unique, not unguessable, so it comes from Python's generator
    (seeded from the OS in each worker process) rather than ``os.urandom``: a system call that
    releases the GIL on every request, and with the trace export or ledger thread waiting for the
    GIL the request then waits for that thread's turn to end."""
    return f"req_{random.getrandbits(96):024x}"


ATTRIBUTION_HEADERS = {
    "x-claude-code-session-id": "session",
    "x-claude-code-agent-id": "agent",
    "x-claude-code-parent-agent-id": "parent_agent",
}


def attribution_value(value: str) -> str:
    """An attribution header as it may be recorded: well-formed and bounded, else left out."""
    return value if _WELL_FORMED.fullmatch(value) else ""


def request_id_from(value: str | None) -> str:
    """The client's id when it is well-formed, else a new one."""
    if value and _WELL_FORMED.fullmatch(value):
        return value
    return new_request_id()


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: a gateway key's name (never the key) and what it may use."""

    name: str
    # Model ids or shell-style patterns (`claude-haiku-*`); empty means every model.
    models: tuple[str, ...] = ()
    # This caller's own limits; None: the gateway's defaults for every caller.
    quota: Quota | None = None

    def may_use(self, model_id: str) -> bool:
        return not self.models or any(fnmatch.fnmatchcase(model_id, pattern) for pattern in self.models)


ANONYMOUS = Caller("anonymous")


@dataclass(slots=True)
class Exchange:
    request_id: str
    protocol: str  # "http" | "grpc"
    route: str  # the HTTP path template or the gRPC method
    caller: Caller = ANONYMOUS
    started: float = field(default_factory=time.monotonic)
    mode: str = "unary"  # or "stream"
    model_asked: str = ""
    model_served: str = ""  # the catalog id that answered (a fallback shows here)
    upstream: str = ""  # the configured upstream (route) that answered
    prices: Prices | None = None  # what a token cost on that route, for the ledger and budgets
    attempts: int = 0  # upstream attempts, retries and fallbacks included
    outcome: str = "ok"  # "ok" or the error code the client saw
    status: str = ""  # HTTP status or gRPC code name
    usage: chat_pb2.Usage | None = None
    finish_reasons: tuple[str, ...] = ()
    first_byte: float = 0.0  # monotonic time the first answer byte left; 0: never
    upstream_seconds: float = 0.0
    upstream_request_id: str = ""
    bytes_in: int = 0
    bytes_out: int = 0
    adjusted: str = ""
    content: str = ""  # the request body, only when content logging is on
    traceparent: str = ""  # the caller's W3C trace context, if it sent one
    # Who inside the caller asked, when the client says (Claude Code's `x-claude-code-session-id`,
    # `-agent-id` and `-parent-agent-id`): cost attributed in the ledger, the access log and the trace.
    session: str = ""
    agent: str = ""
    parent_agent: str = ""
    span: Any = None  # the tracer's server span, when tracing is on


def internal(route: str = "internal") -> Exchange:
    """An exchange for callers that have none (tests, tools): nothing reads it."""
    return Exchange(new_request_id(), "internal", route)
