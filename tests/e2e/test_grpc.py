"""The gRPC surface through generated stubs: completions, models, health, reflection, rich errors."""

from __future__ import annotations

import json

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from chatgate.v1 import chat_pb2, chat_service_pb2, chat_service_pb2_grpc
from tests.support import ROOT, Gateway, Simulator, grpc_request, marker

Stub = chat_service_pb2_grpc.ChatCompletionServiceStub


def rich_details(error: grpc.RpcError) -> dict[str, object]:
    """The google.rpc.Status details from the trailers, by type name."""
    raw = dict(error.trailing_metadata())["grpc-status-details-bin"]  # type: ignore[attr-defined]
    status = status_pb2.Status.FromString(raw)
    found: dict[str, object] = {}
    for detail in status.details:
        for cls in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.RetryInfo,
            error_details_pb2.RequestInfo,
            error_details_pb2.BadRequest,
        ):
            if detail.Is(cls.DESCRIPTOR):
                message = cls()
                detail.Unpack(message)
                found[cls.__name__] = message
    return found


def test_unary(stub: Stub) -> None:
    reply, call = stub.CreateChatCompletion.with_call(grpc_request("Hello there"), timeout=10)
    assert reply.choices[0].message.content[0].text == "[chatgate simulator] You said: Hello there."
    assert reply.choices[0].finish_reason == chat_pb2.FINISH_REASON_STOP
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    metadata = dict(call.trailing_metadata())
    # Positive, not merely non-negative: the value is clamped at 0, so `>= 0` could not fail.
    assert float(metadata["x-chatgate-overhead-ms"]) > 0 and metadata["x-upstream-request-id"].startswith("req_sim_")
    assert metadata["x-request-id"].startswith("req_")  # the gateway's own id names the call
    assert reply.gateway.overhead_ms > 0 and not reply.gateway.adjustments


def test_streaming(stub: Stub) -> None:
    request = grpc_request("Stream it", stream_options=chat_pb2.StreamOptions(include_usage=True))
    chunks = list(stub.StreamChatCompletion(request, timeout=10))
    assert chunks[0].choices[0].delta.role == chat_pb2.ROLE_ASSISTANT
    text = "".join(c.choices[0].delta.content for c in chunks if c.choices)
    assert text == "[chatgate simulator] You said: Stream it."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == chat_pb2.FINISH_REASON_STOP
    assert not chunks[-1].choices and chunks[-1].usage.completion_tokens == 6


def test_list_models(stub: Stub) -> None:
    models = stub.ListModels(chat_service_pb2.ListModelsRequest(), timeout=10).models
    assert {"claude-3.5-sonnet", "claude-3.5-haiku", "claude-sonnet-4-20250514", "claude-opus-4-20250514"} <= {
        m.id for m in models
    }
    assert all(m.max_output_tokens > 0 and m.owned_by == "anthropic" for m in models)


