"""Claude on Google Vertex AI (docs/vertex.md).

`POST {base}/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model}:rawPredict`
(`:streamRawPredict` for SSE): Anthropic's Messages body without `model` (it is in the URL) and
with `anthropic_version: "vertex-2023-10-16"`; betas in the `anthropic-beta` header; an OAuth
bearer token. Token counting is `count-tokens:rawPredict`, the model named in the body.
Google's own errors (`{"error": {"code", "message", "status"}}`) are read as Anthropic's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import orjson

from service.core import ProviderCall
from service.core.errors import GatewayError
from service.providers.anthropic.platform import (
    CLOUD_BETAS,
    CLOUD_LACKS,
    COUNTED,
    ERROR_KINDS,
    Outgoing,
    Rewritten,
    anthropic_error,
    beta_header,
    client_betas,
    native_of,
    offered_betas,
    parsed_error,
    without_fields,
)
from service.providers.anthropic.platform import RENAMED_ON_CLOUDS as RENAMED
from service.providers.anthropic.request import AnthropicRequest
from service.transport import UpstreamClient, UpstreamResponse, json_object
from service.transport.keys import UpstreamKey

from .tokens import TokenSource

BODY_VERSION = "vertex-2023-10-16"
# The betas Claude on Vertex AI accepts: the clouds' common list (`betas = [...]` per upstream replaces it).
BETAS = CLOUD_BETAS
# Google's status names -> Anthropic's error types.
STATUSES = {
    "UNAUTHENTICATED": "authentication_error",
    "PERMISSION_DENIED": "permission_error",
    "NOT_FOUND": "not_found_error",
    "RESOURCE_EXHAUSTED": "rate_limit_error",
    "INVALID_ARGUMENT": "invalid_request_error",
    "FAILED_PRECONDITION": "invalid_request_error",
    "UNAVAILABLE": "overloaded_error",
    "DEADLINE_EXCEEDED": "timeout_error",
    "INTERNAL": "api_error",
}


class Vertex:
    name = "Google Vertex AI"
    keyed = False  # the pool holds one stand-in: the credential is the token source

    def __init__(
        self,
        base: str,
        project: str,
        region: str,
        tokens: TokenSource,
        betas: Collection[str] | None = None,
        lacking: Collection[str] = CLOUD_LACKS,
    ) -> None:
        self.lacking = tuple(lacking)
        self.models = f"{base.rstrip('/')}/v1/projects/{project}/locations/{region}/publishers/anthropic/models"
        self.tokens = tokens
        self.offered = frozenset(BETAS if betas is None else betas)
        self.refresh: Callable[[], Awaitable[None]] | None = tokens.refresh
        self.headers: dict[str, str] = {"content-type": "application/json", "accept": "application/json"}

    def _url(self, model: str, stream: bool) -> str:
        return f"{self.models}/{model}:{'streamRawPredict' if stream else 'rawPredict'}"

    def _body(self, body: Mapping[str, Any]) -> dict[str, Any]:
        shaped = {k: v for k, v in body.items() if k != "model"}
        shaped["anthropic_version"] = BODY_VERSION
        return shaped

    def translated(self, mapped: AnthropicRequest, call: ProviderCall, *, stream: bool) -> Outgoing:
        betas = offered_betas(mapped.betas, self.offered, self.name, call, RENAMED)
        url = self._url(call.model.upstream_id, stream)
        return Outgoing(url, orjson.dumps(self._body(mapped.body)), beta_header(betas))

    def counted(self, mapped: AnthropicRequest, call: ProviderCall) -> Outgoing:
        betas = offered_betas(mapped.betas, self.offered, self.name, call, RENAMED)
        body = {k: v for k, v in mapped.body.items() if k in COUNTED}
        return self._counting(call.model.upstream_id, body, betas)

    def native(self, call: ProviderCall) -> Outgoing:
        native = native_of(call)
        betas = offered_betas(client_betas(native), self.offered, self.name, call, RENAMED)
        body = without_fields(json_object(native.body), self.lacking, self.name, call)
        if native.operation == "count_tokens":
            return self._counting(call.model.upstream_id, body, betas)
        url = self._url(call.model.upstream_id, native.stream)
        return Outgoing(url, orjson.dumps(self._body(body)), beta_header(betas))

    def _counting(self, model: str, body: Mapping[str, Any], betas: list[str]) -> Outgoing:
        counted = {**body, "model": model}  # counting names the model in the body, not the URL
        return Outgoing(f"{self.models}/count-tokens:rawPredict", orjson.dumps(counted), beta_header(betas))

    def authorize(self, key: UpstreamKey, out: Outgoing, headers: dict[str, str]) -> None:
        headers["authorization"] = "Bearer " + self.tokens.token

    def answer(self, response: UpstreamResponse, out: Outgoing) -> UpstreamResponse:
        return Rewritten(response, request_id="x-request-id", error_body=error_body)

    def renewed(self) -> bool:
        return self.tokens.drop()

    async def verify(self, key: UpstreamKey, client: UpstreamClient) -> int | None:
        """A quarantined credential is good again once it issues a token."""
        self.tokens.forget()
        try:
            await self.tokens.refresh()
        except GatewayError:
            return 401
        return 200

    def secrets(self) -> tuple[str, ...]:
        return ()  # tokens are short-lived; the scrubber removes any bearer token quoted back


def error_body(status: int, headers: Mapping[str, str], body: bytes) -> bytes:
    """Anthropic's error body for a Vertex error reply (Claude's own errors pass through Vertex as sent)."""
    anthropic, parsed = parsed_error(body)
    if anthropic:
        return body
    if isinstance(parsed, list) and parsed and isinstance(parsed[0], dict):
        parsed = parsed[0]  # some Google front ends wrap the error in a list
    google = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(google, dict):
        message = str(google.get("message") or "")
        kind = STATUSES.get(str(google.get("status") or "")) or ERROR_KINDS.get(status, "api_error")
        return anthropic_error(kind, message or f"Google Vertex AI answered HTTP {status}.")
    return anthropic_error(ERROR_KINDS.get(status, "api_error"), f"Google Vertex AI answered HTTP {status}.")
