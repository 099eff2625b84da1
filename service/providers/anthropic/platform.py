"""Where Claude's Messages API is reached and how: the seam between the Anthropic wire and a
platform that serves it (Anthropic's own API, Amazon Bedrock, Google Vertex AI).

Every platform takes the same Messages body and answers with the same events; they differ
in the URL (the model may move into it), a few body fields (`anthropic_version`, betas), the
credentials, the stream framing and the error shapes. ``AnthropicProvider`` does the rest
(keys, breaker, retries, translation, usage) once, for all of them. A platform is what
differs, and nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from service.core import NativeRequest, ProviderCall
from service.core.errors import NotSupported
from service.transport import Timeouts, TransportError, UpstreamClient, UpstreamResponse
from service.transport.keys import UpstreamKey

from .native import upstream_headers, with_model
from .request import AnthropicRequest

# Betas the cloud platforms offer under their own names (Claude Code's constants say the same).
RENAMED_ON_CLOUDS = {"advanced-tool-use-2025-11-20": "tool-search-tool-2025-10-19"}
# The betas both clouds accept, as the gateway read Anthropic's, AWS's and Google's pages (late 2026);
# each platform adds its own, and `[upstreams.NAME] betas = [...]` replaces the list for one upstream.
CLOUD_BETAS = frozenset(
    {
        "computer-use-2024-10-22",
        "computer-use-2025-01-24",
        "computer-use-2025-11-24",
        "token-efficient-tools-2025-02-19",
        "interleaved-thinking-2025-05-14",
        "output-128k-2025-02-19",
        "context-1m-2025-08-07",
        "context-management-2025-06-27",
        "effort-2025-11-24",
        "tool-search-tool-2025-10-19",
        "fine-grained-tool-streaming-2025-05-14",
    }
)
# Top-level Messages fields that are features of Anthropic's own API (the MCP connector, the code
# execution container), not served on the cloud platforms: left out and reported rather than sent into a 400.
CLOUD_LACKS = ("mcp_servers", "container")
# The Models API and the credential checks: small reads, never a stream.
CHECK_TIMEOUTS = Timeouts(connect=5.0, read=15.0, pool=5.0)
# What `count_tokens` accepts of a Messages request: the prompt, not the output settings.
COUNTED = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking"})


@dataclass(slots=True)
class Outgoing:
    """One request as the platform wants it: where, what, and its protocol headers (no credentials)."""

    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class Platform(Protocol):
    """What differs between the places Claude's Messages API is served."""

    name: str  # for logs and errors: "Anthropic", "Amazon Bedrock", "Google Vertex AI"
    # Whether the key pool holds real keys (sent as they are, so redacted when quoted back) rather
    # than one stand-in for a credential the platform signs or exchanges (SigV4, OAuth).
    keyed: bool
    # Headers every request carries (the API version, content type); credentials come from ``authorize``.
    headers: dict[str, str]
    # Awaited before each request when set: renews a credential that is about to expire.
    refresh: Callable[[], Awaitable[None]] | None

    def translated(self, mapped: AnthropicRequest, call: ProviderCall, *, stream: bool) -> Outgoing: ...

    def counted(self, mapped: AnthropicRequest, call: ProviderCall) -> Outgoing:
        """The `count_tokens` request; raises ``NotSupported`` where the platform cannot count."""
        ...

    def native(self, call: ProviderCall) -> Outgoing: ...

    def authorize(self, key: UpstreamKey, out: Outgoing, headers: dict[str, str]) -> None:
        """Adds the credentials to ``headers`` (signing ``out`` where the platform signs)."""
        ...

    def answer(self, response: UpstreamResponse, out: Outgoing) -> UpstreamResponse:
        """The response to ``out`` in Anthropic's own wire: SSE events, Anthropic error bodies, `request-id`."""
        ...

    def renewed(self) -> bool:
        """After the platform refused a credential: True when it was stale and has been dropped,
        so an immediate retry with a fresh one can succeed (not a verdict on the credential)."""
        ...

    async def verify(self, key: UpstreamKey, client: UpstreamClient) -> int | None:
        """A quarantined credential's check, off the request path: the status of a cheap call."""
        ...

    def secrets(self) -> tuple[str, ...]:
        """Credential values an upstream error might quote back, to redact."""
        ...