def test_health_checking(grpc_channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(grpc_channel)
    for service in ("", "chatgate.v1.ChatCompletionService"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as caught:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]


def test_reflection_lists_the_service(grpc_channel: grpc.Channel) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(grpc_channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    reply = next(iter(reflection.ServerReflectionInfo(iter([request]), timeout=5)))
    assert "chatgate.v1.ChatCompletionService" in {s.name for s in reply.list_services_response.service}


@pytest.mark.parametrize(
    ("text", "code", "reason"),
    [
        ("sim:status=529", grpc.StatusCode.UNAVAILABLE, "server_overloaded"),
        ("sim:status=500", grpc.StatusCode.UNAVAILABLE, "upstream_error"),
        ("sim:status=429 sim:retry_after=3", grpc.StatusCode.RESOURCE_EXHAUSTED, "upstream_rate_limited"),
        ("sim:status=400", grpc.StatusCode.INVALID_ARGUMENT, "upstream_invalid_request"),
        ("sim:status=403", grpc.StatusCode.PERMISSION_DENIED, "model_access_denied"),
    ],
    ids=["529", "500", "429", "400", "403"],
)
@pytest.mark.parametrize("rpc", ["CreateChatCompletion", "StreamChatCompletion"])
def test_upstream_errors_arrive_as_status_codes_with_details(
    stub: Stub, text: str, code: grpc.StatusCode, reason: str, rpc: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        result = getattr(stub, rpc)(grpc_request(text), timeout=10)
        list(result) if rpc == "StreamChatCompletion" else None
    assert caught.value.code() == code  # type: ignore[attr-defined]
    details = rich_details(caught.value)
    info = details["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain) == (reason, "chatgate.dev")
    assert "RequestInfo" in details
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        retry = details["RetryInfo"]
        assert isinstance(retry, error_details_pb2.RetryInfo) and retry.retry_delay.seconds == 3


def test_unknown_model_is_not_found(stub: Stub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.CreateChatCompletion(grpc_request("x", model="gpt-4o"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    info = rich_details(caught.value)["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo) and info.reason == "model_not_found"


@pytest.mark.parametrize(
    ("text", "reason"), [("sim:error_after=2", "server_overloaded"), ("sim:drop_after=2", "incomplete_stream")]
)
def test_a_failure_mid_stream_ends_with_a_non_ok_status_after_the_sent_chunks(
    stub: Stub, text: str, reason: str
) -> None:
    received = []
    with pytest.raises(grpc.RpcError) as caught:
        for chunk in stub.StreamChatCompletion(grpc_request(text), timeout=10):
            received.append(chunk)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert "".join(c.choices[0].delta.content for c in received if c.choices) == "[chatgate simulator] "
    info = rich_details(caught.value)["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo) and info.reason == reason


def test_adjustments_are_reported_in_trailing_metadata(stub: Stub) -> None:
    _, call = stub.CreateChatCompletion.with_call(grpc_request("x", temperature=1.5, seed=3), timeout=10)
    assert dict(call.trailing_metadata())["x-chatgate-adjusted"] == "temperature=adjusted, seed=dropped"


def test_a_deadline_cuts_a_stalled_upstream(stub: Stub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.CreateChatCompletion(grpc_request("sim:stall=5"), timeout=0.5)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]


def test_adjustments_are_in_the_reply_itself(stub: Stub) -> None:
    reply = stub.CreateChatCompletion(grpc_request("x", temperature=1.5, seed=3), timeout=10)
    assert [(a.param, a.action) for a in reply.gateway.adjustments] == [
        ("temperature", chat_pb2.ADJUSTMENT_ACTION_ADJUSTED),
        ("seed", chat_pb2.ADJUSTMENT_ACTION_DROPPED),
    ]
    assert all(a.detail for a in reply.gateway.adjustments)


def test_a_stream_reports_adjustments_in_initial_metadata_before_the_first_chunk(stub: Stub) -> None:
    call = stub.StreamChatCompletion(grpc_request("sim:words=20", seed=3), timeout=10)
    initial = dict(call.initial_metadata())  # blocks until the headers arrive, before any chunk is read
    assert initial["x-chatgate-adjusted"] == "seed=dropped"
    chunks = list(call)
    assert chunks and dict(call.trailing_metadata())["x-chatgate-adjusted"] == "seed=dropped"


def unknown_enum_requests() -> list[tuple[chat_service_pb2.ChatCompletionRequest, str]]:
    cases = []
    request = grpc_request("x")
    request.tool_choice.mode = 99  # type: ignore[assignment]
    cases.append((request, "tool_choice.mode"))
    request = grpc_request("x")
    request.messages[0].role = 42  # type: ignore[assignment]
    cases.append((request, "messages[0].role"))
    for name, path in (("reasoning_effort", "reasoning_effort"), ("compatibility", "compatibility")):
        request = grpc_request("x")
        setattr(request, name, 17)
        cases.append((request, path))
    request = grpc_request("x")
    request.response_format.type = 9  # type: ignore[assignment]
    cases.append((request, "response_format.type"))
    request = grpc_request("x")
    request.anthropic.thinking.type = 8  # type: ignore[assignment]
    cases.append((request, "anthropic.thinking.type"))
    request = grpc_request("x")
    request.messages[0].content[0].cache_control.ttl = 5  # type: ignore[assignment]
    cases.append((request, "messages[0].content[0].cache_control.ttl"))
    return cases


@pytest.mark.parametrize(("request_", "field"), unknown_enum_requests(), ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("rpc", ["CreateChatCompletion", "StreamChatCompletion"])
def test_an_enum_number_the_server_does_not_know_is_invalid_argument_naming_the_field(
    stub: Stub, request_: chat_service_pb2.ChatCompletionRequest, field: str, rpc: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        result = getattr(stub, rpc)(request_, timeout=10)
        list(result) if rpc == "StreamChatCompletion" else None
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    bad = rich_details(caught.value)["BadRequest"]
    assert isinstance(bad, error_details_pb2.BadRequest)
    assert [v.field for v in bad.field_violations] == [field]
    assert stub.CreateChatCompletion(grpc_request("still serving"), timeout=10).choices  # the server keeps serving


def test_invalid_fields_are_listed_as_field_violations(stub: Stub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.CreateChatCompletion(grpc_request("x", temperature=3.0), timeout=10)
    bad = rich_details(caught.value)["BadRequest"]
    assert isinstance(bad, error_details_pb2.BadRequest)
    assert [(v.field, bool(v.description)) for v in bad.field_violations] == [("temperature", True)]


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_answers_as_v1_and_v1alpha(grpc_channel: grpc.Channel, version: str) -> None:
    # v1 and v1alpha share their messages on the wire, so v1alpha's classes can speak v1.
    method = grpc_channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    listed = next(iter(method(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)))
    names = {s.name for s in listed.list_services_response.service}
    assert {"chatgate.v1.ChatCompletionService", f"grpc.reflection.{version}.ServerReflection"} <= names
    symbol = reflection_pb2.ServerReflectionRequest(file_containing_symbol="chatgate.v1.ChatCompletionService")
    described = next(iter(method(iter([symbol]), timeout=5)))
    assert described.file_descriptor_response.file_descriptor_proto


def test_the_published_service_config_retries_unavailable(gateway: Gateway, simulator: Simulator) -> None:
    config = (ROOT / "proto" / "chatgate" / "v1" / "service_config.json").read_text()
    options = [("grpc.service_config", config), ("grpc.enable_retries", 1)]
    tag = marker()
    with grpc.insecure_channel(gateway.grpc_target, options=options) as channel:
        retrying = chat_service_pb2_grpc.ChatCompletionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            retrying.CreateChatCompletion(grpc_request(f"{tag} sim:status=529 sim:retry_after=0"), timeout=20)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    attempts = json.loads(config)["methodConfig"][0]["retryPolicy"]["maxAttempts"]
    assert sum(tag in str(entry["body"]) for entry in simulator.received()) == attempts
