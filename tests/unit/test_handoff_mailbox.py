"""Workers' mailboxes (kemi_core.transport.handoff): what one loop turn hands to a worker goes
as one datagram; a burst of hand-overs larger than a worker's datagram queue
(net.unix.max_dgram_qlen, 10 by default) all arrive, in order, once the worker reads again; a
worker that is not there is a clear False, one gone after post took a hand-over is told."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from kemi_core.config.model import ListenAddr
from kemi_core.sip import ParseLimits, SipMsg
from kemi_core.testing.process import free_port
from kemi_core.transport import endpoints, handoff, outbox
from kemi_core.transport.handoff import BUNDLE_MAX, Mailbox, bundle, owner_key, unbundle
from kemi_core.transport.outbox import about_to_wait
from kemi_core.transport.stream import StreamConnection

BURST = 200


def test_a_burst_waits_for_room_and_arrives_in_order() -> None:
    async def run() -> list[bytes]:
        loop = asyncio.get_running_loop()
        tag = os.getpid() * 1000 + 7  # a fake main pid: names nobody else uses
        sender, receiver = Mailbox(tag, 1, loop), Mailbox(tag, 2, loop)
        got: list[bytes] = []
        try:
            # the receiver does not read yet: its queue fills, the rest must wait, not be lost
            for n in range(BURST):
                assert sender.post(2, b"S%d" % n)
                await asyncio.sleep(0)  # a turn each: a datagram each
            loop.add_reader(receiver.sock.fileno(), receiver.drain, got.append)
            deadline = loop.time() + 10
            while len(got) < BURST and loop.time() < deadline:
                await asyncio.sleep(0.01)
            loop.remove_reader(receiver.sock.fileno())
        finally:
            sender.close()
            receiver.close()
        return got

    got = asyncio.run(run())
    assert got == [b"S%d" % n for n in range(BURST)]


def test_what_one_turn_hands_over_goes_as_one_datagram_per_worker() -> None:
    async def run() -> tuple[list[bytes], list[bytes]]:
        loop = asyncio.get_running_loop()
        tag = os.getpid() * 1000 + 10
        sender, two, three = (Mailbox(tag, rank, loop) for rank in (1, 2, 3))
        try:
            for n in range(5):
                assert sender.post(2, b"S%d" % n)
            assert sender.post(3, b"R0")
            await asyncio.sleep(0.05)
            datagrams = []
            for _ in range(3):
                try:
                    datagrams.append(two.sock.recv(1 << 16))
                except BlockingIOError:
                    break
            got: list[bytes] = []
            three.drain(got.append)
        finally:
            for box in (sender, two, three):
                box.close()
        return datagrams, got

    datagrams, got = asyncio.run(run())
    assert len(datagrams) == 1
    assert unbundle(datagrams[0]) == [b"S%d" % n for n in range(5)]
    assert got == [b"R0"]  # one alone goes as it is


def test_a_turn_that_hands_over_much_sends_before_its_end() -> None:
    async def run() -> int:
        loop = asyncio.get_running_loop()
        tag = os.getpid() * 1000 + 11
        sender, receiver = Mailbox(tag, 1, loop), Mailbox(tag, 2, loop)
        try:
            packet = b"S" + b"x" * (BUNDLE_MAX // 4)
            for _ in range(4):
                sender.post(2, packet)
            sent = len(receiver.sock.recv(1 << 20))  # before the turn ends
        finally:
            sender.close()
            receiver.close()
        return sent

    assert asyncio.run(run()) > BUNDLE_MAX


def test_a_handler_about_to_block_sends_what_the_turn_handed_over() -> None:
    async def run() -> bytes:
        loop = asyncio.get_running_loop()
        tag = os.getpid() * 1000 + 13
        sender, receiver = Mailbox(tag, 1, loop), Mailbox(tag, 2, loop)
        try:
            sender.post(2, b"S1")
            sender.post(2, b"S2")
            about_to_wait()
            got = receiver.sock.recv(1 << 16)  # before the turn ends
            assert sender.send_held not in outbox.held_elsewhere
        finally:
            sender.close()
            receiver.close()
        return got

    assert unbundle(asyncio.run(run())) == [b"S1", b"S2"]


def test_bundles_round_trip_and_a_malformed_one_gives_nothing() -> None:
    packets = [b"S1\0tcp\0h\0" + b"\0M" * 3, b"", b"M", b"R" * 300]
    assert unbundle(bundle(packets)) == packets
    assert unbundle(bundle(packets)[:-1]) == []  # malformed: nothing
    assert unbundle(b"M\0") == []
    assert bundle([b"Sabc"]) == b"Sabc"  # one alone goes as it is (S, R, F: never M)
    assert unbundle(b"Sabc") == [b"Sabc"]


def test_a_worker_gone_after_post_took_a_hand_over_is_told() -> None:
    async def run() -> list[bytes]:
        loop = asyncio.get_running_loop()
        tag = os.getpid() * 1000 + 12
        lost: list[bytes] = []
        sender, receiver = Mailbox(tag, 1, loop, lost.append), Mailbox(tag, 2, loop)
        try:
            assert sender.post(2, b"S1")
            assert sender.post(2, b"S2")
            receiver.close()  # gone before the turn ends
            await asyncio.sleep(0.01)
        finally:
            sender.close()
        return lost

    assert asyncio.run(run()) == [b"S1", b"S2"]


def test_posting_to_a_worker_that_is_not_there_fails() -> None:
    async def run() -> bool:
        box = Mailbox(os.getpid() * 1000 + 8, 1, asyncio.get_running_loop())
        try:
            return box.post(5, b"Sx")
        finally:
            box.close()

    assert asyncio.run(run()) is False


def test_owner_keys_tell_a_plain_from_a_tls_connection_of_one_source_port() -> None:
    # a client may use one source port for a ws:// and a wss:// connection, held by two
    # workers: each must be found (a ws connection is opened as tcp, wss as tls)
    assert owner_key("127.0.0.1", 5999, "ws") == owner_key("127.0.0.1", 5999, "tcp")
    assert owner_key("127.0.0.1", 5999, "wss") == owner_key("127.0.0.1", 5999, "tls")
    assert owner_key("127.0.0.1", 5999, "ws") != owner_key("127.0.0.1", 5999, "wss")


class _Owners(dict[str, int]):
    """The shared table of connection owners, in one process."""

    def put(self, key: str, value: int) -> None:
        self[key] = value

    def delete(self, key: str) -> None:
        self.pop(key, None)


class _NoReceiver:
    def on_message(self, msg: object, rcv: object) -> None:
        raise AssertionError("nothing is received here")

    def on_bad_message(self, data: bytes, rcv: object, error: object) -> None:
        raise AssertionError("nothing is received here")


def test_a_hand_over_to_a_gone_connection_comes_back_as_a_send_failure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker 1 hands a message for a connection the table says worker 2 holds; worker 2 has
    no such connection (any more): it hands the message back, and worker 1 does what it does
    for a connection nobody holds (WebSocket: nothing; TCP: a new connection, refused here),
    then reports the send as failed."""
    monkeypatch.setattr(endpoints, "main_pid", lambda: os.getpid() * 1000 + 9)
    refused = free_port(socket.SOCK_STREAM)  # nobody listens there

    async def run() -> list[bytes]:
        loop = asyncio.get_running_loop()
        owners = _Owners({owner_key("127.0.0.1", 5999, "ws"): 2,
                          owner_key("127.0.0.1", refused, "tcp"): 2})
        failed: list[bytes] = []
        workers = [endpoints.WorkerEndpoints(loop, [], _NoReceiver(), ParseLimits(), True,
                                             rank=rank, owners=owners)  # type: ignore[arg-type]
                   for rank in (1, 2)]
        try:
            for ep in workers:
                await ep.start(udp=False)
            workers[0].on_send_failed = failed.append
            assert workers[0].send("ws", "127.0.0.1", 5999, b"to ws")
            assert workers[0].send("tcp", "127.0.0.1", refused, b"to tcp")
            deadline = loop.time() + 5
            while len(failed) < 2 and loop.time() < deadline:
                await asyncio.sleep(0.01)
        finally:
            for ep in workers:
                ep.close()
        return failed

    assert asyncio.run(run()) == [b"to ws", b"to tcp"]