class AnthropicPlatform:
    """Anthropic's own API: `POST /v1/messages` with `x-api-key` (bytes through for native calls)."""

    name: str = "Anthropic"
    keyed: bool = True
    refresh: Callable[[], Awaitable[None]] | None = None

    def __init__(self, base_url: str, api_version: str) -> None:
        base = base_url.rstrip("/")
        self.url = base + "/v1/messages"
        self.count_url = self.url + "/count_tokens"
        self.models_url = base + "/v1/models"
        self.api_version = api_version
        self.headers = {
            "anthropic-version": api_version,
            "content-type": "application/json",
            "accept": "application/json",
        }

    def translated(self, mapped: AnthropicRequest, call: ProviderCall, *, stream: bool) -> Outgoing:
        return Outgoing(self.url, orjson.dumps(mapped.body), beta_header(mapped.betas))

    def counted(self, mapped: AnthropicRequest, call: ProviderCall) -> Outgoing:
        body = orjson.dumps({k: v for k, v in mapped.body.items() if k in COUNTED})
        return Outgoing(self.count_url, body, beta_header(mapped.betas))

    def native(self, call: ProviderCall) -> Outgoing:
        native = native_of(call)
        url = self.count_url if native.operation == "count_tokens" else self.url
        if native.query:
            url = f"{url}?{native.query}"
        body = with_model(native.body, native.model, call.model.upstream_id)
        return Outgoing(url, body, upstream_headers(native.headers, self.api_version))

    def authorize(self, key: UpstreamKey, out: Outgoing, headers: dict[str, str]) -> None:
        headers["x-api-key"] = key.value

    def answer(self, response: UpstreamResponse, out: Outgoing) -> UpstreamResponse:
        return response

    def renewed(self) -> bool:
        return False

    async def verify(self, key: UpstreamKey, client: UpstreamClient) -> int | None:
        """The Models API's first page with that key alone: cheap, and it needs the key to be good."""
        headers = {**self.headers, "x-api-key": key.value}
        try:
            response = await client.get(self.models_url + "?limit=1", headers, CHECK_TIMEOUTS)
        except TransportError:
            return None
        try:
            await response.read()
            return response.status
        finally:
            await response.aclose()

    def secrets(self) -> tuple[str, ...]:
        return ()


def native_of(call: ProviderCall) -> NativeRequest:
    native = call.request
    assert isinstance(native, NativeRequest)  # the use case relays only native calls
    return native


def beta_header(betas: Collection[str]) -> dict[str, str]:
    """Betas as Anthropic's header (none: no header)."""
    if not betas:
        return {}
    names = ",".join(dict.fromkeys(b for b in betas if b))
    return {"anthropic-beta": names} if names else {}


def client_betas(native: NativeRequest) -> list[str]:
    """The betas a native request's client turned on (`anthropic-beta`, comma-separated, repeatable)."""
    return [b.strip() for name, value in native.headers if name == "anthropic-beta" for b in value.split(",")]


def offered_betas(
    betas: Iterable[str],
    offered: Collection[str],
    platform: str,
    call: ProviderCall,
    renamed: Mapping[str, str] | None = None,
) -> list[str]:
    """The betas the platform offers. A beta it offers under another name (``renamed``: the tool-search
    beta is `advanced-tool-use-...` on Anthropic's API and `tool-search-tool-...` on the clouds) is sent
    under that name, reported as adjusted; the others are left out and reported (refused under strict):
    forwarding them would only earn the request a 400 there."""
    kept: list[str] = []
    lacking: list[str] = []
    for beta in dict.fromkeys(b for b in betas if b):
        own = (renamed or {}).get(beta, beta)
        if own in offered:
            if own != beta:
                call.report.adjust("anthropic-beta", f"{platform} names the beta `{beta}` `{own}`; sent as `{own}`")
            kept.append(own)
        else:
            lacking.append(beta)
    if lacking:
        names = ", ".join(f"`{b}`" for b in lacking)
        call.report.drop("anthropic-beta", f"{platform} does not offer the beta(s) {names}; left out")
    return list(dict.fromkeys(kept))


