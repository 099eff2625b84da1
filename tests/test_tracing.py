"""Tracing without the OpenTelemetry SDK: the wire format (decoded with the official generated
OTLP classes), W3C trace context, the standard samplers, the OTEL_* variables, batching and the
OTLP/HTTP sender against a real local collector. The end-to-end spans are in tests/e2e/test_operations.py."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from service.core.exchange import Exchange
from service.observability import otlp
from service.observability.tracing import (
    BatchExport,
    ConfigError,
    OtlpHttpSender,
    Sampler,
    Span,
    Tracing,
    TracingSettings,
    parse_traceparent,
    settings_from,
)
from tests.otlp_collector import Collector, attribute_value, start_collector
from tests.support import eventually

TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT = 0x00F067AA0BA902B7


def settings(**environ: str) -> TracingSettings:
    return settings_from({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", **environ}, "9.9.9")


def finished(name: str = "chat", **attributes: otlp.AttributeValue) -> Span:
    span = Span(TRACE, PARENT, 0x301, name, otlp.KIND_SERVER, dict(attributes))
    span.end_ns = span.start_ns + 1_500_000
    return span


def decode(body: bytes) -> trace_service_pb2.ExportTraceServiceRequest:
    return trace_service_pb2.ExportTraceServiceRequest.FromString(body)


# --- the wire format ----------------------------------------------------------


def test_spans_encode_to_what_the_official_otlp_classes_read() -> None:
    ok = finished("/v1/chat/completions", route="/v1/chat/completions", count=3, negative=-2, ratio=0.25, cached=True)
    ok.attributes["gen_ai.response.finish_reasons"] = ["stop", "length"]
    ok.attributes["unicode"] = "żółw ✓"
    failed = Span(TRACE, ok.span_id, 0x101, "chat claude-haiku-4-5", otlp.KIND_CLIENT, {"long": "x" * 20_000})
    failed.fail("upstream_timeout")
    failed.end_ns = failed.start_ns + 7
    body = otlp.export_request(
        {"service.name": "gw", "n": 1}, ("chatgate", "9.9.9"), [otlp.span(ok), otlp.span(failed)]
    )

    request = decode(body)
    (resource_spans,) = request.resource_spans
    assert {a.key: attribute_value(a.value) for a in resource_spans.resource.attributes} == {
        "service.name": "gw",
        "n": 1,
    }
    (scope_spans,) = resource_spans.scope_spans
    assert (scope_spans.scope.name, scope_spans.scope.version) == ("chatgate", "9.9.9")
    server, client = scope_spans.spans
    assert server.trace_id == TRACE.to_bytes(16, "big") and server.span_id == ok.span_id.to_bytes(8, "big")
    assert server.parent_span_id == PARENT.to_bytes(8, "big")
    assert server.name == "/v1/chat/completions" and server.kind == trace_pb2.Span.SPAN_KIND_SERVER
    assert (server.start_time_unix_nano, server.end_time_unix_nano) == (ok.start_ns, ok.end_ns)
    assert server.flags == 0x301 and server.status.code == trace_pb2.Status.STATUS_CODE_UNSET
    assert {a.key: attribute_value(a.value) for a in server.attributes} == {
        "route": "/v1/chat/completions",
        "count": 3,
        "negative": -2,
        "ratio": 0.25,
        "cached": True,
        "gen_ai.response.finish_reasons": ["stop", "length"],
        "unicode": "żółw ✓",
    }
    assert client.kind == trace_pb2.Span.SPAN_KIND_CLIENT and client.parent_span_id == server.span_id
    assert client.status.code == trace_pb2.Status.STATUS_CODE_ERROR and client.status.message == "upstream_timeout"
    attributes = {a.key: attribute_value(a.value) for a in client.attributes}
    assert attributes == {"long": "x" * 20_000, "error.type": "upstream_timeout"}


def test_a_root_span_has_no_parent_field() -> None:
    root = Span(TRACE, 0, 0x101, "r", otlp.KIND_SERVER, {})
    root.end_ns = root.start_ns
    (span,) = (
        decode(otlp.export_request({}, ("chatgate", ""), [otlp.span(root)])).resource_spans[0].scope_spans[0].spans
    )
    assert span.parent_span_id == b"" and span.trace_id == TRACE.to_bytes(16, "big")


# --- W3C trace context and sampling ---------------------------------------------


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", (TRACE, PARENT, 1)),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", (TRACE, PARENT, 0)),
        (" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ", (TRACE, PARENT, 1)),
        ("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", (TRACE, PARENT, 1)),  # a later version
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", None),  # version 00 has four parts
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None),  # ff is never valid
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", None),  # lowercase only
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),  # all-zero trace id
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", None),  # all-zero parent
        ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", None),  # short trace id
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1", None),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bx-01", None),
        ("garbage", None),
        ("", None),
    ],
)
def test_traceparent(header: str, parsed: tuple[int, int, int] | None) -> None:
    assert parse_traceparent(header) == parsed


def test_samplers() -> None:
    always = settings().sampler
    assert always == Sampler(1.0, follow_parent=True)  # parentbased_always_on: the default
    assert always.sampled(TRACE, None) and always.sampled(TRACE, 1) and not always.sampled(TRACE, 0)
    assert not settings(OTEL_TRACES_SAMPLER="always_off").sampler.sampled(TRACE, 1)
    assert settings(OTEL_TRACES_SAMPLER="always_on").sampler.sampled(TRACE, 0)  # ignores the parent
    assert not settings(OTEL_TRACES_SAMPLER="parentbased_always_off").sampler.sampled(TRACE, None)
    half = settings(OTEL_TRACES_SAMPLER="traceidratio", OTEL_TRACES_SAMPLER_ARG="0.5").sampler
    # The decision reads the trace id's low 64 bits against ratio * 2^64: deterministic per trace.
    assert half.sampled((7 << 64) | (2**63 - 1), 0) and not half.sampled((7 << 64) | 2**63, 1)
    parent_half = settings(OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0.5").sampler
    assert parent_half.sampled(2**63, 1) and not parent_half.sampled(0, 0) and not parent_half.sampled(2**63, None)
    none = settings(OTEL_TRACES_SAMPLER="traceidratio", OTEL_TRACES_SAMPLER_ARG="0").sampler
    assert not any(none.sampled(t, None) for t in (0, 1, 2**64 - 1))


class Recorder:
    def __init__(self) -> None:
        self.spans: list[Span] = []

    def add(self, span: Span) -> None:
        self.spans.append(span)


def test_spans_of_a_request_follow_the_callers_trace_and_skip_unsampled_ones() -> None:
    recorder = Recorder()
    tracing = Tracing(settings(), recorder)  # type: ignore[arg-type]
    exchange = Exchange("req-1", "http", "/v1/chat/completions")
    exchange.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    tracing.start(exchange)
    exchange.model_asked = exchange.model_served = "claude-haiku-4-5"
    exchange.outcome = "upstream_timeout"
    tracing.end(exchange, 0.1)
    (span,) = recorder.spans
    assert (span.trace_id, span.parent_id, span.flags) == (TRACE, PARENT, 0x301)
    assert span.error == "upstream_timeout" and span.attributes["error.type"] == "upstream_timeout"
    assert span.attributes["gen_ai.request.model"] == "claude-haiku-4-5" and span.end_ns >= span.start_ns
    assert exchange.span.trace_id_hex == "4bf92f3577b34da6a3ce929d0e0e4736"  # what the access log prints

    unsampled = Exchange("req-2", "grpc", "/chatgate.v1.ChatService/CreateChatCompletion")
    unsampled.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
    tracing.start(unsampled)
    tracing.end(unsampled, 0.1)
    assert len(recorder.spans) == 1 and unsampled.span.trace_id == TRACE  # logged, not exported


# --- configuration ------------------------------------------------------------


def test_the_standard_variables_are_read() -> None:
    read = settings_from(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example:4318/",
            "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20abc,x-tenant = t1",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-tenant=t2",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,service.name=from-resource",
            "OTEL_BSP_SCHEDULE_DELAY": "250",
            "OTEL_BSP_MAX_QUEUE_SIZE": "100",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "512",
            "OTEL_TRACES_EXPORTER": "otlp,console",
        },
        "1.2.3",
    )
    assert read.endpoint == "https://collector.example:4318/v1/traces"
    assert read.headers == {"authorization": "Bearer abc", "x-tenant": "t2"}
    assert (read.timeout, read.gzip, read.schedule_delay, read.max_queue, read.max_batch) == (2.5, True, 0.25, 100, 100)
    assert read.resource["service.name"] == "from-resource" and read.resource["deployment.environment"] == "prod"
    assert read.resource["service.version"] == "1.2.3" and read.exporters == ("otlp", "console")
    named = settings_from(
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/custom", "OTEL_SERVICE_NAME": "gw"}, "1"
    )
    assert named.endpoint == "http://c:4318/custom" and named.resource["service.name"] == "gw"
    assert settings_from({"OTEL_TRACES_EXPORTER": "otlp"}, "1").endpoint == "http://localhost:4318/v1/traces"


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"OTEL_TRACES_SAMPLER": "mostly"}, "OTEL_TRACES_SAMPLER"),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "half"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://c/v1/traces"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, "OTEL_EXPORTER_OTLP_COMPRESSION"),
        ({"OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent/ca.pem"}, "OTEL_EXPORTER_OTLP_CERTIFICATE"),
        ({"OTEL_BSP_MAX_QUEUE_SIZE": "0"}, "OTEL_BSP_MAX_QUEUE_SIZE"),
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "-5"}, "OTEL_EXPORTER_OTLP_TIMEOUT"),
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_EXPORTER_OTLP_HEADERS": "token-sk-ant-secret"}, "OTEL_EXPORTER_OTLP_HEADERS"),
    ],
)
def test_a_bad_variable_names_itself_and_never_its_secret(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings(**environ)
    assert named in str(raised.value) and "sk-ant-secret" not in str(raised.value)


# --- batching and sending -------------------------------------------------------


class FakeSender:
    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []

    def encode(self, span: Span) -> bytes:
        return span.name.encode()

    def send(self, spans: list[bytes]) -> None:
        self.batches.append(spans)


def test_batches_go_out_when_full_and_at_stop_and_a_backlog_drops_spans() -> None:
    sender = FakeSender()
    export = BatchExport(settings(OTEL_BSP_MAX_EXPORT_BATCH_SIZE="2", OTEL_BSP_MAX_QUEUE_SIZE="4"), [sender])
    for n in range(5):
        export.add(finished(f"s{n}"))
    assert eventually(lambda: len(sender.batches) == 2)
    export.stop()
    assert sender.batches == [[b"s0", b"s1"], [b"s2", b"s3"], [b"s4"]] and export.dropped == 0

    class Stuck(FakeSender):
        def send(self, spans: list[bytes]) -> None:
            time.sleep(0.3)

    stuck = BatchExport(settings(OTEL_BSP_MAX_EXPORT_BATCH_SIZE="2", OTEL_BSP_MAX_QUEUE_SIZE="4"), [Stuck()])
    for n in range(10):
        stuck.add(finished(f"s{n}"))
    stuck.stop()
    assert stuck.dropped == 6  # two batches of two waited; the rest could not queue


@pytest.fixture
def collector() -> Iterator[Collector]:
    found = start_collector()
    yield found
    found.stop()


def test_the_sender_delivers_retries_a_busy_collector_and_reports_an_outage_once(
    collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    sender = OtlpHttpSender(
        settings_from(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
                "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer sk-collector-secret",
                "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
                "OTEL_EXPORTER_OTLP_TIMEOUT": "3000",
            },
            "1",
        )
    )
    collector.failures = [503]  # busy once: retried within the timeout
    sender.send([otlp.span(finished("a", n=1)), otlp.span(finished("b"))])
    assert [s.name for s in collector.spans] == ["a", "b"] and collector.spans[0].attributes == {"n": 1}
    assert collector.headers[-1]["authorization"] == "Bearer sk-collector-secret"
    assert collector.headers[-1]["content-type"] == "application/x-protobuf"

    with caplog.at_level(logging.INFO, logger="chatgate"):
        collector.failures = [400, 400]  # not retryable: dropped, reported once
        sender.send([otlp.span(finished("c"))])
        sender.send([otlp.span(finished("d"))])
        sender.send([otlp.span(finished("e"))])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "HTTP 400" in warnings[0].getMessage()
    assert any("work again" in r.getMessage() for r in caplog.records)
    assert "sk-collector-secret" not in caplog.text
    assert [s.name for s in collector.spans] == ["a", "b", "e"]


def test_repeated_attributes_encode_the_same_and_true_is_not_one() -> None:
    spans = [finished("s", flag=True, one=1, real=1.0, route="/r") for _ in range(3)]
    spans.append(finished("s", flag=1, one=True, real=1, route="/r"))  # equal values of other types
    body = otlp.export_request({}, ("chatgate", ""), [otlp.span(s) for s in spans])
    decoded = decode(body).resource_spans[0].scope_spans[0].spans
    for span in decoded[:3]:
        assert {a.key: a.value.WhichOneof("value") for a in span.attributes} == {
            "flag": "bool_value",
            "one": "int_value",
            "real": "double_value",
            "route": "string_value",
        }
    assert {a.key: a.value.WhichOneof("value") for a in decoded[3].attributes} == {
        "flag": "int_value",
        "one": "bool_value",
        "real": "int_value",
        "route": "string_value",
    }
