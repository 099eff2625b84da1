"""The HTTP edge: every chat surface, the models list, probes and metrics, over the core.

A new API dialect is a surface module (see ``openai_chat.py``) plus one line
in ``SURFACES``; the lifecycle, error boundary and fast path are shared.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.codecs.openai_chat import model_json
from service.core import ChatService
from service.core.auth import KeyChecker
from service.core.errors import GatewayError, InternalError
from service.core.exchange import Caller, Exchange, request_id_from
from service.core.lifecycle import Lifecycle
from service.observability import Observed, exposition

from . import anthropic_messages, openai_chat, openai_responses
from .asgi import Receive, Scope, Send, TrackedSend, header
from .errors import error_headers, http_status
from .lifecycle import ChatEndpoint, HttpSettings, Surface
from .responses_compaction import COMPACT_PATH
from .responses_socket import OpenSockets, ResponsesSocket

log = logging.getLogger("chatgate.http")

# Path -> the dialect served there (POST); the Responses surface joins in `create_app` (it needs the store).
SURFACES: Mapping[str, Surface] = {
    openai_chat.PATH: openai_chat.OpenAIChat(),
    anthropic_messages.PATH: anthropic_messages.AnthropicMessages(),
    anthropic_messages.COUNT_PATH: anthropic_messages.AnthropicMessages("count_tokens"),
}


class ChatFastPath:
    """Sends chat POSTs straight to their endpoint, ahead of Starlette's router and
    middleware stack (each endpoint answers every error itself); everything else goes to Starlette.

    Every answer carries a request id. API routes (`/v1/...`, unknown paths
    included) are observed like chat requests: counted, access-logged, traced;
    probes and scrapes are not, so they do not drown the log."""

    __slots__ = ("app", "endpoints", "socket", "sockets")

    def __init__(
        self, endpoints: Mapping[str, ChatEndpoint], app: Starlette, socket: ResponsesSocket, sockets: OpenSockets
    ) -> None:
        self.endpoints, self.app = dict(endpoints), app
        self.socket = socket  # the Responses API over a WebSocket
        self.sockets = sockets  # what a drain waits for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket" and scope["path"] == openai_responses.PATH:
                await self.socket(scope, receive, send)
                return
            await self.app(scope, receive, send)  # type: ignore[arg-type]
            return
        if scope["method"] == "POST":
            endpoint = self.endpoints.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        exchange = Exchange(request_id_from(header(scope, b"x-request-id")), "http", other_route(scope["path"]))
        scope.setdefault("state", {})["exchange"] = exchange
        out = TrackedSend(send, exchange)
        if exchange.route in PROBES:
            await self.app(scope, receive, out)  # type: ignore[arg-type]
            return
        with Observed(exchange):  # the error handlers below set the outcome
            await self.app(scope, receive, out)  # type: ignore[arg-type]


PROBES = {"/livez", "/readyz", "/metrics", "/status/upstreams"}


def failed(request: Request, code: str) -> None:
    exchange: Exchange | None = request.scope.get("state", {}).get("exchange")
    if exchange is not None:
        exchange.outcome = code


def other_route(path: str) -> str:
    """The route label of a request outside the chat surfaces (bounded: never the raw path)."""
    if path in PROBES or path in ("/v1/models", "/admin/usage"):
        return path
    if path.startswith("/v1/models/"):
        return "/v1/models/{model_id}"
    if path.startswith(openai_responses.PATH + "/"):
        return openai_responses.PATH + (
            "/{response_id}/input_items" if path.endswith("/input_items") else "/{response_id}"
        )
    return "unknown"


def create_app(chat: ChatService, keys: KeyChecker, lifecycle: Lifecycle, settings: HttpSettings) -> ChatFastPath:
    responses = openai_responses.OpenAIResponses(chat.archive)  # over HTTP and over the WebSocket
    surfaces: dict[str, Surface] = {
        **SURFACES,
        openai_responses.PATH: responses,
        openai_responses.COUNT_PATH: openai_responses.ResponsesInputTokens(chat.archive),
        COMPACT_PATH: openai_responses.ResponsesCompact(chat.archive),
    }
    endpoints = {path: ChatEndpoint(surface, chat, keys, settings) for path, surface in surfaces.items()}

    def caller(request: Request) -> Caller:
        found = keys.check(request.headers.get("authorization"), request.headers.get("x-api-key"))
        exchange: Exchange | None = request.scope.get("state", {}).get("exchange")
        if exchange is not None:
            exchange.caller = found
        return found

    async def list_models(request: Request) -> Response:
        models = chat.list_models(caller(request))
        if "anthropic-version" in request.headers:  # an Anthropic SDK: its own shape, paged
            return json_response(anthropic_messages.models_page(models, request.query_params))
        return json_response({"object": "list", "data": [model_json(m) for m in models]})

    async def get_model(request: Request) -> Response:
        name = request.path_params["model_id"]
        model = chat.get_model(name, caller(request)).to_proto(name)  # answers under the name asked
        if "anthropic-version" in request.headers:
            return json_response(anthropic_messages.model_entry(model))
        return json_response(model_json(model))

    async def livez(_: Request) -> Response:
        return json_response({"status": "ok"})

    async def metrics(_: Request) -> Response:
        return Response(exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def readyz(_: Request) -> Response:
        return readiness(lifecycle)

    routes = [Route(path, endpoint, methods=["POST"]) for path, endpoint in endpoints.items()]
    if settings.usage is not None:
        routes.append(usage_route(settings.usage))
    routes += openai_responses.stored_routes(chat.archive, caller)
    routes += [
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
        Route("/livez", livez, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    if settings.metrics_route:  # no admin listener: the operator's routes are here
        routes.append(Route("/metrics", metrics, methods=["GET"]))
        routes.append(status_route(chat))
    handlers: dict[Any, Any] = {
        GatewayError: gateway_error_response,
        HTTPException: http_exception_response,
        Exception: unexpected_error_response,
    }
    sockets = OpenSockets()
    socket = ResponsesSocket(responses, chat, keys, lifecycle, sockets, settings.max_body_bytes)
    return ChatFastPath(endpoints, Starlette(routes=routes, exception_handlers=handlers), socket, sockets)


def usage_route(usage: Any) -> Route:
    """`GET /admin/usage?by=caller,model,day&since=2026-11-01`: the ledger's totals, for the admin key."""

    async def read(request: Request) -> Response:
        try:
            rows = await usage(request.headers.get("authorization"), request.query_params)
        except GatewayError as error:
            return error_response(error)
        return json_response({"object": "list", "data": rows})

    return Route("/admin/usage", read, methods=["GET"])


