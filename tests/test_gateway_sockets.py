"""The listening sockets: accepted connections must have TCP_NODELAY.

Without it every response written as headers then body waits for the peer's
delayed ACK (about 40 ms on Linux); this checks the property, not the timing.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from service.gateway import bind


def test_accepted_connections_have_tcp_nodelay() -> None:
    async def scenario() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        listener = bind("127.0.0.1", 0)
        server = await asyncio.start_server(on_connect, sock=listener)
        _, writer = await asyncio.open_connection("127.0.0.1", listener.getsockname()[1])
        value = await asyncio.wait_for(accepted, 5)
        writer.close()
        server.close()
        await server.wait_closed()
        return value

    assert asyncio.run(scenario()) == 1


def test_workers_share_a_port_and_a_single_process_does_not() -> None:
    first = bind("127.0.0.1", 0, shared=True)
    second = bind("127.0.0.1", first.getsockname()[1], shared=True)
    assert first.getsockname() == second.getsockname()
    lone = bind("127.0.0.1", 0)
    with pytest.raises(OSError):
        bind("127.0.0.1", lone.getsockname()[1])
    for sock in (first, second, lone):
        sock.close()
