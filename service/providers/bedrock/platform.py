"""Claude in Amazon Bedrock, over either of its two endpoints (docs/bedrock.md).

- **Messages** (`bedrock-mantle`, the default): Anthropic's Messages API itself under
  `/anthropic/v1/messages`, the model in the body, plain SSE; SigV4 (service `bedrock-mantle`)
  or a Bedrock API key as a bearer token.
- **InvokeModel** (`bedrock-runtime`): the model in the URL (`/model/{id}/invoke`, and
  `/invoke-with-response-stream` in AWS's binary event-stream framing), `anthropic_version`
  and the betas in the body; SigV4 (service `bedrock`) or a Bedrock API key.

Betas the platform does not offer are left out and reported, never forwarded into a 400.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import ClassVar
from urllib.parse import quote

import orjson

from service.core import ProviderCall
from service.providers.anthropic.native import with_model
from service.providers.anthropic.platform import (
    CHECK_TIMEOUTS,
    CLOUD_BETAS,
    CLOUD_LACKS,
    Outgoing,
    Rewritten,
    beta_header,
    client_betas,
    mentions,
    native_of,
    not_counted,
    offered_betas,
    without_fields,
)
from service.providers.anthropic.platform import RENAMED_ON_CLOUDS as RENAMED
from service.providers.anthropic.request import AnthropicRequest
from service.transport import TransportError, UpstreamClient, UpstreamResponse, json_object
from service.transport.keys import UpstreamKey

from .errors import EXCEPTIONS, error_body
from .eventstream import sse_from_event_stream
from .signing import SigV4Signer

BODY_VERSION = "bedrock-2023-05-31"  # InvokeModel's `anthropic_version`, in the body
HEADER_VERSION = "2023-06-01"  # the Messages endpoint's `anthropic-version` header
REQUEST_ID = "x-amzn-requestid"
EVENT_STREAM = "application/vnd.amazon.eventstream"
# The betas Claude in Bedrock accepts: the clouds' common list and Bedrock's own
# (`[upstreams.NAME] betas = [...]` replaces it for one upstream).
BETAS = CLOUD_BETAS | {"dev-full-thinking-2025-05-14", "tool-examples-2025-10-29"}


class Bedrock:
    """What both endpoints share: credentials, error shapes, the credential check."""

    name = "Amazon Bedrock"
    protocol_headers: ClassVar[dict[str, str]] = {}  # read only: copied into each instance's headers

    def __init__(
        self,
        base_url: str,
        signer: SigV4Signer | None,
        betas: Collection[str] | None = None,
        lacking: Collection[str] = CLOUD_LACKS,
    ) -> None:
        self.base = base_url.rstrip("/")
        self.lacking = tuple(lacking)
        self.signer = signer  # None: Bedrock API keys, sent as bearer tokens
        self.keyed = signer is None
        self.offered = frozenset(BETAS if betas is None else betas)
        self.refresh: Callable[[], Awaitable[None]] | None = signer.refresh if signer is not None else None
        self.headers: dict[str, str] = {
            "content-type": "application/json",
            "accept": "application/json",
            **self.protocol_headers,
        }

    def authorize(self, key: UpstreamKey, out: Outgoing, headers: dict[str, str]) -> None:
        if self.signer is None:
            headers["authorization"] = "Bearer " + key.value
        else:
            self.signer.sign("POST", out.url, headers, out.body)

    def renewed(self) -> bool:
        return False  # a refused signature or key is not cured by signing again

    def secrets(self) -> tuple[str, ...]:
        return self.signer.secrets() if self.signer is not None else ()

    def _rewritten(self, response: UpstreamResponse) -> Rewritten:
        return Rewritten(response, request_id=REQUEST_ID, error_body=error_body)

    async def check(self, key: UpstreamKey, client: UpstreamClient, url: str) -> int | None:
        """Sends an empty request: anything but a credential failure means the credential was accepted
        (the empty body is refused after authentication, so the check costs no tokens)."""
        out = Outgoing(url, b"{}")
        headers = {**self.headers, "x-request-id": "chatgate-credential-check"}
        self.authorize(key, out, headers)
        try:
            response = await client.post(url, out.body, headers, CHECK_TIMEOUTS)
        except TransportError:
            return None
        try:
            body = await response.read()
            status = response.status
        finally:
            await response.aclose()
        if status >= 500:
            return None
        kind = json_object(error_body(status, response.headers, body)).get("error", {}).get("type")
        return 401 if status == 401 or kind == "authentication_error" else 200


class BedrockMessages(Bedrock):
    """The `bedrock-mantle` Messages endpoint: Anthropic's API, Bedrock's credentials."""

    protocol_headers: ClassVar[dict[str, str]] = {"anthropic-version": HEADER_VERSION}

    @property
    def url(self) -> str:
        return self.base + "/v1/messages"

    def translated(self, mapped: AnthropicRequest, call: ProviderCall, *, stream: bool) -> Outgoing:
        betas = offered_betas(mapped.betas, self.offered, self.name, call, RENAMED)
        return Outgoing(self.url, orjson.dumps(mapped.body), beta_header(betas))

    def counted(self, mapped: AnthropicRequest, call: ProviderCall) -> Outgoing:
        raise not_counted('Amazon Bedrock\'s Messages endpoint (use `endpoint = "invoke"` to count)')

    def native(self, call: ProviderCall) -> Outgoing:
        native = native_of(call)
        if native.operation == "count_tokens":
            raise not_counted('Amazon Bedrock\'s Messages endpoint (use `endpoint = "invoke"` to count)')
        betas = offered_betas(client_betas(native), self.offered, self.name, call, RENAMED)
        url = f"{self.url}?{native.query}" if native.query else self.url
        body = with_model(native.body, native.model, call.model.upstream_id)
        if mentions(body, self.lacking):  # bytes through unless a field must go
            body = orjson.dumps(without_fields(json_object(body), self.lacking, self.name, call))
        return Outgoing(url, body, beta_header(betas))

    def answer(self, response: UpstreamResponse, out: Outgoing) -> UpstreamResponse:
        return self._rewritten(response)

    async def verify(self, key: UpstreamKey, client: UpstreamClient) -> int | None:
        return await self.check(key, client, self.url)


class BedrockInvoke(Bedrock):
    """The `bedrock-runtime` InvokeModel endpoint: the model in the URL, event-stream framing."""

    def _url(self, model: str, action: str) -> str:
        return f"{self.base}/model/{quote(model, safe='')}/{action}"

    def _body(self, body: Mapping[str, object], betas: list[str]) -> dict[str, object]:
        shaped = {k: v for k, v in body.items() if k not in ("model", "stream")}
        shaped["anthropic_version"] = BODY_VERSION
        if betas:
            shaped["anthropic_beta"] = betas
        return shaped

    def translated(self, mapped: AnthropicRequest, call: ProviderCall, *, stream: bool) -> Outgoing:
        betas = offered_betas(mapped.betas, self.offered, self.name, call, RENAMED)
        action = "invoke-with-response-stream" if stream else "invoke"
        return self._out(self._url(call.model.upstream_id, action), self._body(mapped.body, betas), stream)

    def counted(self, mapped: AnthropicRequest, call: ProviderCall) -> Outgoing:
        betas = offered_betas(mapped.betas, self.offered, self.name, call, RENAMED)
        return self._counting(call.model.upstream_id, self._body(mapped.body, betas))

    def native(self, call: ProviderCall) -> Outgoing:
        native = native_of(call)
        betas = offered_betas(client_betas(native), self.offered, self.name, call, RENAMED)
        body = self._body(without_fields(json_object(native.body), self.lacking, self.name, call), betas)
        model = call.model.upstream_id
        if native.operation == "count_tokens":
            body.setdefault("max_tokens", 1)  # InvokeModel's body needs it; counting ignores it
            return self._counting(model, body)
        action = "invoke-with-response-stream" if native.stream else "invoke"
        return self._out(self._url(model, action), body, native.stream)

    def _out(self, url: str, body: Mapping[str, object], stream: bool) -> Outgoing:
        return Outgoing(url, orjson.dumps(body), {"accept": EVENT_STREAM} if stream else {})

    def _counting(self, model: str, body: Mapping[str, object]) -> Outgoing:
        """Bedrock's CountTokens: the InvokeModel body, base64 inside its own envelope."""
        inner = base64.b64encode(orjson.dumps(body)).decode()
        return Outgoing(self._url(model, "count-tokens"), orjson.dumps({"input": {"invokeModel": {"body": inner}}}))

    def answer(self, response: UpstreamResponse, out: Outgoing) -> UpstreamResponse:
        if out.url.endswith("/count-tokens"):
            return Rewritten(response, request_id=REQUEST_ID, error_body=error_body, ok_body=anthropic_count)
        if out.headers.get("accept") == EVENT_STREAM:
            return Rewritten(response, request_id=REQUEST_ID, error_body=error_body, reads=sse_from_event_stream)
        return self._rewritten(response)

    async def verify(self, key: UpstreamKey, client: UpstreamClient) -> int | None:
        return await self.check(key, client, self._url("anthropic.credential-check", "invoke"))


def anthropic_count(body: bytes) -> bytes:
    """CountTokens' `{"inputTokens": N}` as Anthropic's `{"input_tokens": N}`."""
    tokens = json_object(body).get("inputTokens")
    return orjson.dumps({"input_tokens": tokens})


__all__ = ["EXCEPTIONS", "BedrockInvoke", "BedrockMessages"]
