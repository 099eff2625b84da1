"""Listening sockets and the uvicorn servers on them: one place that knows how a port is bound."""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .. import observability
from ..core.errors import InvalidRequest
from ..http_api.openai_chat import error_json


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the gateway shuts both listeners down together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class StartupError(Exception):
    """The gateway cannot start (a port in use, say); the message is one line for the operator."""


def grpc_address(host: str, port: int) -> str:
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind(host: str, port: int, *, shared: bool = False) -> socket.socket:
    """A listening TCP socket; ``shared`` lets worker processes bind the same port (SO_REUSEPORT).

    It is created with ``IPPROTO_TCP`` on purpose: asyncio sets TCP_NODELAY only
    on accepted sockets of that protocol, and without it every response written
    as headers then body waits ~40 ms for the peer's delayed ACK (Nagle).
    """
    host = host.strip("[]")  # `[::1]` as in a URL
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:  # only between the workers of one supervisor: a second instance must fail
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # `::` serves IPv4 too
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(f"port {port} is in use on {host}") from None
        raise StartupError(f"cannot listen on {host} port {port}: {exc.strerror}") from None
    return sock


class JsonErrorProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, answering a request it cannot parse in OpenAI's error shape
    (the SDKs read `error.message`) rather than with a plain-text body."""

    def send_400_response(self, msg: str) -> None:
        observability.refused("http", "invalid_http_request")  # counted, like every other refusal
        body = error_json(InvalidRequest(f"The HTTP request could not be parsed: {msg}", code="invalid_http_request"))
        head = [
            b"HTTP/1.1 400 Bad Request\r\n",
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join([*head, body]))
        self.transport.close()


# Seconds an idle client connection is kept (uvicorn's default, stated): a proxy in front must drop
# its idle upstream connections sooner (deploy/envoy/envoy.yaml: 4 s), or it may send a request
# down a connection this side is closing.
KEEP_ALIVE = 5


def uvicorn_server(app: Any, log_level: str, grace: float) -> QuietServer:
    # log_config=None: uvicorn's records go through our own logging format.
    config = uvicorn.Config(
        app,
        log_level=log_level,
        log_config=None,
        access_log=False,
        lifespan="off",
        http=JsonErrorProtocol,
        proxy_headers=False,  # nothing reads client addresses; it costs a middleware call per request
        timeout_graceful_shutdown=int(grace),
        timeout_keep_alive=KEEP_ALIVE,
        server_header=False,
        date_header=False,
    )
    return QuietServer(config)
