"""The gRPC edge: ``chatgate.v1.ChatCompletionService``, health and reflection."""

from .server import GrpcServer, GrpcSettings, build_grpc_server

__all__ = ["GrpcServer", "GrpcSettings", "build_grpc_server"]
