"""The simulator's cloud routes: Claude in Amazon Bedrock and on Google Vertex AI, on the same socket.

Each route is a front on the Anthropic simulator: it checks the platform's credentials the way
the platform does (SigV4 recomputed with botocore, AWS's own signer; Bedrock API keys; OAuth
tokens it issued itself against a service-account JWT checked with google-auth), reads the
platform's request shape (model in the URL, `anthropic_version` and betas in the body), asks
the Anthropic simulator, and answers in the platform's shape: InvokeModel streams in AWS's
binary event-stream framing with both checksums, errors as each platform writes them.

Paths: `POST /anthropic/v1/messages` (Bedrock's Messages endpoint, bedrock-mantle);
`POST /model/{id}/invoke`, `/invoke-with-response-stream`, `/count-tokens` (bedrock-runtime);
`POST /v1/projects/{p}/locations/{l}/publishers/anthropic/models/{m}:rawPredict`,
`:streamRawPredict` and `count-tokens:rawPredict` (Vertex AI); `POST /token` (Google's OAuth
token endpoint). Test hooks: `GET /_sim/vertex/service-account` (a key whose tokens this
simulator issues), `POST /_sim/vertex/tokens` (`{"seconds": N}` sets their life, `{"revoke": true}`
ends every token issued so far), `GET /_sim/platforms` (counts).

The cloud libraries are the gateway's `bedrock` and `vertex` extras; without them, the routes
that need one answer 501 saying so.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote

import orjson

from .asgi import Receive, Scope, Send, read_body
from .scenario import directives


class Simulator(Protocol):
    """The Anthropic simulator, as the cloud fronts use it."""

    api_key: str | None

    async def messages(self, scope: Scope, receive: Receive, send: Send) -> None: ...


# The credentials the simulator's Bedrock routes accept (an embedded gateway uses them too).
AWS_ACCESS_KEY = "AKIACHATGATESIMULATOR"
AWS_SECRET_KEY = "chatgate-simulator-secret-access-key"
BEDROCK_API_KEY = "bedrock-api-key-chatgate-simulator"
INNER_KEY = "sk-ant-simulator-platform-front"
SA_EMAIL = "chatgate-simulator@chatgate-sim.iam.gserviceaccount.com"
SA_PROJECT = "chatgate-sim"
BEDROCK_VERSION = "bedrock-2023-05-31"
VERTEX_VERSION = "vertex-2023-10-16"
SIGNATURE_WINDOW = 15 * 60  # seconds: AWS refuses a signature made further off than this

INVOKE = re.compile(r"^/model/(?P<model>[^/]+)/(?P<action>invoke|invoke-with-response-stream|count-tokens)$")
VERTEX = re.compile(
    r"^/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[a-z0-9-]+)/publishers/(?P<publisher>[^/]+)"
    r"/models/(?P<model>[^/:]+):(?P<action>rawPredict|streamRawPredict)$"
)
AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[^,]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)
# Anthropic's error types -> (status, Bedrock exception) for InvokeModel's error replies.
BEDROCK_ERRORS = {
    "invalid_request_error": (400, "ValidationException"),
    "not_found_error": (404, "ResourceNotFoundException"),
    "permission_error": (403, "AccessDeniedException"),
    "rate_limit_error": (429, "ThrottlingException"),
    "overloaded_error": (503, "ServiceUnavailableException"),
    "request_too_large": (400, "ValidationException"),
    "timeout_error": (408, "ModelTimeoutException"),
}
STREAM_EXCEPTIONS = {
    "rate_limit_error": "throttlingException",
    "overloaded_error": "serviceUnavailableException",
    "invalid_request_error": "validationException",
}
VERTEX_UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
    "valid authentication credential."
)


class Refused(Exception):
    """A platform-level refusal, answered in the platform's own shape."""

    def __init__(self, status: int, name: str, message: str) -> None:
        super().__init__(message)
        self.status, self.name, self.message = status, name, message


