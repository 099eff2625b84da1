"""Builds the grpc.aio server: the chat service, standard health checking, optional reflection."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import _async as health_aio  # the aio servicer, which health.aio re-exports
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2
from grpc_reflection.v1alpha._async import ReflectionServicer  # the aio servicer reflection.aio names

from chatgate.v1 import chat_service_pb2, chat_service_pb2_grpc
from service.core import ChatService
from service.core.auth import KeyChecker
from service.core.lifecycle import Lifecycle

from .boundary import CallPrologue, Calls
from .heartbeat import StreamHeartbeat
from .servicer import ChatCompletionServicer

SERVICE_NAME = chat_service_pb2.DESCRIPTOR.services_by_name["ChatCompletionService"].full_name
# Health is about this process: every name serves from start to shutdown, whatever the upstream
# does ("liveness" too, kept for probes configured with it).
LIVENESS_NAME = "liveness"


REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
TERMINATE_AHEAD = 0.25  # seconds before the grace ends that leftover calls are ended with `shutting_down`


@dataclass(frozen=True, slots=True)
class GrpcSettings:
    reflection: bool
    # Matches the HTTP body limit; larger messages fail with RESOURCE_EXHAUSTED.
    max_message_bytes: int
    # Lets worker processes share the port; off for one process, so a port clash fails loudly.
    reuse_port: bool
    # Seconds of silence after which a server stream gets a keep-alive chunk (0: never).
    heartbeat: float = 0.0


@dataclass(slots=True)
class GrpcServer:
    server: grpc.aio.Server
    health: health_aio.HealthServicer
    port: int
    calls: Calls

    async def start(self) -> None:
        await self.server.start()
        for name in ("", SERVICE_NAME, LIVENESS_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float) -> None:
        """Marks every service NOT_SERVING, lets in-flight calls finish within ``grace``, and ends
        the ones still running just before it with UNAVAILABLE `shutting_down` (not a bare cancel)."""
        await self.health.enter_graceful_shutdown()
        timer = asyncio.get_running_loop().call_later(max(0.0, grace - TERMINATE_AHEAD), self.calls.terminate)
        try:
            await self.server.stop(grace)
        finally:
            timer.cancel()


def build_grpc_server(
    chat: ChatService, keys: KeyChecker, address: str, settings: GrpcSettings, lifecycle: Lifecycle | None = None
) -> GrpcServer:
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        # Allow clients that ping every 10 s, even between calls, without GOAWAY.
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # The server pings idle connections itself, so proxies with idle timeouts keep them.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.so_reuseport", int(settings.reuse_port)),
    ]
    calls = Calls(lifecycle or Lifecycle())
    server = grpc.aio.server(options=options)
    heartbeat = StreamHeartbeat(settings.heartbeat) if settings.heartbeat > 0 else None
    add_chat_service(server, ChatCompletionServicer(chat), CallPrologue(keys, calls, heartbeat))
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if settings.reflection:
        enable_reflection(server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind the gRPC listener to {address}")
    return GrpcServer(server, health_servicer, port, calls)


class _Registered:
    """Stands in for the server while the generated code registers the service: keeps its handlers."""

    def __init__(self) -> None:
        self.service = ""
        self.handlers: dict[str, Any] = {}

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        return None  # the same handlers arrive by name below

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self.service, self.handlers = service, dict(handlers)


def add_chat_service(server: grpc.aio.Server, servicer: ChatCompletionServicer, prologue: CallPrologue) -> None:
    """Registers the chat service with every method's handler wrapped in the prologue."""
    registered = _Registered()
    chat_service_pb2_grpc.add_ChatCompletionServiceServicer_to_server(servicer, registered)  # type: ignore[no-untyped-call]
    wrapped = {name: prologue.wrap(name, handler) for name, handler in registered.handlers.items()}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(registered.service, wrapped),))
    server.add_registered_method_handlers(registered.service, wrapped)  # type: ignore[attr-defined]


def enable_reflection(server: grpc.aio.Server) -> None:
    """Server reflection as both ``grpc.reflection.v1`` (which newer tools try first) and ``v1alpha``.

    grpcio-reflection ships only v1alpha; the two services have the same
    messages on the wire, so one servicer answers under both names.
    """
    health = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    servicer = ReflectionServicer((SERVICE_NAME, health, REFLECTION_V1, reflection.SERVICE_NAME))
    for name in (REFLECTION_V1, reflection.SERVICE_NAME):
        handler = grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": handler}),)
        )
