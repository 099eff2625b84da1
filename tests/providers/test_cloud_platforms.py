"""The platform seam's pure parts, as tables: model ids, request shapes, error shapes, and AWS's
event-stream framing read back as Anthropic's SSE (frames written by the simulator's encoder,
read by botocore's decoder, split at every byte boundary)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from chatgate.v1 import chat_service_pb2
from service.core import ModelInfo, ProviderCall
from service.core.compat import CompatReport
from service.core.errors import (
    InvalidRequest,
    ModelNotFound,
    RateLimited,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamOverloaded,
)
from service.providers.anthropic.errors import error_from_response
from service.providers.anthropic.request import AnthropicRequest
from service.providers.bedrock import errors as bedrock_errors
from service.providers.bedrock import models as bedrock_models
from service.providers.bedrock.eventstream import sse_from_event_stream
from service.providers.bedrock.platform import BedrockInvoke, BedrockMessages
from service.providers.vertex import models as vertex_models
from service.providers.vertex import platform as vertex
from service.providers.vertex.tokens import TokenSource
from service.simulator.platforms import bedrock_to_anthropic, encode_frame
from service.transport import SSEDecoder


@pytest.mark.parametrize(
    ("anthropic_id", "profile", "bedrock_id"),
    [
        ("claude-haiku-4-5-20251001", "", "anthropic.claude-haiku-4-5-20251001-v1:0"),
        ("claude-haiku-4-5-20251001", "us", "us.anthropic.claude-haiku-4-5-20251001-v1:0"),
        ("claude-opus-5-5", "global", "global.anthropic.claude-opus-5-5-v1"),
        ("anthropic.claude-x-v2:0", "us", "anthropic.claude-x-v2:0"),  # already Bedrock's: kept
        ("eu.anthropic.claude-x-v1:0", "", "eu.anthropic.claude-x-v1:0"),
    ],
)
def test_bedrock_model_ids(anthropic_id: str, profile: str, bedrock_id: str) -> None:
    assert bedrock_models.model_id(anthropic_id, profile) == bedrock_id
    assert bedrock_to_anthropic(bedrock_id) == bedrock_models.anthropic_id(bedrock_id)


@pytest.mark.parametrize(
    ("anthropic_id", "vertex_id"),
    [
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5@20251001"),
        ("claude-opus-5-5", "claude-opus-5-5"),
        ("claude-sonnet-4@20250514", "claude-sonnet-4@20250514"),
    ],
)
def test_vertex_model_ids(anthropic_id: str, vertex_id: str) -> None:
    assert vertex_models.model_id(anthropic_id) == vertex_id


# --- request shapes -----------------------------------------------------------------------------


def call(upstream_id: str, *, strict: bool = False) -> ProviderCall:
    model = ModelInfo("m", upstream_id, "M", 1000, provider="cloud")
    return ProviderCall(chat_service_pb2.ChatCompletionRequest(model="m"), model, CompatReport(strict=strict))


BODY = {"model": "claude-haiku-4-5-20251001", "max_tokens": 10, "messages": [], "stream": True}
BETAS = ["interleaved-thinking-2025-05-14", "made-up-2026-01-01"]


def test_invoke_moves_the_model_into_the_url_and_the_version_and_betas_into_the_body() -> None:
    platform = BedrockInvoke("https://rt.example", None)
    target = call("us.anthropic.claude-haiku-4-5-20251001-v1:0")
    out = platform.translated(AnthropicRequest(dict(BODY), betas=list(BETAS)), target, stream=True)
    assert (
        out.url == "https://rt.example/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke-with-response-stream"
    )
    body = orjson.loads(out.body)
    assert "model" not in body and "stream" not in body
    assert body["anthropic_version"] == "bedrock-2023-05-31"
    assert body["anthropic_beta"] == ["interleaved-thinking-2025-05-14"]
    assert out.headers == {"accept": "application/vnd.amazon.eventstream"}
    assert [f"{a.param}={a.action}" for a in target.report.items] == ["anthropic-beta=dropped"]


def test_invoke_counts_through_bedrocks_count_tokens_envelope() -> None:
    out = BedrockInvoke("https://rt.example", None).counted(AnthropicRequest(dict(BODY)), call("anthropic.x-v1:0"))
    assert out.url.endswith("/model/anthropic.x-v1%3A0/count-tokens")
    inner = orjson.loads(base64.b64decode(orjson.loads(out.body)["input"]["invokeModel"]["body"]))
    assert inner["anthropic_version"] == "bedrock-2023-05-31" and "model" not in inner


def test_the_messages_endpoint_keeps_anthropics_body_and_header() -> None:
    platform = BedrockMessages("https://mantle.example/anthropic", None)
    out = platform.translated(
        AnthropicRequest(dict(BODY), betas=["interleaved-thinking-2025-05-14"]), call("x"), stream=True
    )
    assert out.url == "https://mantle.example/anthropic/v1/messages"
    assert orjson.loads(out.body) == BODY
    assert out.headers == {"anthropic-beta": "interleaved-thinking-2025-05-14"}
    assert platform.headers["anthropic-version"] == "2023-06-01"


def test_vertex_names_the_model_in_the_url_and_the_version_in_the_body() -> None:
    class Tokens:
        token = "ya29.t"

        async def refresh(self) -> None:
            return None

        def drop(self) -> bool:
            return True

    platform = vertex.Vertex("https://v.example", "proj", "us-east5", Tokens(), None)  # type: ignore[arg-type]
    out = platform.translated(AnthropicRequest(dict(BODY)), call("claude-haiku-4-5@20251001"), stream=True)
    assert out.url == (
        "https://v.example/v1/projects/proj/locations/us-east5/publishers/anthropic/models/"
        "claude-haiku-4-5@20251001:streamRawPredict"
    )
    body = orjson.loads(out.body)
    assert "model" not in body and body["anthropic_version"] == "vertex-2023-10-16" and body["stream"] is True
    counted = orjson.loads(platform.counted(AnthropicRequest(dict(BODY)), call("claude-haiku-4-5@20251001")).body)
    assert counted["model"] == "claude-haiku-4-5@20251001" and "max_tokens" not in counted


def test_strict_refuses_a_beta_the_platform_lacks_naming_it() -> None:
    with pytest.raises(InvalidRequest) as refused:
        BedrockMessages("https://m", None).translated(
            AnthropicRequest(dict(BODY), betas=["made-up-2026-01-01"]), call("x", strict=True), stream=False
        )
    assert refused.value.param == "anthropic-beta" and "made-up-2026-01-01" in refused.value.message


# --- error shapes ---------------------------------------------------------------------------------


def aws(name: str, status: int, message: str = "m") -> tuple[int, dict[str, str], bytes]:
    return status, {"x-amzn-errortype": f"{name}:http://internal.amazon.com/coral/"}, orjson.dumps({"message": message})


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (aws("ThrottlingException", 429), RateLimited),
        (aws("ServiceUnavailableException", 503), UpstreamOverloaded),
        (aws("InvalidSignatureException", 403), UpstreamAuthFailed),
        (aws("UnrecognizedClientException", 403), UpstreamAuthFailed),
        (aws("ValidationException", 400), InvalidRequest),
        (aws("ResourceNotFoundException", 404), ModelNotFound),
        ((500, {}, b"<html>oops</html>"), UpstreamError),
    ],
)
def test_bedrock_errors_read_as_anthropics(reply: tuple[int, dict[str, str], bytes], expected: type) -> None:
    status, headers, body = reply
    error = error_from_response(status, headers, bedrock_errors.error_body(status, headers, body))
    assert isinstance(error, expected)
    assert error.upstream_status == status


def google(status: int, name: str) -> bytes:
    return orjson.dumps({"error": {"code": status, "message": "m", "status": name}})


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, google(401, "UNAUTHENTICATED"), UpstreamAuthFailed),
        (429, google(429, "RESOURCE_EXHAUSTED"), RateLimited),
        (404, google(404, "NOT_FOUND"), ModelNotFound),
        (529, b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}', UpstreamOverloaded),
    ],
)
def test_vertex_errors_read_as_anthropics(status: int, body: bytes, expected: type) -> None:
    error = error_from_response(status, {}, vertex.error_body(status, {}, body))
    assert isinstance(error, expected)


# --- event-stream framing ------------------------------------------------------------------------


EVENTS = [
    {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 3}}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    {"type": "message_stop"},
]


def chunk_frame(event: dict[str, object]) -> bytes:
    payload = orjson.dumps({"bytes": base64.b64encode(orjson.dumps(event)).decode(), "p": "ab"})
    return encode_frame(
        {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}, payload
    )


async def reads_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


def decoded(data: bytes, size: int) -> list[tuple[str, dict[str, object]]]:
    async def run() -> list[bytes]:
        return [raw async for raw in sse_from_event_stream(reads_of(data, size))]

    decoder = SSEDecoder()
    return [(e.event, orjson.loads(e.data)) for raw in asyncio.run(run()) for e in decoder.feed(raw)]


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_event_stream_frames_read_as_anthropic_sse_however_they_are_split(size: int) -> None:
    data = b"".join(chunk_frame(e) for e in EVENTS)
    assert decoded(data, size) == [(str(e["type"]), e) for e in EVENTS]


def test_an_exception_frame_reads_as_an_error_event() -> None:
    frame = encode_frame(
        {":exception-type": "throttlingException", ":content-type": "application/json", ":message-type": "exception"},
        orjson.dumps({"message": "Too many requests"}),
    )
    ((name, event),) = decoded(chunk_frame(EVENTS[0])[0:0] + frame, 1000)
    assert name == "error"
    assert event == {"type": "error", "error": {"type": "rate_limit_error", "message": "Too many requests"}}


@pytest.mark.parametrize("spoil", [-1, 5, 20], ids=["message-crc", "prelude-crc", "header"])
def test_a_corrupted_frame_is_a_malformed_upstream_reply(spoil: int) -> None:
    good, bad = chunk_frame(EVENTS[0]), bytearray(chunk_frame(EVENTS[1]))
    bad[spoil] ^= 0xFF
    with pytest.raises(UpstreamError) as failed:
        decoded(good + bytes(bad), 1000)
    assert "malformed" in failed.value.message


def test_a_beta_the_clouds_name_otherwise_is_sent_under_their_name() -> None:
    target = call("x")
    out = BedrockMessages("https://m", None).translated(
        AnthropicRequest(dict(BODY), betas=["advanced-tool-use-2025-11-20", "made-up-2026-01-01", "other-2026-02-02"]),
        target,
        stream=False,
    )
    assert out.headers == {"anthropic-beta": "tool-search-tool-2025-10-19"}
    assert [f"{a.param}={a.action}" for a in target.report.items] == [
        "anthropic-beta=adjusted",
        "anthropic-beta=dropped",
    ]
    assert "`made-up-2026-01-01`, `other-2026-02-02`" in target.report.items[1].detail


# --- Vertex tokens ----------------------------------------------------------------------------


class Issuing:
    """Stands in for google-auth credentials: each refresh issues the next token, valid for an hour."""

    def __init__(self) -> None:
        self.issued = 0
        self.token: str | None = None
        self.expiry: datetime | None = None

    def refresh(self, request: object) -> None:
        self.issued += 1
        self.token = f"t{self.issued}"
        self.expiry = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1)


def test_a_refused_token_is_replaced_once_then_the_credential_is_refused() -> None:
    credentials = Issuing()
    source = TokenSource(credentials, margin=60)  # type: ignore[arg-type]

    async def scenario() -> list[object]:
        await source.refresh()
        seen: list[object] = [source.token]
        await source.refresh()  # fresh: nothing renewed
        seen.append(credentials.issued)
        seen.append(source.drop())  # a stale token refused: worth a retry with a new one
        await source.refresh()
        seen.append(source.token)
        seen.append(source.drop())  # its replacement refused at once: the credential is refused
        await source.refresh()
        seen.append(source.token)
        return seen

    assert asyncio.run(scenario()) == ["t1", 1, True, "t2", False, "t3"]


def native_call(body: dict[str, object], upstream_id: str, *, strict: bool = False) -> ProviderCall:
    from service.core import NativeRequest

    native = NativeRequest("messages", "m", orjson.dumps(body), stream=False)
    model = ModelInfo("m", upstream_id, "M", 1000, provider="cloud")
    return ProviderCall(native, model, CompatReport(strict=strict))


FIRST_PARTY = {"model": "m", "max_tokens": 5, "messages": [], "mcp_servers": [{"type": "url", "url": "https://x"}]}


@pytest.mark.parametrize(
    "platform",
    [BedrockMessages("https://m", None), BedrockInvoke("https://r", None)],
    ids=["bedrock-messages", "bedrock-invoke"],
)
def test_first_party_fields_are_left_out_on_the_clouds_and_reported(platform: BedrockMessages) -> None:
    target = native_call(FIRST_PARTY, "anthropic.x-v1:0")
    body = orjson.loads(platform.native(target).body)
    assert "mcp_servers" not in body and body["max_tokens"] == 5
    assert [f"{a.param}={a.action}" for a in target.report.items] == ["mcp_servers=dropped"]
    with pytest.raises(InvalidRequest) as refused:
        platform.native(native_call(FIRST_PARTY, "anthropic.x-v1:0", strict=True))
    assert refused.value.param == "mcp_servers"


def test_a_native_body_without_such_fields_goes_through_the_messages_endpoint_as_written() -> None:
    raw = b'{"model":"m",  "max_tokens":5,"messages":[]}'
    from service.core import NativeRequest

    native = NativeRequest("messages", "m", raw)
    out = BedrockMessages("https://m", None).native(
        ProviderCall(native, ModelInfo("m", "anthropic.x-v1:0", "M", 1, provider="c"), CompatReport(strict=False))
    )
    assert out.body == b'{"model":"anthropic.x-v1:0",  "max_tokens":5,"messages":[]}'  # spacing kept: bytes through
