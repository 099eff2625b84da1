"""Every row of the error mapping table (docs/errors.md), over both protocols, whole and streamed.

For each upstream answer: the HTTP status, error JSON and headers; the OpenAI
SDK's exception class and how many attempts the SDK makes with its default
retries; the gRPC code and reason; and how many attempts the gateway itself
made upstream. The simulator counts every attempt, so the product of the two
retry layers is measured, not assumed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import httpx
import openai
import pytest
from google.rpc import error_details_pb2, status_pb2

from chatgate.v1 import chat_service_pb2_grpc
from tests.e2e.test_resilience import FAST_RETRIES, attempts
from tests.support import UPSTREAM_KEY, Gateway, Simulator, grpc_request, marker, start_gateway, start_simulator

MODEL = "claude-haiku-4-5"
OK = grpc.StatusCode


@dataclass(frozen=True)
class Row:
    fault: str
    status: int
    code: str
    sdk_error: type[openai.APIError]
    grpc_code: grpc.StatusCode
    gateway_attempts: int  # per client attempt
    # With the SDK's default of two retries. Where the gateway retried, it says `x-should-retry:
    # false`: attempts are the gateway's job once, never multiplied (3 x 3) by the SDK's.
    sdk_attempts: int
    # A cut body is malformed JSON for a whole reply; a stream cut after its first event is
    # `incomplete_stream`, a mid-stream row of its own (tests/e2e/test_resilience.py).
    whole_only: bool = False


ROWS = [
    Row("sim:status=400", 400, "upstream_invalid_request", openai.BadRequestError, OK.INVALID_ARGUMENT, 1, 1),
    Row("sim:status=403", 403, "model_access_denied", openai.PermissionDeniedError, OK.PERMISSION_DENIED, 1, 1),
    Row("sim:status=404", 404, "model_not_found", openai.NotFoundError, OK.NOT_FOUND, 1, 1),
    Row("sim:status=413", 413, "request_too_large", openai.APIStatusError, OK.INVALID_ARGUMENT, 1, 1),
    Row("sim:status=402", 402, "billing_error", openai.APIStatusError, OK.FAILED_PRECONDITION, 1, 1),
    Row("sim:status=409", 409, "conflict_error", openai.ConflictError, OK.ABORTED, 1, 3),
    Row("sim:spend_limit", 429, "insufficient_quota", openai.RateLimitError, OK.RESOURCE_EXHAUSTED, 1, 1),
    Row(
        "sim:status=429 sim:retry_after=3",
        429,
        "upstream_rate_limited",
        openai.RateLimitError,
        OK.RESOURCE_EXHAUSTED,
        1,
        3,
    ),
    Row("sim:status=500", 502, "upstream_error", openai.InternalServerError, OK.UNAVAILABLE, 3, 1),
    Row("sim:status=529", 503, "server_overloaded", openai.InternalServerError, OK.UNAVAILABLE, 3, 1),
    Row("sim:html=502", 502, "upstream_unavailable", openai.InternalServerError, OK.UNAVAILABLE, 3, 1),
    Row("sim:html=504", 504, "upstream_unavailable", openai.InternalServerError, OK.UNAVAILABLE, 3, 1),
    Row("sim:truncated", 502, "upstream_error", openai.InternalServerError, OK.UNAVAILABLE, 3, 1, whole_only=True),
]


def cases(modes: tuple[str, str]) -> list[object]:
    """Each row in each mode (whole, then streamed), leaving out streams for whole-only rows."""
    return [
        pytest.param(row, mode, id=f"{mode}-{row.fault.replace('sim:', '').replace(' ', '+')}")
        for row in ROWS
        for mode in modes
        if not (row.whole_only and mode == modes[1])
    ]


@pytest.fixture(scope="module")
def table_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    sim = start_simulator(tmp_path_factory.mktemp("table-sim"))
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def table_gateway(table_upstream: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    env = {**FAST_RETRIES, "ANTHROPIC_API_KEY": UPSTREAM_KEY, "ANTHROPIC_BASE_URL": table_upstream.url}
    gateway = start_gateway(tmp_path_factory.mktemp("table-gw"), env=env)
    yield gateway
    gateway.stop()


@pytest.mark.parametrize(("row", "mode"), cases(("whole", "stream")))
def test_http_and_the_openai_sdk(table_gateway: Gateway, table_upstream: Simulator, row: Row, mode: str) -> None:
    stream = mode == "stream"
    tag = marker()
    payload = {"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": f"{tag} {row.fault}"}]}
    response = httpx.post(table_gateway.http_url + "/v1/chat/completions", json=payload, timeout=30)
    assert response.status_code == row.status
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == row.code
    if not (row.sdk_attempts > 1):  # the SDK must not retry: either by status or by header
        assert row.status < 429 or response.headers.get("x-should-retry") == "false"
    assert attempts(table_upstream, tag) == row.gateway_attempts

    tag = marker()
    client = openai.OpenAI(base_url=table_gateway.http_url + "/v1", api_key="unused", timeout=30)  # default retries
    with pytest.raises(openai.APIStatusError) as caught:
        result = client.chat.completions.create(
            model=MODEL, stream=stream, messages=[{"role": "user", "content": f"{tag} {row.fault}"}]
        )
        if stream:
            list(result)  # type: ignore[call-overload]
    assert type(caught.value) is row.sdk_error and caught.value.status_code == row.status
    assert attempts(table_upstream, tag) == row.sdk_attempts * row.gateway_attempts


@pytest.mark.parametrize(("row", "rpc"), cases(("CreateChatCompletion", "StreamChatCompletion")))
def test_grpc(table_gateway: Gateway, table_upstream: Simulator, row: Row, rpc: str) -> None:
    tag = marker()
    stub = chat_service_pb2_grpc.ChatCompletionServiceStub(grpc.insecure_channel(table_gateway.grpc_target))
    with pytest.raises(grpc.RpcError) as caught:
        result = getattr(stub, rpc)(grpc_request(f"{tag} {row.fault}"), timeout=30)
        if rpc == "StreamChatCompletion":
            list(result)
    error = caught.value
    assert error.code() == row.grpc_code  # type: ignore[attr-defined]
    raw = dict(error.trailing_metadata())["grpc-status-details-bin"]  # type: ignore[attr-defined]
    reasons = []
    for detail in status_pb2.Status.FromString(raw).details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reasons.append(info.reason)
    assert reasons == [row.code]
    assert attempts(table_upstream, tag) == row.gateway_attempts
    if row.gateway_attempts > 1:  # retried already: no pushback that invites the client to retry
        assert dict(error.trailing_metadata()).get("grpc-retry-pushback-ms") == "-1"  # type: ignore[attr-defined]
