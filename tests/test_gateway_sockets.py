"""The listening sockets: accepted connections must have TCP_NODELAY.

Without it every response written as headers then body waits for the peer's
delayed ACK (about 40 ms on Linux); this checks the property, not the timing.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from service.app.listeners import StartupError, bind, grpc_address


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
    port = lone.getsockname()[1]
    with pytest.raises(StartupError, match=f"port {port} is in use"):
        bind("127.0.0.1", port)
    for sock in (first, second, lone):
        sock.close()


@pytest.mark.parametrize(
    ("host", "family"), [("::1", socket.AF_INET6), ("[::1]", socket.AF_INET6), ("::", socket.AF_INET6)]
)
def test_ipv6_listen_addresses(host: str, family: int) -> None:
    sock = bind(host, 0)
    try:
        assert sock.family == family
    finally:
        sock.close()


def test_dual_stack_accepts_ipv4() -> None:
    sock = bind("::", 0)
    try:
        with socket.create_connection(("127.0.0.1", sock.getsockname()[1]), timeout=5):
            pass
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("host", "address"),
    [("::1", "[::1]:5"), ("[::1]", "[::1]:5"), ("127.0.0.1", "127.0.0.1:5"), ("localhost", "localhost:5")],
)
def test_grpc_addresses_bracket_ipv6(host: str, address: str) -> None:
    assert grpc_address(host, 5) == address


def test_each_worker_spills_to_its_own_ledger_file() -> None:
    """Two workers appending to (and replaying) one spill file would lose records."""
    from service.app.config import load_settings
    from service.app.workers import of_worker

    settings = load_settings({}, {"CHATGATE_LEDGER_SPILL": "/var/lib/chatgate/ledger.spill.jsonl"})
    spills = {of_worker(settings, i).ledger_spill for i in range(3)}
    assert spills == {f"/var/lib/chatgate/ledger.spill.w{i}.jsonl" for i in range(3)}
    assert of_worker(settings, 1).ledger_spill == of_worker(settings, 1).ledger_spill  # kept across restarts