def without_fields(body: dict[str, Any], lacking: Collection[str], platform: str, call: ProviderCall) -> dict[str, Any]:
    """The body without the top-level fields the platform does not serve, each reported (refused under strict)."""
    for name in lacking:
        if name in body:
            call.report.drop(name, f"{platform} does not serve `{name}`; it was left out")
            del body[name]
    return body


def mentions(body: bytes, lacking: Collection[str]) -> bool:
    """Whether a native body may hold one of ``lacking`` (a cheap look before any parse)."""
    return any(b'"' + name.encode() + b'"' in body for name in lacking)


def not_counted(platform: str) -> NotSupported:
    return NotSupported(
        f"Token counting is not offered by {platform}, the upstream that serves this model.",
        param="model",
    )


class Rewritten:
    """A platform's response seen as Anthropic's: its request id under `request-id`, an error body in
    Anthropic's shape (``error_body``), and stream reads as SSE (``reads``, when the framing differs).

    The provider reads only these four things of a response, so a platform that wraps nothing else
    stays exactly as cheap as the response it wraps."""

    __slots__ = ("_error_body", "_ok_body", "_reads", "_response", "headers")

    def __init__(
        self,
        response: UpstreamResponse,
        *,
        request_id: str,
        error_body: Callable[[int, Mapping[str, str], bytes], bytes],
        reads: Callable[[AsyncIterator[bytes]], AsyncIterator[bytes]] | None = None,
        ok_body: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self._response = response
        self._error_body = error_body
        self._reads = reads
        self._ok_body = ok_body
        self.headers: Mapping[str, str] = WithRequestId(response.headers, request_id)

    @property
    def status(self) -> int:
        return self._response.status

    async def read(self) -> bytes:
        body = await self._response.read()
        status = self._response.status
        if status != 200:
            return self._error_body(status, self._response.headers, body)
        return body if self._ok_body is None else self._ok_body(body)

    def chunks(self) -> AsyncIterator[bytes]:
        raw = self._response.chunks()
        return raw if self._reads is None else self._reads(raw)

    async def aclose(self) -> None:
        await self._response.aclose()


class WithRequestId(Mapping[str, str]):
    """Response headers with the platform's request id also answering to Anthropic's `request-id`."""

    __slots__ = ("_headers", "_name")

    def __init__(self, headers: Mapping[str, str], name: str) -> None:
        self._headers, self._name = headers, name

    def __getitem__(self, key: str) -> str:
        if key.lower() == "request-id" and self._name:
            value = self._headers.get(self._name)
            if value is not None:
                return value
        return self._headers[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def _adds(self) -> bool:
        return bool(self._name) and self._name in self._headers and "request-id" not in self._headers

    def __iter__(self) -> Iterator[str]:
        yield from self._headers
        if self._adds():  # so a client gets the platform's request id as it gets Anthropic's
            yield "request-id"

    def __len__(self) -> int:
        return len(self._headers) + self._adds()


def parsed_error(body: bytes) -> tuple[bool, Any]:
    """(whether ``body`` is already an Anthropic error answer, the parsed JSON or None): the clouds pass
    Claude's own errors on as Anthropic wrote them and write only their own in other shapes."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False, None
    anthropic = isinstance(parsed, dict) and parsed.get("type") == "error" and isinstance(parsed.get("error"), dict)
    return anthropic, parsed


def anthropic_error(kind: str, message: str) -> bytes:
    """An error body in Anthropic's own shape, as the native surface and the error mapping read it."""
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


# Anthropic's error type for an HTTP status, where a platform's body does not say it in Anthropic's words.
ERROR_KINDS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
    503: "overloaded_error",
}
