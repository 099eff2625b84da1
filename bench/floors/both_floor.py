"""Both floors in one process: the HTTP floor on uvicorn and the gRPC floor on grpc.aio, one event loop
and one upstream session, as the gateway serves both protocols from one process.

It exists for memory: the idle RSS of the least a Python process serving the OpenAI HTTP API and the
chatgate.v1 gRPC service must hold (the interpreter, uvicorn, aiohttp, grpcio, protobuf and the
schema), measured like the gateway's.

python -m bench.floors.both_floor --port P --grpc-port G --upstream URL --key KEY
"""

from __future__ import annotations

import argparse
import asyncio

import grpc
import uvicorn
import uvloop

from chatgate.v1 import chat_service_pb2_grpc

from .common import Upstream
from .grpc_floor import Floor
from .http_floor import make_app


async def serve(port: int, grpc_port: int, upstream: Upstream) -> None:
    grpc_server = grpc.aio.server()
    chat_service_pb2_grpc.add_ChatCompletionServiceServicer_to_server(Floor(upstream), grpc_server)
    grpc_server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    await grpc_server.start()
    config = uvicorn.Config(
        make_app(upstream), host="127.0.0.1", port=port, loop="none", http="httptools", lifespan="on",
        log_level="warning", access_log=False,
    )  # fmt: skip
    await uvicorn.Server(config).serve()  # its lifespan starts the shared upstream session
    await grpc_server.stop(None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--key", required=True)
    options = parser.parse_args()
    uvloop.install()
    asyncio.run(serve(options.port, options.grpc_port, Upstream(options.upstream, options.key)))


if __name__ == "__main__":
    main()
