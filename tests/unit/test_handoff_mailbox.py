"""Workers' mailboxes (kemi_core.transport.handoff): a burst of hand-overs larger than a
worker's datagram queue (net.unix.max_dgram_qlen, 10 by default) all arrive, in order, once
the worker reads again; a worker that is not there is a clear False."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from kemi_core.sip import ParseLimits
from kemi_core.testing.process import free_port
from kemi_core.transport import endpoints
from kemi_core.transport.handoff import Mailbox, owner_key

BURST = 200


def test_a_burst_waits_for_room_and_arrives_in_order() -> None:
    async def run() -> list[bytes]:
        loop = asyncio.get_running_loop()
        tag = os.getpid() * 1000 + 7  # a fake main pid: names nobody else uses
        sender, receiver = Mailbox(tag, 1, loop), Mailbox(tag, 2, loop)
        got: list[bytes] = []
        try:
            # the receiver does not read yet: its queue fills, the rest must wait, not be lost
            assert all(sender.post(2, b"S%d" % n) for n in range(BURST))
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
