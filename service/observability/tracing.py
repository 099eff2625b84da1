"""Tracing, when the operator configures it with the standard `OTEL_*` variables.

A server span per request (the caller's W3C `traceparent` is its parent when
sent) and a client span per upstream attempt, with the attributes of
OpenTelemetry's GenAI semantic conventions, exported over OTLP/HTTP (protobuf)
in batches from a thread of their own.

Why not the OpenTelemetry SDK: measured on the benchmark's single core it
doubled the CPU time of a whole chat request (span objects re-validating every
attribute, a context attach per request, a protobuf message object per
attribute when exporting). A span here is a slotted record, sampling is one
comparison, and export writes the wire format directly (``otlp.py``); the
environment variables, sampler names, defaults and wire format are the
standard ones, so collectors, vendors and operators see no difference.

When tracing is not configured this module is never imported: the request path
tests one global for ``None`` and pays nothing else (see ``tracing_configured``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import http.client
import logging
import queue
import random
import ssl
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import orjson

from service.core import ProviderCall
from service.core.exchange import Exchange

from . import otlp

log = logging.getLogger("chatgate")
SCOPE_NAME = "chatgate"


class ConfigError(ValueError):
    """A tracing variable is malformed; the message names it (and never repeats a header value)."""


class Span:
    """One span, recorded when sampled (``flags`` 1) and otherwise only carrying its ids."""

    __slots__ = (
        "attributes",
        "end_ns",
        "error",
        "flags",
        "kind",
        "name",
        "parent_id",
        "span_id",
        "start_ns",
        "trace_id",
    )

    def __init__(
        self,
        trace_id: int,
        parent_id: int,
        flags: int,
        name: str,
        kind: int,
        attributes: dict[str, otlp.AttributeValue],
    ) -> None:
        self.trace_id, self.parent_id, self.flags = trace_id, parent_id, flags
        self.span_id = random.getrandbits(64) or 1
        self.name, self.kind, self.attributes = name, kind, attributes
        self.start_ns = time.time_ns()
        self.end_ns = 0
        self.error = ""

    @property
    def sampled(self) -> bool:
        return bool(self.flags & 1)  # bit 0 of the OTLP span flags

    @property
    def trace_id_hex(self) -> str:
        return f"{self.trace_id:032x}"

    def fail(self, outcome: str) -> None:
        self.attributes["error.type"] = outcome
        self.error = outcome


# --- configuration from the environment ------------------------------------------


@dataclass(frozen=True)
class Sampler:
    """The standard samplers: ``always_on``, ``always_off``, ``traceidratio`` and their ``parentbased_`` forms."""

    root_ratio: float  # share of new traces sampled (1.0: all, 0.0: none)
    follow_parent: bool

    def sampled(self, trace_id: int, parent_flags: int | None) -> bool:
        if self.follow_parent and parent_flags is not None:
            return bool(parent_flags & 1)
        if self.root_ratio >= 1.0:
            return True
        # As OpenTelemetry's TraceIdRatioBased sampler decides: the low 64 bits of the trace id against the ratio.
        return (trace_id & 0xFFFFFFFFFFFFFFFF) < round(self.root_ratio * 2**64)


@dataclass(frozen=True)
class TracingSettings:
    sampler: Sampler
    resource: dict[str, otlp.AttributeValue]
    exporters: tuple[str, ...]  # "otlp" and/or "console"
    endpoint: str
    headers: dict[str, str]
    timeout: float  # seconds per export
    gzip: bool
    certificate: str | None
    client_certificate: str | None
    client_key: str | None
    schedule_delay: float  # seconds between exports
    max_queue: int
    max_batch: int


SAMPLERS = {
    "always_on": (False, False),
    "always_off": (False, False),
    "traceidratio": (False, True),
    "parentbased_always_on": (True, False),
    "parentbased_always_off": (True, False),
    "parentbased_traceidratio": (True, True),
}


def sampler_from(environ: Mapping[str, str]) -> Sampler:
    name = environ.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on"
    if name not in SAMPLERS:
        raise ConfigError(f"OTEL_TRACES_SAMPLER: {name!r} is not a sampler; expected one of {', '.join(SAMPLERS)}")
    follow_parent, takes_ratio = SAMPLERS[name]
    ratio = 0.0 if name.endswith("always_off") else 1.0
    if takes_ratio:
        raw = environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip() or "1.0"
        try:
            ratio = float(raw)
        except ValueError:
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            raise ConfigError(f"OTEL_TRACES_SAMPLER_ARG: {raw!r} is not a ratio; expected a number from 0 to 1")
    return Sampler(ratio, follow_parent)


def pairs(environ: Mapping[str, str], name: str) -> dict[str, str]:
    """``key=value,key2=value2`` with URL-encoded values (headers, resource attributes).
    A malformed entry fails start-up; its value is never repeated (headers carry credentials)."""
    found: dict[str, str] = {}
    for item in environ.get(name, "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{name}: expected key=value pairs separated by commas (entry {len(found) + 1})")
        found[unquote(key.strip())] = unquote(value.strip())
    return found


def first(environ: Mapping[str, str], *names: str) -> str:
    return next((environ[n].strip() for n in names if environ.get(n, "").strip()), "")


def number(environ: Mapping[str, str], name: str, default: int, low: int = 0) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < low:
        raise ConfigError(f"{name}: {raw!r} is not valid; expected a whole number of at least {low}")
    return int(raw)


def settings_from(environ: Mapping[str, str], service_version: str) -> TracingSettings:
    """Reads and checks every tracing variable; a bad one is a ``ConfigError`` naming it."""
    exporters = tuple(e.strip().lower() for e in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if e.strip())
    for exporter in exporters:
        if exporter not in ("otlp", "console"):
            raise ConfigError(f"OTEL_TRACES_EXPORTER: {exporter!r} is not supported; expected otlp, console or none")
    protocol = first(environ, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf"
    if protocol != "http/protobuf" and "otlp" in exporters:
        raise ConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not supported; the gateway sends http/protobuf"
        )
    endpoint = first(environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if not endpoint:
        base = first(environ, "OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318"
        endpoint = base.rstrip("/") + "/v1/traces"
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("OTEL_EXPORTER_OTLP_ENDPOINT: expected an http:// or https:// URL with a host")
    compression = first(environ, "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION") or "none"
    if compression not in ("gzip", "none"):
        raise ConfigError(f"OTEL_EXPORTER_OTLP_COMPRESSION: {compression!r} is not supported; expected gzip or none")
    files = {
        name: first(environ, f"OTEL_EXPORTER_OTLP_TRACES_{name}", f"OTEL_EXPORTER_OTLP_{name}") or None
        for name in ("CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY")
    }
    for name, path in files.items():
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"OTEL_EXPORTER_OTLP_{name}: {path} is not a readable file")
    resource: dict[str, otlp.AttributeValue] = dict(pairs(environ, "OTEL_RESOURCE_ATTRIBUTES"))
    resource["service.name"] = first(environ, "OTEL_SERVICE_NAME") or str(resource.get("service.name", "chatgate"))
    resource.setdefault("service.version", service_version)
    resource.update({"telemetry.sdk.language": "python", "telemetry.sdk.name": "chatgate"})
    max_queue = number(environ, "OTEL_BSP_MAX_QUEUE_SIZE", 2048, 1)
    headers = pairs(environ, "OTEL_EXPORTER_OTLP_HEADERS") | pairs(environ, "OTEL_EXPORTER_OTLP_TRACES_HEADERS")
    timeout_ms = number(environ, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", 0) or number(
        environ, "OTEL_EXPORTER_OTLP_TIMEOUT", 10000, 1
    )
    return TracingSettings(
        sampler=sampler_from(environ),
        resource=resource,
        exporters=exporters,
        endpoint=endpoint,
        headers=headers,
        timeout=timeout_ms / 1000,
        gzip=compression == "gzip",
        certificate=files["CERTIFICATE"],
        client_certificate=files["CLIENT_CERTIFICATE"],
        client_key=files["CLIENT_KEY"],
        schedule_delay=number(environ, "OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000,
        max_queue=max_queue,
        max_batch=min(max_queue, number(environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, 1)),
    )


# --- the request path ---------------------------------------------------------


def parse_traceparent(value: str) -> tuple[int, int, int] | None:
    """(trace id, parent span id, flags) from a W3C ``traceparent``; None when it is not valid."""
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff" or (parts[0] == "00" and len(parts) != 4):
        return None
    version, trace, parent, flags = parts[:4]
    if len(trace) != 32 or len(parent) != 16 or len(flags) != 2:
        return None
    if not set(version + trace + parent + flags) <= LOWER_HEX:
        return None
    trace_id, parent_id = int(trace, 16), int(parent, 16)
    if trace_id == 0 or parent_id == 0:
        return None
    return trace_id, parent_id, int(flags, 16)


LOWER_HEX = frozenset("0123456789abcdef")


# OTLP span flags: bit 0 sampled; bit 8 "whether the parent is remote is known", bit 9 "it is".
LOCAL_PARENT = 0x101
REMOTE_PARENT = 0x301


class Tracing:
    def __init__(self, settings: TracingSettings, export: BatchExport) -> None:
        self.sampler = settings.sampler
        self._export = export

    def start(self, exchange: Exchange) -> None:
        parent = parse_traceparent(exchange.traceparent) if exchange.traceparent else None
        if parent is None:
            trace_id, parent_id = random.getrandbits(128) or 1, 0
            flags = LOCAL_PARENT if self.sampler.sampled(trace_id, None) else 0
        else:
            trace_id, parent_id, parent_flags = parent
            flags = REMOTE_PARENT if self.sampler.sampled(trace_id, parent_flags) else 0
        if exchange.protocol == "grpc":
            attributes: dict[str, otlp.AttributeValue] = {
                "chatgate.request_id": exchange.request_id,
                "rpc.system": "grpc",
                "rpc.method": exchange.route,
            }
        else:
            attributes = {
                "chatgate.request_id": exchange.request_id,
                "http.request.method": "POST",
                "http.route": exchange.route,
            }
        exchange.span = Span(trace_id, parent_id, flags, exchange.route, otlp.KIND_SERVER, attributes)

    def end(self, exchange: Exchange, duration: float) -> None:
        span: Span = exchange.span
        if not span.sampled:
            return
        attributes = span.attributes
        attributes.update(genai_attributes(exchange))
        attributes["chatgate.caller"] = exchange.caller.name
        attributes["chatgate.attempts"] = exchange.attempts
        if exchange.session:
            attributes["session.id"] = exchange.session  # OpenTelemetry's semantic name
        if exchange.agent:
            attributes["gen_ai.agent.id"] = exchange.agent
        if exchange.parent_agent:
            attributes["chatgate.parent_agent_id"] = exchange.parent_agent
        if exchange.outcome != "ok":
            span.fail(exchange.outcome)
        span.end_ns = time.time_ns()
        self._export.add(span)

    def attempt(self, call: ProviderCall) -> Callable[[str], None]:
        """Starts a client span for one upstream attempt; the returned function ends it with the outcome."""
        parent: Span | None = call.exchange.span
        if parent is None or not parent.sampled:
            return ignore
        model = call.model
        span = Span(
            parent.trace_id,
            parent.span_id,
            LOCAL_PARENT,
            f"chat {model.upstream_id}",
            otlp.KIND_CLIENT,
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": model.owned_by or model.provider,
                "gen_ai.request.model": model.upstream_id,
                "chatgate.upstream": model.provider,
                "chatgate.attempt": call.attempt,
            },
        )

        def end(outcome: str) -> None:
            if call.key:
                span.attributes["chatgate.upstream_key"] = call.key  # the key's alias, never the key
            if outcome != "ok":
                span.fail(outcome)
            span.end_ns = time.time_ns()
            self._export.add(span)

        return end

    def shutdown(self) -> None:
        self._export.stop()


def ignore(outcome: str) -> None:
    return None


def genai_attributes(exchange: Exchange) -> dict[str, otlp.AttributeValue]:
    attributes: dict[str, otlp.AttributeValue] = {"gen_ai.operation.name": "chat"}
    if exchange.model_asked:
        attributes["gen_ai.request.model"] = exchange.model_asked
    if exchange.model_served:
        attributes["gen_ai.response.model"] = exchange.model_served
    if exchange.usage is not None:
        attributes["gen_ai.usage.input_tokens"] = exchange.usage.prompt_tokens
        attributes["gen_ai.usage.output_tokens"] = exchange.usage.completion_tokens
        details = exchange.usage.prompt_tokens_details
        attributes["gen_ai.usage.cache_read.input_tokens"] = details.cached_tokens
        attributes["gen_ai.usage.cache_creation.input_tokens"] = details.cache_creation_tokens
    if exchange.finish_reasons:
        attributes["gen_ai.response.finish_reasons"] = list(exchange.finish_reasons)
    if exchange.upstream_request_id:
        attributes["gen_ai.response.id"] = exchange.upstream_request_id
    return attributes


# --- export -------------------------------------------------------------------


class Sender(Protocol):
    def encode(self, span: Span) -> bytes:
        """One finished span in the exporter's format (run on the event loop as the span ends)."""
        ...

    def send(self, spans: list[bytes]) -> None:
        """Delivers a batch of encoded spans (run on the export thread; may block)."""
        ...