class Platforms:
    """The Bedrock and Vertex AI fronts of one ``Simulator``."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator
        self.aws_keys = {AWS_ACCESS_KEY: AWS_SECRET_KEY}
        self.bedrock_api_keys = {BEDROCK_API_KEY}
        self.token_seconds = 3600
        self.tokens: dict[str, float] = {}  # access token -> time.time() it expires
        self._account: tuple[dict[str, Any], bytes] | None = None  # (key info, public key PEM)
        self.stats = {"bedrock": 0, "vertex": 0, "tokens_issued": 0, "refused": 0}

    def handler(self, path: str, method: str) -> Callable[[Scope, Receive, Send], Awaitable[None]] | None:
        if method == "POST":
            if path == "/anthropic/v1/messages":
                return self.bedrock_messages
            if INVOKE.match(path):
                return self.bedrock_invoke
            if VERTEX.match(path):
                return self.vertex
            if path == "/token":
                return self.token
            if path == "/_sim/vertex/tokens":
                return self.change_tokens
        elif method == "GET":
            if path == "/_sim/vertex/service-account":
                return self.service_account_route
            if path == "/_sim/platforms":
                return self.show_stats
        return None

    # --- Amazon Bedrock ----------------------------------------------------------------------

    async def bedrock_messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Anthropic's Messages API as Bedrock serves it: same body, same events, Bedrock's credentials."""
        self.stats["bedrock"] += 1
        raw = await read_body(receive)
        headers = dict(scope["headers"])
        try:
            self.check_aws(scope, headers, raw, "bedrock-mantle")
        except Refused as refused:
            await self.aws_error(send, refused)
            return
        inner = [(k, v) for k, v in headers.items() if k in (b"anthropic-version", b"anthropic-beta", b"x-sim")]
        try:
            body = orjson.loads(raw)
            if isinstance(body, dict) and isinstance(body.get("model"), str):  # Bedrock's ids name the model
                body["model"] = bedrock_to_anthropic(body["model"])
                raw = orjson.dumps(body)
        except orjson.JSONDecodeError:
            pass  # the simulator answers a body that is not JSON as Anthropic would
        answer = Captured(send, rename={b"request-id": b"x-amzn-requestid"})
        await self.ask(scope, receive, answer, "/v1/messages", raw, inner)
        await answer.finish(anthropic_shape)

    async def bedrock_invoke(self, scope: Scope, receive: Receive, send: Send) -> None:
        """InvokeModel: model in the URL, `anthropic_version` in the body, event-stream framing."""
        self.stats["bedrock"] += 1
        raw = await read_body(receive)
        headers = dict(scope["headers"])
        found = INVOKE.match(scope["path"])
        assert found is not None
        try:
            self.check_aws(scope, headers, raw, "bedrock")
            body, action = orjson.loads(raw), found["action"]
            if action == "count-tokens":
                body = orjson.loads(base64.b64decode(body["input"]["invokeModel"]["body"]))
            inner_body, betas = self.invoke_body(body, unquote(found["model"]), stream=action.endswith("stream"))
        except Refused as refused:
            await self.aws_error(send, refused)
            return
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            await self.aws_error(send, Refused(400, "ValidationException", "Malformed input request."))
            return
        inner = [(b"anthropic-version", b"2023-06-01"), *betas, *sim_header(headers)]
        if action == "count-tokens":
            answer = Captured(send, rename={b"request-id": b"x-amzn-requestid"}, ok_body=bedrock_count)
            await self.ask(scope, receive, answer, "/v1/messages/count_tokens", inner_body, inner)
        elif action == "invoke":
            answer = Captured(send, rename={b"request-id": b"x-amzn-requestid"})
            await self.ask(scope, receive, answer, "/v1/messages", inner_body, inner)
        else:
            flags = directives(orjson.loads(inner_body), headers.get(b"x-sim", b"").decode())
            corrupt = int(flags["corrupt_frame"]) if flags.get("corrupt_frame") else None
            answer = Captured(send, rename={b"request-id": b"x-amzn-requestid"}, frames=Framer(corrupt))
            await self.ask(scope, receive, answer, "/v1/messages", inner_body, inner)
        await answer.finish(bedrock_shape)

    def invoke_body(self, body: Any, model: str, *, stream: bool) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        if not isinstance(body, dict):
            raise Refused(400, "ValidationException", "Malformed input request: expected a JSON object.")
        if body.get("anthropic_version") != BEDROCK_VERSION:
            raise Refused(400, "ValidationException", f"anthropic_version: must be {BEDROCK_VERSION}")
        for extraneous in ("model", "stream"):
            if extraneous in body:
                raise Refused(400, "ValidationException", f"extraneous key [{extraneous}] is not permitted")
        betas = body.get("anthropic_beta") or []
        rest = {k: v for k, v in body.items() if k not in ("anthropic_version", "anthropic_beta")}
        inner = {"model": bedrock_to_anthropic(model), **rest}
        if stream:
            inner["stream"] = True
        header = [(b"anthropic-beta", ",".join(map(str, betas)).encode())] if betas else []
        return orjson.dumps(inner), header

    def check_aws(self, scope: Scope, headers: dict[bytes, bytes], raw: bytes, service: str) -> None:
        """SigV4 as AWS checks it, recomputed with botocore; or a Bedrock API key as a bearer token."""
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        if authorization.startswith("Bearer "):
            if authorization[7:] not in self.bedrock_api_keys:
                raise Refused(403, "UnrecognizedClientException", "The API key is invalid.")
            return
        parsed = AUTHORIZATION.match(authorization)
        if parsed is None:
            raise Refused(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        secret = self.aws_keys.get(parsed["key"])
        if secret is None:
            raise Refused(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        if parsed["service"] != service:
            raise Refused(
                403, "InvalidSignatureException", f"Credential should be scoped to correct service: '{service}'."
            )
        stamp = headers.get(b"x-amz-date", b"").decode("latin-1")
        try:
            made = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise Refused(403, "IncompleteSignatureException", "X-Amz-Date is missing or malformed.") from None
        if abs((datetime.now(UTC) - made).total_seconds()) > SIGNATURE_WINDOW:
            raise Refused(403, "InvalidSignatureException", "Signature expired.")
        expected = sigv4_signature(scope, headers, raw, parsed, secret, stamp)
        if not hmac.compare_digest(expected, parsed["signature"]):
            raise Refused(
                403,
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method.",
            )

    async def aws_error(self, send: Send, refused: Refused) -> None:
        self.stats["refused"] += 1
        await send_json(
            send,
            refused.status,
            {"message": refused.message},
            [(b"x-amzn-errortype", f"{refused.name}:http://internal.amazon.com/coral/com.amazon.bedrock/".encode())],
        )

    # --- Google Vertex AI --------------------------------------------------------------------

    async def vertex(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.stats["vertex"] += 1
        raw = await read_body(receive)
        headers = dict(scope["headers"])
        try:
            self.check_token(headers)
            model, stream = self.vertex_target(scope["path"])
            counting = model == "count-tokens"
            body = orjson.loads(raw)
            if not isinstance(body, dict):
                raise Refused(400, "INVALID_ARGUMENT", "Invalid JSON payload: expected an object.")
            if counting:
                model = str(body.pop("model", "") or "")
                if not model:
                    raise Refused(400, "INVALID_ARGUMENT", "count-tokens needs `model` in the body.")
            elif body.pop("anthropic_version", None) != VERTEX_VERSION:
                raise Refused(400, "INVALID_ARGUMENT", f"anthropic_version: must be {VERTEX_VERSION}")
            elif "model" in body:
                raise Refused(400, "INVALID_ARGUMENT", "model: the model is named in the URL, not the body")
        except Refused as refused:
            await self.google_error(send, refused)
            return
        except orjson.JSONDecodeError:
            await self.google_error(send, Refused(400, "INVALID_ARGUMENT", "Invalid JSON payload received."))
            return
        inner_body = {"model": model.replace("@", "-"), **body}
        if stream and not counting:
            inner_body["stream"] = True
        inner = [(b"anthropic-version", b"2023-06-01"), *sim_header(headers)]
        if headers.get(b"anthropic-beta"):
            inner.append((b"anthropic-beta", headers[b"anthropic-beta"]))
        answer = Captured(send, rename={b"request-id": b"x-request-id"})
        path = "/v1/messages/count_tokens" if counting else "/v1/messages"
        await self.ask(scope, receive, answer, path, orjson.dumps(inner_body), inner)
        await answer.finish(anthropic_shape)

    def vertex_target(self, path: str) -> tuple[str, bool]:
        found = VERTEX.match(path)
        if found is None:
            raise Refused(404, "NOT_FOUND", "The requested URL was not found on this server.")
        if found["publisher"] != "anthropic":
            raise Refused(404, "NOT_FOUND", f"Publisher {found['publisher']} not found.")
        if found["project"] != SA_PROJECT:
            raise Refused(
                403,
                "PERMISSION_DENIED",
                f"Permission 'aiplatform.endpoints.predict' denied on resource of project {found['project']}.",
            )
        return found["model"], found["action"] == "streamRawPredict"

    def check_token(self, headers: dict[bytes, bytes]) -> None:
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        token = authorization[7:] if authorization.startswith("Bearer ") else ""
        expires = self.tokens.get(token)
        if expires is None or expires <= time.time():
            raise Refused(401, "UNAUTHENTICATED", VERTEX_UNAUTHENTICATED)

    async def google_error(self, send: Send, refused: Refused) -> None:
        self.stats["refused"] += 1
        error = {"error": {"code": refused.status, "message": refused.message, "status": refused.name}}
        await send_json(send, refused.status, error)

    async def token(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Google's OAuth token endpoint for a service account: a signed JWT in, an access token out."""
        form = parse_qs((await read_body(receive)).decode("latin-1"))
        assertion = (form.get("assertion") or [""])[0]
        if (form.get("grant_type") or [""])[0] != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not assertion:
            await send_json(send, 400, {"error": "unsupported_grant_type"})
            return
        try:
            from google.auth import jwt
        except ImportError:
            await send_json(send, 501, {"error": "the simulator's Vertex route needs chatgate[vertex]"})
            return
        info, public = self.account()
        try:
            claims = jwt.decode(assertion, certs=public, verify=True)  # type: ignore[no-untyped-call]
        except ValueError as exc:
            await send_json(send, 400, {"error": "invalid_grant", "error_description": f"Invalid JWT: {exc}"})
            return
        if claims.get("iss") != info["client_email"] or not str(claims.get("aud", "")).endswith("/token"):
            await send_json(send, 400, {"error": "invalid_grant", "error_description": "Invalid JWT claims."})
            return
        token = "ya29.sim-" + secrets.token_urlsafe(24)
        self.tokens[token] = time.time() + self.token_seconds
        self.stats["tokens_issued"] += 1
        await send_json(send, 200, {"access_token": token, "expires_in": self.token_seconds, "token_type": "Bearer"})

    def account(self) -> tuple[dict[str, Any], bytes]:
        """The service account whose tokens this simulator issues (its key made on first use)."""
        if self._account is None:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import rsa

            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            private = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            public = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            info = {
                "type": "service_account",
                "project_id": SA_PROJECT,
                "private_key_id": hashlib.sha256(public).hexdigest()[:40],
                "private_key": private.decode(),
                "client_email": SA_EMAIL,
                "client_id": "100000000000000000001",
            }
            self._account = (info, public)
        return self._account

    def service_account(self, base_url: str) -> dict[str, Any]:
        """The key file of the simulator's service account, its tokens issued at ``base_url``."""
        info, _ = self.account()
        return {**info, "token_uri": base_url.rstrip("/") + "/token"}

    async def service_account_route(self, scope: Scope, receive: Receive, send: Send) -> None:
        host = dict(scope["headers"]).get(b"host", b"127.0.0.1").decode("latin-1")
        await send_json(send, 200, self.service_account(f"http://{host}"))

    async def change_tokens(self, scope: Scope, receive: Receive, send: Send) -> None:
        change = orjson.loads(await read_body(receive) or b"{}")
        if "seconds" in change:
            self.token_seconds = int(change["seconds"])
        if change.get("revoke"):
            self.tokens.clear()
        await send_json(send, 200, {})

    async def show_stats(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_json(send, 200, self.stats)

    # --- the Anthropic simulator behind every route ---------------------------------------

    async def ask(
        self,
        scope: Scope,
        receive: Receive,
        answer: Captured,
        path: str,
        body: bytes,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        inner_scope = {
            **scope,
            "path": path,
            "query_string": b"",
            "headers": [(b"x-api-key", (self.simulator.api_key or INNER_KEY).encode()), *headers],
        }
        sent = False

        async def inner_receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # the client's disconnect reaches the simulator as it would

        await self.simulator.messages(inner_scope, inner_receive, answer.send)


class Captured:
    """The Anthropic simulator's answer, passed on in a platform's shape: a 200 as it streams
    (re-framed when ``frames`` is set), an error once whole (rewritten by ``finish``)."""

    def __init__(
        self,
        send: Send,
        *,
        rename: dict[bytes, bytes],
        frames: Framer | None = None,
        ok_body: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self._send, self._rename, self._frames, self._ok_body = send, rename, frames, ok_body
        self.status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._held: list[bytes] = []
        self._done = False

    def _passes(self) -> bool:
        return self.status == 200 and self._ok_body is None

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self._headers = [
                (self._rename.get(name, name), value)
                for name, value in message.get("headers", [])
                if not name.startswith(b"anthropic-ratelimit") and name != b"content-length"
            ]
            if self._passes():
                headers = self._headers
                if self._frames is not None:
                    headers = [(n, v) for n, v in headers if n != b"content-type"]
                    headers.append((b"content-type", b"application/vnd.amazon.eventstream"))
                await self._send({"type": "http.response.start", "status": 200, "headers": headers})
            return
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if not self._passes():
            self._held.append(body)
            return
        if self._frames is not None:
            body = self._frames.feed(body)
        await self._send({"type": "http.response.body", "body": body, "more_body": more})
        self._done = not more

    async def finish(self, shape: Callable[[int, bytes], tuple[int, bytes, list[tuple[bytes, bytes]]]]) -> None:
        """Sends a held answer (an error, or a body that is rewritten whole)."""
        if self._passes() or self.status == 0:
            return
        held = b"".join(self._held)
        if self.status == 200 and self._ok_body is not None:
            await send_json(send=self._send, status=200, payload=None, raw=self._ok_body(held), extra=self._headers)
            return
        status, body, extra = shape(self.status, held)
        await send_json(self._send, status, None, [*self._headers, *extra], raw=body)


class Framer:
    """SSE events -> AWS event-stream frames, each `chunk` event carrying one Anthropic event."""

    def __init__(self, corrupt: int | None = None) -> None:
        self._carry = b""
        self._count = 0
        self._corrupt = corrupt  # the index of a frame whose checksum is spoiled (a fault)

    def feed(self, data: bytes) -> bytes:
        data = self._carry + data
        *events, self._carry = data.split(b"\n\n")
        out = []
        for event in events:
            name, payload = sse_parts(event)
            if not payload:
                continue
            if name == b"error":
                out.append(self.frame(*exception_frame(payload)))
                continue
            chunk = orjson.dumps({"bytes": base64.b64encode(payload).decode(), "p": "abcdefgh"[: len(payload) % 8]})
            out.append(self.frame({":event-type": "chunk", ":content-type": "application/json"}, chunk, "event"))
        return b"".join(out)

    def frame(self, headers: dict[str, str], payload: bytes, kind: str) -> bytes:
        framed = encode_frame({**headers, ":message-type": kind}, payload)
        if self._count == self._corrupt:
            framed = framed[:-4] + bytes(b ^ 0xFF for b in framed[-4:])
        self._count += 1
        return framed


def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (lengths and their CRC32), string headers, payload, CRC32."""
    encoded = b"".join(
        len(name).to_bytes(1, "big") + name.encode() + b"\x07" + len(value.encode()).to_bytes(2, "big") + value.encode()
        for name, value in headers.items()
    )
    total = 12 + len(encoded) + len(payload) + 4
    prelude = total.to_bytes(4, "big") + len(encoded).to_bytes(4, "big")
    message = prelude + zlib.crc32(prelude).to_bytes(4, "big") + encoded + payload
    return message + zlib.crc32(message).to_bytes(4, "big")


def exception_frame(payload: bytes) -> tuple[dict[str, str], bytes, str]:
    error = orjson.loads(payload).get("error") or {}
    name = STREAM_EXCEPTIONS.get(str(error.get("type")), "internalServerException")
    headers = {":exception-type": name, ":content-type": "application/json"}
    return headers, orjson.dumps({"message": str(error.get("message") or name)}), "exception"


def sse_parts(event: bytes) -> tuple[bytes, bytes]:
    name, data = b"", []
    for line in event.split(b"\n"):
        if line.startswith(b"event:"):
            name = line[6:].strip()
        elif line.startswith(b"data:"):
            data.append(line[5:].strip())
    return name, b"\n".join(data)


def anthropic_shape(status: int, body: bytes) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """Claude's own errors pass through Vertex AI and Bedrock's Messages endpoint as Anthropic wrote them."""
    return status, body, [(b"content-type", b"application/json")]


def bedrock_shape(status: int, body: bytes) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """InvokeModel's error replies: `{"message"}` and the exception's name in `x-amzn-ErrorType`."""
    try:
        error = orjson.loads(body).get("error") or {}
    except (orjson.JSONDecodeError, AttributeError):
        error = {}
    status, name = BEDROCK_ERRORS.get(
        str(error.get("type")), (500 if status >= 500 else status, "InternalServerException")
    )
    headers = [
        (b"content-type", b"application/json"),
        (b"x-amzn-errortype", f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/".encode()),
    ]
    return status, orjson.dumps({"message": str(error.get("message") or name)}), headers


def bedrock_count(body: bytes) -> bytes:
    return orjson.dumps({"inputTokens": orjson.loads(body).get("input_tokens")})


def bedrock_to_anthropic(model: str) -> str:
    name = re.sub(r"^[a-z]+\.(?=anthropic\.)", "", model).removeprefix("anthropic.")
    return re.sub(r"-v\d+(:\d+)?$", "", name)


def sigv4_signature(
    scope: Scope, headers: dict[bytes, bytes], raw: bytes, parsed: re.Match[str], secret: str, stamp: str
) -> str:
    """The signature AWS would compute for this request, with botocore's own SigV4 implementation."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    names = parsed["signed"].split(";")
    path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    url = "http://" + headers.get(b"host", b"").decode("latin-1") + path.decode("latin-1")
    if query:
        url += "?" + query.decode("latin-1")
    signed = {name: headers.get(name.encode(), b"").decode("latin-1") for name in names if name != "host"}
    request = AWSRequest(method=scope["method"], url=url, data=raw, headers=signed)
    request.context["timestamp"] = stamp
    token = headers.get(b"x-amz-security-token", b"").decode("latin-1") or None
    signer = SigV4Auth(Credentials(parsed["key"], secret, token), parsed["service"], parsed["region"])
    canonical = signer.canonical_request(request)
    return str(signer.signature(signer.string_to_sign(request, canonical), request))


def sim_header(headers: dict[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [(b"x-sim", headers[b"x-sim"])] if b"x-sim" in headers else []


async def send_json(
    send: Send,
    status: int,
    payload: Any,
    extra: list[tuple[bytes, bytes]] | None = None,
    *,
    raw: bytes | None = None,
) -> None:
    body = raw if raw is not None else orjson.dumps(payload)
    headers = [(n, v) for n, v in (extra or []) if n != b"content-type"]
    headers += [
        (b"content-type", b"application/json"),
        (b"x-chatgate-simulator", b"true"),
    ]
    if not any(n in (b"x-amzn-requestid", b"x-request-id", b"request-id") for n, _ in headers):
        headers.append((b"x-amzn-requestid", str(uuid.uuid4()).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


__all__ = ["AWS_ACCESS_KEY", "AWS_SECRET_KEY", "BEDROCK_API_KEY", "Platforms"]
