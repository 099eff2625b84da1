"""The simulator's HTTP surface: Anthropic's ``POST /v1/messages`` on a real socket, as raw ASGI.

It speaks the real wire (paths, headers, JSON bodies, SSE event order, error
shapes, status codes) and labels every answer with ``x-chatgate-simulator``.
Replies to identical requests are cached as finished bytes, so under load the
simulator costs little beside the gateway it serves.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict, deque
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson

from .asgi import Receive, Scope, Send, read_body
from .models import ModelTable
from .models import from_json as model_from_json
from .platforms import Platforms
from .scenario import account_of, directives, plan_reply, stream_events, usage
from .validation import ApiError, check_betas, validate, validate_count

log = logging.getLogger("chatgate.simulator")


MAX_BODY = 32 * 1024 * 1024
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
FAULT_FLAGS = (
    "status",
    "stall",
    "pace_ms",
    "error_after",
    "drop_after",
    "replay",
    "close_after",
    "hold_open",
    "reset_after_stop",
    "reset",
    "outage",
    "truncated",
    "stall_after_start",
)
INTERNAL_ADDRESS = "10.20.30.40:8443"  # what an upstream that quotes its own internals would say


class DroppedConnection(Exception):
    """Raised mid-response so the server closes the socket without finishing the body."""


def event_bytes(event: str, payload: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def rate_limit_headers() -> list[tuple[bytes, bytes]]:
    reset = (datetime.now(UTC) + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    headers = []
    for kind, limit in (
        ("requests", b"4000"),
        ("tokens", b"2000000"),
        ("input-tokens", b"2000000"),
        ("output-tokens", b"400000"),
    ):
        prefix = b"anthropic-ratelimit-" + kind.encode()
        headers += [(prefix + b"-limit", limit), (prefix + b"-remaining", limit), (prefix + b"-reset", reset)]
    return headers


class Simulator:
    """The ASGI app. ``stats`` counts requests and the ones whose client left early."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        replay_dir: Path | None = None,
        cache_size: int = 512,
        log_size: int = 64,
        key_faults: dict[str, tuple[int, str | None]] | None = None,
    ) -> None:
        self.api_key = api_key
        # Keys that always fail with a status (and retry-after): `--key-fault KEY=STATUS[:SECONDS]`.
        self.key_faults = key_faults or {}
        # Requests seen per key, by the key's last four characters (never the key).
        self.by_key: dict[str, int] = {}
        # Attempts seen per request body, for `sim:times=N` (fail only the first N).
        self.attempts: OrderedDict[bytes, int] = OrderedDict()
        self.replay_dir = replay_dir
        self.models = ModelTable()
        self.stats = {"requests": 0, "active": 0, "aborted": 0, "completed": 0, "model_listings": 0}
        self.outage_until = 0.0  # `sim:outage=S` or `POST /_sim/outage`: every message request answers 529
        self.overloaded_next = 0  # `POST /_sim/outage {"requests": N}`: the next N message requests answer 529
        self._cache: OrderedDict[bytes, tuple[int, list[tuple[bytes, bytes]], list[bytes]]] = OrderedDict()
        self._cache_size = cache_size
        # The most recent requests as received, for tests that check what the upstream saw.
        self.received: deque[dict[str, Any]] = deque(maxlen=log_size)
        # Claude in Amazon Bedrock and on Google Vertex AI, in front of the same simulator.
        self.platforms = Platforms(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        path, method = scope["path"], scope["method"]
        if path in ("/v1/messages", "/v1/messages/count_tokens") and method == "POST":
            await self.messages(scope, receive, send)
        elif path.startswith("/v1/models") and method == "GET":
            await self.list_models(scope, send)
        elif path == "/_sim/models" and method == "POST":
            await self.change_models(receive, send)
        elif path == "/_sim/outage" and method == "POST":  # {"seconds": S} or {"requests": N}; 0 ends it
            asked = orjson.loads(await read_body(receive) or b"{}")
            seconds = float(asked.get("seconds", 0))
            self.outage_until = time.monotonic() + seconds if seconds > 0 else 0.0
            self.overloaded_next = int(asked.get("requests", 0))
            await send_body(send, 200, [(b"content-type", b"application/json")], [b"{}"])
        elif path == "/_sim/requests" and method == "GET":
            await send_body(send, 200, [(b"content-type", b"application/json")], [orjson.dumps(list(self.received))])
        elif path == "/_sim/stats" and method == "GET":
            stats = {**self.stats, "by_key": self.by_key}
            await send_body(send, 200, [(b"content-type", b"application/json")], [orjson.dumps(stats)])
        elif (route := self.platforms.handler(path, method)) is not None:
            await route(scope, receive, send)
        else:
            await self.error(send, ApiError(404, "not_found_error", f"Not found: {method} {path}"), "req_sim_404")

    async def list_models(self, scope: Scope, send: Send) -> None:
        """`GET /v1/models` (paged with `limit`, `after_id`, `before_id`) and `GET /v1/models/{id}`."""
        self.stats["model_listings"] += 1
        headers = dict(scope["headers"])
        try:
            self.check_headers(headers, b"")
        except ApiError as error:
            await self.error(send, error, "req_sim_models")
            return
        key = headers.get(b"x-api-key", b"").decode("latin-1")
        if key in self.key_faults and self.key_faults[key][0] in (401, 403):  # a revoked key is revoked everywhere
            await self.key_fault(key, "req_sim_models", send)
            return
        if self.models.listing_fails:
            await self.error(send, ApiError(500, "api_error", "Internal server error"), "req_sim_models")
            return
        json = [(b"content-type", b"application/json"), (b"request-id", b"req_sim_models")]
        name = scope["path"].removeprefix("/v1/models").strip("/")
        if name:
            model = self.models.find(name)
            if model is None:
                await self.error(send, ApiError(404, "not_found_error", f"model: {name}"), "req_sim_models")
                return
            await send_body(send, 200, json, [orjson.dumps(model.to_json())])
            return
        query = parse_qs(scope.get("query_string", b"").decode())
        try:
            limit = int(query.get("limit", ["20"])[0])
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            await self.error(send, ApiError(400, "invalid_request_error", "limit: 1 to 1000"), "req_sim_models")
            return
        page = self.models.page(limit, query.get("after_id", [None])[0], query.get("before_id", [None])[0])
        await send_body(send, 200, json, [orjson.dumps(page)])

    async def change_models(self, receive: Receive, send: Send) -> None:
        """Test hook: `{"add": [Models API entries], "remove": [ids], "listing_fails": bool}`."""
        change = orjson.loads(await read_body(receive) or b"{}")
        for entry in change.get("add") or ():
            self.models.add(model_from_json(entry))
        for name in change.get("remove") or ():
            self.models.remove(str(name))
        if "listing_fails" in change:
            self.models.listing_fails = bool(change["listing_fails"])
        self._cache.clear()
        await send_body(send, 200, [(b"content-type", b"application/json")], [b"{}"])

    async def error(self, send: Send, error: ApiError, request_id: str, retry_after: str | None = None) -> None:
        body = orjson.dumps(
            {"type": "error", "error": {"type": error.kind, "message": error.message}, "request_id": request_id}
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"request-id", request_id.encode()),
            (b"x-chatgate-simulator", b"true"),
        ]
        if retry_after is not None:
            headers.append((b"retry-after", retry_after.encode()))
        await send_body(send, error.status, headers, [body])

    async def messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.stats["requests"] += 1
        headers = dict(scope["headers"])
        raw = await read_body(receive)
        self.received.append(received_entry(headers, raw, scope.get("query_string", b"").decode("latin-1")))
        request_id = "req_sim_" + hashlib.sha256(raw).hexdigest()[:20]
        key = headers.get(b"x-api-key", b"").decode("latin-1")
        self.by_key[key[-4:]] = self.by_key.get(key[-4:], 0) + 1
        if key in self.key_faults:
            await self.key_fault(key, request_id, send)
            return
        if self.overloaded_next > 0 or time.monotonic() < self.outage_until:
            self.overloaded_next = max(0, self.overloaded_next - 1)
            await self.error(send, ApiError(529, "overloaded_error", "Overloaded (simulated outage)"), request_id)
            return
        # Betas change what is valid and what an answer holds: they are part of the replay key.
        cache_key = b"\0".join(
            (
                raw,
                headers.get(b"x-sim", b""),
                headers.get(b"x-api-key", b""),
                headers.get(b"anthropic-beta", b""),
                headers.get(b"anthropic-version", b""),
            )
        )
        cached = self._cache.get(cache_key)
        if cached is not None:
            await send_body(send, *cached)
            return
        try:
            body = self.parse(headers, raw)
        except ApiError as error:
            await self.error(send, error, request_id)
            return
        flags = directives(body if isinstance(body, dict) else {}, headers.get(b"x-sim", b"").decode())
        if "only_model" in flags and isinstance(body, dict) and body.get("model") != flags["only_model"]:
            flags = without_faults(flags)
        flags = self.count_attempt(flags, raw, headers)
        if await self.early_fault(flags, key, request_id, send):
            return
        self.stats["active"] += 1
        gone = asyncio.Event()
        complete = asyncio.Event()

        async def tracked_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                complete.set()  # the server reports a disconnect once the reply is whole
            await send(message)

        watcher = asyncio.create_task(self.watch_disconnect(receive, asyncio.current_task(), gone, complete))
        try:
            if scope["path"].endswith("/count_tokens"):
                await self.count(body, request_id, tracked_send, betas_of(headers))
            else:
                await self.answer(
                    body,
                    flags,
                    request_id,
                    cache_key,
                    tracked_send,
                    betas_of(headers),
                    version=headers.get(b"anthropic-version", b"").decode("latin-1"),
                    account=account_of(key),
                )
        except asyncio.CancelledError:
            if not gone.is_set():
                raise
            # The client left: count it, and end quietly rather than as an app error.
            self.stats["aborted"] += 1
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        finally:
            watcher.cancel()
            self.stats["active"] -= 1

    def parse(self, headers: dict[bytes, bytes], raw: bytes) -> Any:
        """The request body, after the checks that come before reading it as a request."""
        self.check_headers(headers, raw)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ApiError(400, "invalid_request_error", "Request body is not valid JSON.") from None
        check_betas(body, headers.get(b"anthropic-beta", b"").decode("latin-1"))
        return body

    async def key_fault(self, key: str, request_id: str, send: Send) -> None:
        status, retry = self.key_faults[key]
        error = ApiError(status, ERROR_TYPES.get(status, "api_error"), f"Simulated HTTP {status} for this key.")
        await self.error(send, error, request_id, retry)

    def count_attempt(self, flags: dict[str, str], raw: bytes, headers: dict[bytes, bytes]) -> dict[str, str]:
        """With `sim:times=N`, the fault directives apply to the first N attempts of this body only."""
        if "times" not in flags:
            return flags
        counted = raw + b"\0" + headers.get(b"x-sim", b"")  # every key's attempts count
        seen = self.attempts[counted] = self.attempts.get(counted, 0) + 1
        if len(self.attempts) > self._cache_size:
            self.attempts.popitem(last=False)
        return without_faults(flags) if seen > int(flags["times"] or 1) else flags

    async def early_fault(self, flags: dict[str, str], key: str, request_id: str, send: Send) -> bool:
        """Faults answered before any reply is planned; True when one was sent."""
        if "outage" in flags:  # from now on, every request is overloaded for S seconds
            self.outage_until = time.monotonic() + float(flags["outage"] or 10)
            await self.error(send, ApiError(529, "overloaded_error", "Overloaded (simulated outage)"), request_id)
            return True
        if "reset" in flags:  # the status line, then the connection breaks before the body is whole
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4096")]})
            await send({"type": "http.response.body", "body": b'{"type"', "more_body": True})
            return True
        if "echo_key" in flags:
            # An upstream that quotes the request's credentials and its own address back.
            message = f"Invalid request from {INTERNAL_ADDRESS} with x-api-key {key} at http://{INTERNAL_ADDRESS}/v1"
            status = int(flags.get("status") or 500)
            await self.error(send, ApiError(status, ERROR_TYPES.get(status, "api_error"), message), request_id)
            return True
        if "spend_limit" in flags:  # a workspace spend limit: a 429 that waiting does not cure
            message = "You have reached your specified workspace spend limit."
            await self.error(send, ApiError(429, "rate_limit_error", message), request_id)
            return True
        if "html" in flags:  # a proxy's error page, not Anthropic's JSON
            status = int(flags["html"] or 502)
            page = f"<html><body><h1>{status} Bad Gateway</h1><p>nginx</p></body></html>".encode()
            await send_body(send, status, [(b"content-type", b"text/html")], [page])
            return True
        return False

    async def watch_disconnect(
        self, receive: Receive, task: asyncio.Task[Any] | None, gone: asyncio.Event, complete: asyncio.Event
    ) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if task is not None and not task.done() and not complete.is_set():
            gone.set()
            task.cancel()

    def check_headers(self, headers: dict[bytes, bytes], raw: bytes) -> None:
        key = headers.get(b"x-api-key")
        if not key:
            raise ApiError(401, "authentication_error", "x-api-key header is required")
        if self.api_key is not None and key.decode() != self.api_key:
            raise ApiError(401, "authentication_error", "invalid x-api-key")
        if b"anthropic-version" not in headers:
            raise ApiError(400, "invalid_request_error", "anthropic-version: header is required")
        if len(raw) > MAX_BODY:
            raise ApiError(413, "request_too_large", "Request exceeds the maximum allowed number of bytes.")

    async def answer(
        self,
        body: Any,
        flags: dict[str, str],
        request_id: str,
        cache_key: bytes,
        send: Send,
        betas: frozenset[str] = frozenset(),
        *,
        version: str = "2023-06-01",
        account: str = "default",
    ) -> None:
        if "stall" in flags:
            await asyncio.sleep(float(flags["stall"] or 1))
        if "status" in flags:
            status = int(flags["status"] or 500)
            error = ApiError(status, ERROR_TYPES.get(status, "api_error"), f"Simulated HTTP {status}.")
            await self.error(send, error, request_id, flags.get("retry_after"))
            return
        if "replay" in flags:
            await self.replay(flags["replay"], bool(body.get("stream")), send)
            return
        try:
            model = validate(body, self.models, betas, version=version, account=account)
        except ApiError as error:
            await self.error(send, error, request_id)
            return
        signer = account if model.rules.account_bound else ""
        reply = plan_reply(
            body, flags, always_thinks=model.rules.always_thinks, display=model.rules.display, signer=signer
        )
        headers = [(b"request-id", request_id.encode()), (b"x-chatgate-simulator", b"true"), *rate_limit_headers()]
        if body.get("stream"):
            headers.append((b"content-type", b"text/event-stream; charset=utf-8"))
            chunks = [event_bytes(name, payload) for name, payload in stream_events(reply, flags)]
        else:
            headers.append((b"content-type", b"application/json"))
            chunks = [orjson.dumps(reply.message_json())]
        if any(flag in flags for flag in FAULT_FLAGS):
            await self.send_with_faults(send, headers, chunks, flags)
            return
        self.remember(cache_key, (200, headers, chunks))
        await send_body(send, 200, headers, chunks)
        self.stats["completed"] += 1

    async def count(self, body: Any, request_id: str, send: Send, betas: frozenset[str] = frozenset()) -> None:
        """`POST /v1/messages/count_tokens`: the input tokens the same request would use."""
        try:
            validate_count(body, self.models, betas)
        except ApiError as error:
            await self.error(send, error, request_id)
            return
        counted = usage(body, {})["input_tokens"]
        headers = [(b"content-type", b"application/json"), (b"request-id", request_id.encode())]
        await send_body(send, 200, headers, [orjson.dumps({"input_tokens": counted})])

    def remember(self, key: bytes, response: tuple[int, list[tuple[bytes, bytes]], list[bytes]]) -> None:
        self._cache[key] = response
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def send_with_faults(
        self, send: Send, headers: list[tuple[bytes, bytes]], chunks: list[bytes], flags: dict[str, str]
    ) -> None:
        pace = float(flags.get("pace_ms") or 0) / 1000
        error_after = int(flags["error_after"]) if flags.get("error_after") else None
        drop_after = int(flags["drop_after"]) if flags.get("drop_after") else None
        close_after = int(flags["close_after"]) if flags.get("close_after") else None
        if "truncated" in flags:  # a body cut in the middle, then a clean close
            whole = b"".join(chunks)
            await send_body(send, 200, headers, [whole[: len(whole) // 2]])
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        deltas = 0
        for chunk in chunks:
            if b"content_block_delta" in chunk[:40]:
                if error_after is not None and deltas == error_after:
                    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
                    await send({"type": "http.response.body", "body": event_bytes("error", error), "more_body": False})
                    return
                if drop_after is not None and deltas == drop_after:
                    raise DroppedConnection("simulated connection drop")
                if close_after is not None and deltas == close_after:  # a clean end without `message_stop`
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
                deltas += 1
                if pace:
                    await asyncio.sleep(pace)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if b"message_start" in chunk[:40] and flags.get("stall_after_start"):
                await asyncio.sleep(float(flags["stall_after_start"]))  # silent: not even a ping
        if "reset_after_stop" in flags:  # the answer is whole; then the connection breaks
            raise DroppedConnection("simulated connection drop after message_stop")
        if flags.get("hold_open"):  # the answer is whole; the connection stays open
            await asyncio.sleep(float(flags["hold_open"]))
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self.stats["completed"] += 1

    async def replay(self, name: str, stream: bool, send: Send) -> None:
        """Plays back a recorded response byte for byte: ``NAME.sse`` or ``NAME.json``."""
        if self.replay_dir is None or not name.replace("_", "").replace("-", "").isalnum():
            await self.error(send, ApiError(404, "not_found_error", "No replay directory or bad name."), "req_sim")
            return
        path = self.replay_dir / (name + (".sse" if stream else ".json"))
        if not path.is_file():
            await self.error(send, ApiError(404, "not_found_error", f"No recording named {path.name}."), "req_sim")
            return
        content_type = b"text/event-stream; charset=utf-8" if stream else b"application/json"
        headers = [
            (b"content-type", content_type),
            (b"request-id", b"req_replay_" + name.encode()),
            (b"x-chatgate-simulator", b"replay"),
        ]
        await send_body(send, 200, headers, [path.read_bytes()])


def betas_of(headers: dict[bytes, bytes]) -> frozenset[str]:
    """The betas a request turned on (`anthropic-beta`, comma-separated)."""
    raw = headers.get(b"anthropic-beta", b"").decode("latin-1")
    return frozenset(b.strip() for b in raw.split(",") if b.strip())


def without_faults(flags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in flags.items() if k not in FAULT_FLAGS and k not in ("html", "echo_key", "spend_limit")}


def received_entry(headers: dict[bytes, bytes], raw: bytes, query: str = "") -> dict[str, Any]:
    """What a test may check about a request: its body and the protocol headers (never the key)."""
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = raw.decode("utf-8", "replace")
    names = (b"anthropic-version", b"anthropic-beta", b"content-type", b"x-request-id")
    return {
        "body": body,
        "query": query,
        "headers": {n.decode(): headers[n].decode() for n in names if n in headers},
        "has_api_key": bool(headers.get(b"x-api-key")),
    }


async def send_body(send: Send, status: int, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if len(chunks) == 1:
        await send({"type": "http.response.body", "body": chunks[0]})
        return
    # One write for the whole stream keeps a zero-latency simulator cheap.
    await send({"type": "http.response.body", "body": b"".join(chunks)})