class BatchExport:
    """Each finished span is encoded as it ends, on the event loop (a few microseconds), and the
    encoded spans go in batches to a thread that only sends them: every ``schedule_delay``, or as
    soon as a batch is full. The thread holds the GIL only briefly, so it never competes with the
    event loop for long; a backlog beyond the queue size drops spans (counted, never blocking)."""

    def __init__(self, settings: TracingSettings, senders: list[Sender]) -> None:
        self._settings = settings
        self._senders = senders
        self._pending: list[list[bytes]] = [[] for _ in senders]
        self._count = 0
        self._timer: asyncio.TimerHandle | None = None
        self._jobs: queue.SimpleQueue[tuple[list[list[bytes]], int] | None] = queue.SimpleQueue()
        self._backlog = 0  # spans handed to the thread and not yet sent
        self._lock = threading.Lock()
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="chatgate-trace-export", daemon=True)
        self._thread.start()

    def add(self, span: Span) -> None:
        for sender, pending in zip(self._senders, self._pending, strict=True):
            pending.append(sender.encode(span))
        self._count += 1
        if self._count >= self._settings.max_batch:
            self.flush()
        elif self._timer is None:
            with contextlib.suppress(RuntimeError):  # no running loop: sent when full or at stop
                self._timer = asyncio.get_running_loop().call_later(self._settings.schedule_delay, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._count:
            return
        batches, count = self._pending, self._count
        self._pending, self._count = [[] for _ in self._senders], 0
        with self._lock:
            if self._backlog + count > self._settings.max_queue:
                self.dropped += count
                return
            self._backlog += count
        self._jobs.put((batches, count))

    def stop(self) -> None:
        """Sends what is pending (bounded by the export timeout), then ends the thread."""
        self.flush()
        self._jobs.put(None)
        self._thread.join(self._settings.timeout + 1)
        if self.dropped:
            log.warning("tracing: %d spans were dropped because the export queue was full", self.dropped)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            batches, count = job
            for sender, batch in zip(self._senders, batches, strict=True):
                try:
                    sender.send(batch)
                except Exception:  # an exporter bug must not end tracing for the process
                    log.exception("tracing: exporting %d spans failed", count)
            with self._lock:
                self._backlog -= count


class OtlpHttpSender:
    """POSTs batches to the OTLP/HTTP endpoint over one kept-alive connection; retries what
    OpenTelemetry's OTLP exporters treat as retryable (429, 502, 503, 504, a broken connection) within the
    export timeout. Failures are logged once per outage, with the endpoint's host and never
    its headers (they usually carry credentials)."""

    RETRYABLE = frozenset({429, 502, 503, 504})

    def __init__(self, settings: TracingSettings) -> None:
        self._settings = settings
        parts = urlsplit(settings.endpoint)
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname or "", parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._where = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"
        self._headers = {
            **settings.headers,
            "content-type": "application/x-protobuf",
            "user-agent": "chatgate-otlp",
            **({"content-encoding": "gzip"} if settings.gzip else {}),
        }
        self._scope = (SCOPE_NAME, str(settings.resource.get("service.version", "")))
        self._context = self._tls() if self._https else None
        self._connection: http.client.HTTPConnection | None = None
        self._failing = False

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self._settings.certificate)
        if self._settings.client_certificate:
            context.load_cert_chain(self._settings.client_certificate, self._settings.client_key)
        return context

    encode = staticmethod(otlp.span)

    def send(self, spans: list[bytes]) -> None:
        body = otlp.export_request(self._settings.resource, self._scope, spans)
        if self._settings.gzip:
            body = gzip.compress(body, 6)
        deadline = time.monotonic() + self._settings.timeout
        delay = 0.5
        while True:
            problem = self._post(body, max(0.1, deadline - time.monotonic()))
            if problem is None:
                if self._failing:
                    log.info("tracing: exports to %s work again", self._where)
                    self._failing = False
                return
            retryable, reason = problem
            if not retryable or time.monotonic() + delay >= deadline:
                if not self._failing:
                    log.warning(
                        "tracing: could not export %d spans to %s (%s); spans are dropped until it answers",
                        len(spans),
                        self._where,
                        reason,
                    )
                    self._failing = True
                return
            time.sleep(delay)
            delay *= 2

    def _post(self, body: bytes, timeout: float) -> tuple[bool, str] | None:
        """None when the collector took the batch, else (worth retrying, why not)."""
        try:
            connection = self._connection = self._connection or self._connect(timeout)
            connection.timeout = timeout
            connection.request("POST", self._path, body, self._headers)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._close()
            return True, type(exc).__name__
        if response.will_close:
            self._close()
        if 200 <= response.status < 300:
            return None
        return response.status in self.RETRYABLE, f"HTTP {response.status}"

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._context)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


