"""Stream writes held while a read's messages are routed (kemi_core.transport.stream,
HeldWrites): one write per connection at the read's end, in order; a handler about to block
writes them first; a held write that fails then is told to the core as a failed send."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

from kemi_core.config.model import ListenAddr
from kemi_core.sip import ParseLimits, SipMsg
from kemi_core.testing.process import free_port
from kemi_core.transport import endpoints
from kemi_core.transport.outbox import about_to_wait
from kemi_core.transport.stream import StreamConnection


def _request(n: int) -> bytes:
    return (f"MESSAGE sip:b@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK{n}"
            f"\r\nCall-ID: c{n}\r\nCSeq: {n} MESSAGE\r\nContent-Length: 0\r\n\r\n").encode()


class _Router:
    """Answers each message with ``route(msg, rcv)``."""

    def __init__(self) -> None:
        self.route: Callable[[SipMsg, object], object] = lambda msg, rcv: None

    def on_message(self, msg: SipMsg, rcv: object) -> None:
        self.route(msg, rcv)

    def on_bad_message(self, data: bytes, rcv: object, error: object) -> None:
        raise AssertionError("nothing bad is sent here")


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """What goes to the transports' write, each write."""
    seen: list[bytes] = []
    real = StreamConnection._write_now

    def spy(conn: StreamConnection, data: bytes) -> bool:
        seen.append(data)
        return real(conn, data)

    monkeypatch.setattr(StreamConnection, "_write_now", spy)
    return seen


async def _served(router: _Router, n_clients: int, run: Callable[..., object]) -> list[bytes]:
    """A worker listening on TCP, ``n_clients`` connected to it; ``run(ep, clients)``."""
    loop = asyncio.get_running_loop()
    port = free_port(socket.SOCK_STREAM)
    ep = endpoints.WorkerEndpoints(loop, [ListenAddr("tcp", "127.0.0.1", port)], router,
                                   ParseLimits(), False)  # type: ignore[arg-type]
    failed: list[bytes] = []
    ep.on_send_failed = failed.append
    clients = []
    try:
        await ep.start(udp=False)
        for _ in range(n_clients):
            clients.append(await asyncio.open_connection("127.0.0.1", port))
        deadline = loop.time() + 5
        while len(ep.conns) < n_clients and loop.time() < deadline:
            await asyncio.sleep(0.01)
        await run(ep, clients)  # type: ignore[misc]
    finally:
        for _, writer in clients:
            writer.close()
        ep.close()
    return failed


def _peer(writer: asyncio.StreamWriter) -> tuple[str, int]:
    host, port = writer.get_extra_info("sockname")[:2]
    return host, port


def test_what_a_reads_messages_send_goes_in_one_write_at_its_end(writes: list[bytes]) -> None:
    router = _Router()

    async def run(ep: endpoints.WorkerEndpoints, clients: list) -> None:
        reader, writer = clients[0]
        router.route = lambda msg, rcv: ep.send("tcp", *_peer(writer), msg.to_bytes())
        writer.write(b"".join(_request(n) for n in range(3)))  # one read, three messages
        want = b"".join(_request(n) for n in range(3))
        got = b""
        while len(got) < len(want):
            got += await asyncio.wait_for(reader.read(65536), 5)
        assert got == want

    assert asyncio.run(_served(router, 1, run)) == []
    assert writes == [b"".join(_request(n) for n in range(3))]


def test_a_handler_about_to_block_writes_what_is_held_first(writes: list[bytes]) -> None:
    router = _Router()
    seen_before: list[int] = []

    async def run(ep: endpoints.WorkerEndpoints, clients: list) -> None:
        reader, writer = clients[0]

        def route(msg: SipMsg, rcv: object) -> None:
            ep.send("tcp", *_peer(writer), msg.to_bytes())
            about_to_wait()  # (a database call would follow)
            seen_before.append(len(writes))

        router.route = route
        writer.write(_request(1) + _request(2))
        got = b""
        while len(got) < 2 * len(_request(1)):
            got += await asyncio.wait_for(reader.read(65536), 5)

    asyncio.run(_served(router, 1, run))
    assert seen_before == [1, 2]
    assert writes == [_request(1), _request(2)]


def test_a_held_write_that_fails_at_the_reads_end_is_a_failed_send(
        writes: list[bytes]) -> None:
    """The first message's routing sends on another connection, which is gone before the
    read's end (here: aborted by the second message's routing): the core hears of it."""
    router = _Router()

    async def run(ep: endpoints.WorkerEndpoints, clients: list) -> None:
        (_, writer), (_, other) = clients
        target = _peer(other)

        def route(msg: SipMsg, rcv: object) -> None:
            if msg.cseq.number == 1:
                assert ep.send("tcp", *target, msg.to_bytes())  # held: True now
            else:
                conn = ep.connection(*target)
                assert conn is not None
                conn.abort()

        router.route = route
        writer.write(_request(1) + _request(2))
        await asyncio.sleep(0.2)

    assert asyncio.run(_served(router, 2, run)) == [_request(1)]
    assert writes == [_request(1)]  # tried at the read's end: refused
