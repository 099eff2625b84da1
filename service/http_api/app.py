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
from service.core.lifecycle import Lifecycle
from service.observability import exposition

from . import openai_chat
from .asgi import Receive, Scope, Send
from .errors import error_headers, http_status
from .lifecycle import ChatEndpoint, HttpSettings, Surface

log = logging.getLogger("chatgate.http")

# Path -> the dialect served there (POST).
SURFACES: Mapping[str, Surface] = {openai_chat.PATH: openai_chat.OpenAIChat()}


class ChatFastPath:
    """Sends chat POSTs straight to their endpoint, ahead of Starlette's router and
    middleware stack (each endpoint answers every error itself); everything else goes to Starlette."""

    __slots__ = ("app", "endpoints")

    def __init__(self, endpoints: Mapping[str, ChatEndpoint], app: Starlette) -> None:
        self.endpoints, self.app = dict(endpoints), app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.endpoints.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)  # type: ignore[arg-type]


def create_app(chat: ChatService, keys: KeyChecker, lifecycle: Lifecycle, settings: HttpSettings) -> ChatFastPath:
    endpoints = {path: ChatEndpoint(surface, chat, keys, settings) for path, surface in SURFACES.items()}

    async def list_models(request: Request) -> Response:
        keys.check(request.headers.get("authorization"))
        data = [model_json(m.to_proto()) for m in chat.list_models()]
        return json_response({"object": "list", "data": data})

    async def get_model(request: Request) -> Response:
        keys.check(request.headers.get("authorization"))
        return json_response(model_json(chat.get_model(request.path_params["model_id"]).to_proto()))

    async def livez(_: Request) -> Response:
        return json_response({"status": "ok"})

    async def metrics(_: Request) -> Response:
        return Response(exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def readyz(_: Request) -> Response:
        if lifecycle.ready and chat.ready:
            return json_response({"status": "ready"})
        if lifecycle.draining or not lifecycle.started:
            return json_response({"status": "draining" if lifecycle.draining else "starting"}, status=503)
        # Every key of an upstream is out of rotation or behind an open breaker. Liveness
        # (/livez) never depends on the upstream, so this never restarts the process.
        return json_response({"status": "upstream_unavailable"}, status=503)

    routes = [Route(path, endpoint, methods=["POST"]) for path, endpoint in endpoints.items()]
    routes += [
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
        Route("/livez", livez, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    handlers: dict[Any, Any] = {
        GatewayError: gateway_error_response,
        HTTPException: http_exception_response,
        Exception: unexpected_error_response,
    }
    return ChatFastPath(endpoints, Starlette(routes=routes, exception_handlers=handlers))


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


async def gateway_error_response(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc)


async def http_exception_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = "unknown_url" if exc.status_code == 404 else "method_not_allowed"
    message = (
        f"Unknown request URL: {request.method} {request.url.path}."
        if exc.status_code == 404
        else f"{request.method} is not allowed on {request.url.path}."
    )
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    return Response(
        orjson.dumps(body), status_code=exc.status_code, media_type="application/json", headers=dict(exc.headers or {})
    )


async def unexpected_error_response(_: Request, exc: Exception) -> Response:
    log.error("unexpected failure: %s", type(exc).__name__, exc_info=exc)
    return error_response(InternalError("The gateway failed unexpectedly; the error was logged."))