SPAN_KINDS = {otlp.KIND_SERVER: "SERVER", otlp.KIND_CLIENT: "CLIENT"}


class ConsoleSender:
    """One JSON line per span on standard output (``OTEL_TRACES_EXPORTER=console``)."""

    def __init__(self, settings: TracingSettings) -> None:
        self._resource = settings.resource

    def encode(self, span: Span) -> bytes:
        return orjson.dumps(
            {
                "name": span.name,
                "trace_id": f"{span.trace_id:032x}",
                "span_id": f"{span.span_id:016x}",
                "parent_id": f"{span.parent_id:016x}" if span.parent_id else None,
                "kind": SPAN_KINDS.get(span.kind, "INTERNAL"),
                "start_time_unix_nano": span.start_ns,
                "end_time_unix_nano": span.end_ns,
                "status": {"code": "ERROR", "message": span.error} if span.error else {"code": "UNSET"},
                "attributes": span.attributes,
                "resource": self._resource,
            }
        )

    def send(self, spans: list[bytes]) -> None:
        sys.stdout.buffer.write(b"\n".join(spans) + b"\n")
        sys.stdout.flush()


def from_environment(environ: Mapping[str, str], service_version: str) -> Tracing:
    settings = settings_from(environ, service_version)
    senders: list[Sender] = []
    if "otlp" in settings.exporters:
        senders.append(OtlpHttpSender(settings))
    if "console" in settings.exporters:
        senders.append(ConsoleSender(settings))
    log.info("tracing on: spans go to %s", " and ".join(settings.exporters))
    return Tracing(settings, BatchExport(settings, senders))