def create_admin_app(chat: ChatService, lifecycle: Lifecycle, usage: Any = None) -> Starlette:
    """The admin listener (`server.admin_port`): metrics and probes, away from the public port."""

    async def livez(_: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(_: Request) -> Response:
        return readiness(lifecycle)

    async def metrics(_: Request) -> Response:
        return Response(exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    routes = [
        Route("/livez", livez, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        status_route(chat),
    ]
    if usage is not None:
        routes.append(usage_route(usage))
    return Starlette(routes=routes, exception_handlers={HTTPException: http_exception_response})


def readiness(lifecycle: Lifecycle) -> Response:
    """Whether this process can serve: started and not draining. Never the upstream's state: every
    replica shares the upstream, so following it would take them all out of the Service at once,
    and clients would get the mesh's "no healthy upstream" instead of the gateway's own 503 with
    `Retry-After`. The upstream's state is in `/status/upstreams` and in the metrics."""
    if lifecycle.ready:
        return json_response({"status": "ready"})
    return json_response({"status": "draining" if lifecycle.draining else "starting"}, status=503)


def status_route(chat: ChatService) -> Route:
    """`GET /status/upstreams`: each upstream's keys by alias (in rotation, quarantined, rejected),
    breakers and rests, for operators."""

    async def status(_: Request) -> Response:
        return json_response({"upstreams": chat.upstream_status()})

    return Route("/status/upstreams", status, methods=["GET"])


def json_response(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


def error_response(error: GatewayError) -> Response:
    # The routes outside the chat surfaces are OpenAI's (`/v1/models`), so their errors are too.
    return Response(
        openai_chat.error_json(error),
        status_code=http_status(error),
        media_type="application/json",
        headers=error_headers(error),
    )


async def gateway_error_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    failed(request, exc.code)
    if "anthropic-version" in request.headers:  # an Anthropic SDK asked: its error shape
        status = NATIVE.error_status(exc)
        exchange = request.scope.get("state", {}).get("exchange")
        headers = error_headers(exc, status)
        if exchange is not None:
            headers["request-id"] = exchange.request_id
        return Response(NATIVE.error_body(exc), status_code=status, media_type="application/json", headers=headers)
    return error_response(exc)


NATIVE = SURFACES[anthropic_messages.PATH]  # the native dialect's error shape, for its SDKs' GET routes


async def http_exception_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = "unknown_url" if exc.status_code == 404 else "method_not_allowed"
    failed(request, code)
    message = (
        f"Unknown request URL: {request.method} {request.url.path}."
        if exc.status_code == 404
        else f"{request.method} is not allowed on {request.url.path}."
    )
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    return Response(
        orjson.dumps(body), status_code=exc.status_code, media_type="application/json", headers=dict(exc.headers or {})
    )


async def unexpected_error_response(request: Request, exc: Exception) -> Response:
    failed(request, "internal_error")
    log.error("unexpected failure: %s", type(exc).__name__, exc_info=exc)
    return error_response(InternalError("The gateway failed unexpectedly; the error was logged."))