class _Replies:
    """Receives what the connection's peer sends (replies), in order."""

    def __init__(self) -> None:
        self.got: list[bytes] = []

    def on_message(self, msg: SipMsg, rcv: object) -> None:
        self.got.append(msg.to_bytes())

    def on_bad_message(self, data: bytes, rcv: object, error: object) -> None:
        raise AssertionError("nothing bad is sent here")


def _request(n: int) -> bytes:
    return (f"MESSAGE sip:b@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK{n}"
            f"\r\nCall-ID: c{n}\r\nCSeq: {n} MESSAGE\r\nContent-Length: 0\r\n\r\n").encode()


def _workers(port: int, ranks: int, owners: _Owners) -> list[endpoints.WorkerEndpoints]:
    """Workers 1..ranks sharing ``owners``; the last one listens on TCP ``port``."""
    loop = asyncio.get_running_loop()
    return [endpoints.WorkerEndpoints(
        loop, [ListenAddr("tcp", "127.0.0.1", port)] if rank == ranks else [], _Replies(),
        ParseLimits(), True, rank=rank, owners=owners)  # type: ignore[arg-type]
        for rank in range(1, ranks + 1)]


async def _connect_to(workers: list[endpoints.WorkerEndpoints], port: int, owners: _Owners,
                      ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str, int]:
    """Start the workers and connect to the listening one; back once it recorded the
    connection in ``owners``: the reader, the writer and our end's address."""
    loop = asyncio.get_running_loop()
    for ep in workers:
        await ep.start(udp=False)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    host, cport = writer.get_extra_info("sockname")[:2]
    deadline = loop.time() + 5
    while not owners and loop.time() < deadline:
        await asyncio.sleep(0.01)
    return reader, writer, host, cport


