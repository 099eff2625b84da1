"""OpenTelemetry tracing, when the operator configures it with the standard `OTEL_*` variables.

A server span per request (the caller's W3C `traceparent` is its parent when
sent) and a client span per upstream attempt, with the attributes of
OpenTelemetry's GenAI semantic conventions. The SDK reads the exporter
endpoint, headers, sampler and batch settings from the environment itself.

When tracing is not configured this module is never imported: the request path
tests one global for ``None`` and pays nothing else (see ``tracing_configured``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from service.core import ProviderCall
from service.core.exchange import Exchange

log = logging.getLogger("chatgate")
PROPAGATOR = TraceContextTextMapPropagator()


class ServerSpan:
    """A request's span and the context token that made it current."""

    __slots__ = ("span", "token")

    def __init__(self, span: trace.Span, token: object) -> None:
        self.span, self.token = span, token

    @property
    def trace_id(self) -> str:
        return format(self.span.get_span_context().trace_id, "032x")


class Tracing:
    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("chatgate")

    def start(self, exchange: Exchange) -> None:
        parent = PROPAGATOR.extract({"traceparent": exchange.traceparent}) if exchange.traceparent else None
        span = self.tracer.start_span(
            exchange.route,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=server_attributes(exchange),
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        exchange.span = ServerSpan(span, token)

    def end(self, exchange: Exchange, duration: float) -> None:
        holder: ServerSpan = exchange.span
        span = holder.span
        span.set_attributes(genai_attributes(exchange))
        span.set_attribute("chatgate.caller", exchange.caller.name)
        span.set_attribute("chatgate.attempts", exchange.attempts)
        if exchange.outcome != "ok":
            span.set_attribute("error.type", exchange.outcome)
            span.set_status(Status(StatusCode.ERROR, exchange.outcome))
        span.end()
        with contextlib.suppress(ValueError):  # ended in another context (a generator closed elsewhere)
            otel_context.detach(holder.token)  # type: ignore[arg-type]

    def attempt(self, call: ProviderCall) -> Callable[[str], None]:
        """Starts a client span for one upstream attempt; the returned function ends it with the outcome."""
        span = self.tracer.start_span(
            f"chat {call.model.upstream_id}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": call.model.owned_by or call.model.provider,
                "gen_ai.request.model": call.model.upstream_id,
                "chatgate.upstream": call.model.provider,
                "chatgate.attempt": call.attempt,
            },
        )

        def end(outcome: str) -> None:
            if call.key:
                span.set_attribute("chatgate.upstream_key", call.key)
            if outcome != "ok":
                span.set_attribute("error.type", outcome)
                span.set_status(Status(StatusCode.ERROR, outcome))
            span.end()

        return end

    def shutdown(self) -> None:
        self.provider.shutdown()


def server_attributes(exchange: Exchange) -> dict[str, Any]:
    if exchange.protocol == "grpc":
        return {"chatgate.request_id": exchange.request_id, "rpc.system": "grpc", "rpc.method": exchange.route}
    return {"chatgate.request_id": exchange.request_id, "http.request.method": "POST", "http.route": exchange.route}


def genai_attributes(exchange: Exchange) -> dict[str, Any]:
    attributes: dict[str, Any] = {"gen_ai.operation.name": "chat"}
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


def from_environment(environ: Mapping[str, str], service_version: str) -> Tracing:
    """A tracer provider exporting in batches, off the request path, to the configured exporter."""
    resource = Resource.create(
        {"service.name": environ.get("OTEL_SERVICE_NAME", "chatgate"), "service.version": service_version}
    )
    provider = TracerProvider(resource=resource)  # the sampler comes from OTEL_TRACES_SAMPLER
    exporter: SpanExporter = (
        ConsoleSpanExporter()
        if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console"
        else OTLPSpanExporter()
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    log.info("tracing on: spans are exported with OpenTelemetry (%s)", type(exporter).__name__)
    return Tracing(provider)