def test_sends_handed_over_in_a_row_go_out_in_one_write_in_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker 1 hands three messages for a connection worker 2 holds in one turn: worker 2
    writes them with one write, in order; one handed over later goes on its own."""
    monkeypatch.setattr(endpoints, "main_pid", lambda: os.getpid() * 1000 + 14)
    port = free_port(socket.SOCK_STREAM)
    writes: list[bytes] = []
    real_write = StreamConnection.write

    def write(conn: StreamConnection, data: bytes, message: bytes | None = None) -> bool:
        writes.append(data)
        return real_write(conn, data, message)

    monkeypatch.setattr(StreamConnection, "write", write)

    async def run() -> bytes:
        owners = _Owners()
        workers = _workers(port, 2, owners)
        writer = None
        try:
            reader, writer, host, cport = await _connect_to(workers, port, owners)
            for n in range(3):
                assert workers[0].send("tcp", host, cport, _request(n))
            await asyncio.sleep(0.1)
            assert workers[0].send("tcp", host, cport, _request(3))
            want = b"".join(_request(n) for n in range(4))
            got = b""
            while len(got) < len(want):
                got += await asyncio.wait_for(reader.read(65536), 5)
        finally:
            if writer is not None:
                writer.close()
            for ep in workers:
                ep.close()
        return got

    assert asyncio.run(run()) == b"".join(_request(n) for n in range(4))
    assert writes == [b"".join(_request(n) for n in range(3)), _request(3)]


def test_a_kept_owner_gone_stale_is_read_again_when_the_send_comes_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker 1 keeps the owners it read; the peer's connection has moved to worker 3 since
    (it reconnected from the same port) and worker 1 has not seen the change yet (a race):
    the send goes to worker 2, which hands it back, and worker 1 reads the table again and
    hands it to worker 3, which sends it."""
    monkeypatch.setattr(endpoints, "main_pid", lambda: os.getpid() * 1000 + 15)
    port = free_port(socket.SOCK_STREAM)

    async def run() -> tuple[bytes, int | None, list[bytes]]:
        owners = _Owners()
        failed: list[bytes] = []
        workers = _workers(port, 3, owners)
        workers[0].on_send_failed = failed.append
        writer = None
        try:
            reader, writer, host, cport = await _connect_to(workers, port, owners)
            key = owner_key(host, cport, "tcp")
            # kept while the connection was worker 2's, just before the move was said
            workers[0]._owners_seen = handoff.owners_seen.value
            workers[0]._owner_of[key] = 2
            assert workers[0].send("tcp", host, cport, _request(1))
            got = await asyncio.wait_for(reader.read(65536), 5)
            kept = workers[0]._owner_of.get(key)
        finally:
            if writer is not None:
                writer.close()
            for ep in workers:
                ep.close()
        return got, kept, failed

    assert asyncio.run(run()) == (_request(1), 3, [])


def test_kept_owners_are_forgotten_when_a_connection_is_forgotten(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A WebSocket user's connection held by worker 2 closes (worker 2 forgets it in the
    table): worker 1's next send to it fails at once, as when it had never kept the owner
    (t_relay fails and the script answers), not after a round trip to worker 2."""
    monkeypatch.setattr(endpoints, "main_pid", lambda: os.getpid() * 1000 + 16)

    async def run() -> tuple[bool, bool]:
        loop = asyncio.get_running_loop()
        key = owner_key("127.0.0.1", 5999, "ws")
        owners = _Owners({key: 2})
        worker = endpoints.WorkerEndpoints(loop, [], _NoReceiver(), ParseLimits(), True, rank=1,
                                           owners=owners)  # type: ignore[arg-type]
        two = Mailbox(os.getpid() * 1000 + 16, 2, loop)  # worker 2's (it reads nothing here)
        try:
            await worker.start(udp=False)
            first = worker.send("ws", "127.0.0.1", 5999, b"to ws")  # handed to worker 2
            owners.delete(key)  # what worker 2 does when the connection closes
            handoff.owners_changed()
            second = worker.send("ws", "127.0.0.1", 5999, b"to ws")
        finally:
            worker.close()
            two.close()
        return first, second

    assert asyncio.run(run()) == (True, False)
