"""What the main process sends over SIP (``runtime.main_sip``): from the ranks' listen sockets
(the listen port, as Kamailio's keepalives), and the replies a worker hands to its mailbox,
given to the handlers modules registered; on real sockets of 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Iterator

import pytest

from kemi_core.config.model import ListenAddr
from kemi_core.forwarding.branch_rank import MAIN_BRANCH, branch_rank
from kemi_core.runtime.core import Core
from kemi_core.runtime.main_sip import MainSip, to_main
from kemi_core.sip import SipMsg
from kemi_core.testing import context, offline_core
from kemi_core.transport.handoff import Mailbox, decode
from kemi_core.transport.sockets import RankSockets, make_rank_sockets


@pytest.fixture
def ranks() -> Iterator[tuple[dict[int, RankSockets], list[ListenAddr]]]:
    """Two workers' sockets on two UDP listen ports, as the main process binds them."""
    probe = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    for s in probe:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in probe]
    for s in probe:
        s.close()
    made = make_rank_sockets([("127.0.0.1", p) for p in ports], 2)
    yield made, [ListenAddr("udp", "127.0.0.1", p) for p in ports]
    for r in made.values():
        r.close()


@pytest.fixture
def peer() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)
    yield sock
    sock.close()


def test_sends_leave_from_the_listen_socket(
        ranks: tuple[dict[int, RankSockets], list[ListenAddr]], peer: socket.socket) -> None:
    made, listens = ranks
    core, _ = offline_core()
    main = MainSip(core, [ListenAddr("tcp", "127.0.0.1", 5999), *listens], made)
    first, second = ((lst.host, lst.port) for lst in listens)
    host, port = peer.getsockname()
    assert main.local_address("udp") == first
    assert main.send("udp", host, port, b"one")
    assert main.send("udp", host, port, b"two", local=second)
    assert main.send("udp", host, port, b"three", local=("127.0.0.1", 1))  # not ours: the first
    got = [peer.recvfrom(100) for _ in range(3)]
    assert got == [(b"one", first), (b"two", second), (b"three", first)]
    assert not main.send("tcp", host, port, b"stream")  # UDP only
    made[1].close()
    del made[1]  # rank 1 stopped for good: rank 2's socket on the same port
    assert main.send("udp", host, port, b"four")
    assert peer.recvfrom(100) == (b"four", first)


def run_until(loop: asyncio.AbstractEventLoop, done: Callable[[], bool]) -> None:
    """Run ``loop`` until ``done()`` (at most 5 s)."""
    async def wait() -> None:
        end = loop.time() + 5.0
        while not done() and loop.time() < end:
            await asyncio.sleep(0.01)

    loop.run_until_complete(wait())


def reply_text(branch: str) -> str:
    return (f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n"
            "From: <sip:dispatcher@localhost>;tag=a\r\nTo: <sip:127.0.0.1:5090>\r\n"
            "Call-ID: k1\r\nCSeq: 10 OPTIONS\r\nContent-Length: 0\r\n\r\n")


def test_a_worker_hands_replies_to_what_the_main_sent_to_its_mailbox() -> None:
    """Worker and main process in one test process: the worker's mailbox knows this process
    as its main process (a Mailbox's ``main_pid``), the main one is rank 0's."""
    assert branch_rank(f"{MAIN_BRANCH}ds01") is None  # no worker's: not steered to one
    loop = asyncio.new_event_loop()
    core: Core = offline_core()[0]
    got: list[SipMsg] = []
    core.add_main_reply_handler(lambda msg: False)  # not this one's: the next handler's

    def take(msg: SipMsg) -> bool:
        got.append(msg)
        return True

    core.add_main_reply_handler(take)
    main = MainSip(core, [ListenAddr("udp", "127.0.0.1", 5060)], {})
    main.open(loop)
    worker = Mailbox(os.getpid(), 1, loop)
    hand_over = to_main(worker)
    try:
        assert not hand_over(context(core, reply_text("z9hG4bKAA0f.0")))  # a worker's
        assert not hand_over(context(core, reply_text("z9hG4bK0f1e")))  # nobody's
        assert hand_over(context(core, reply_text(f"{MAIN_BRANCH}ds5e")))
        run_until(loop, lambda: bool(got))
    finally:
        worker.close()
        main.close()
        loop.close()
    assert [m.via.branch for m in got] == [f"{MAIN_BRANCH}ds5e"]


def test_over_tcp_a_worker_sends_for_the_main_process() -> None:
    """The main process holds no connection: it hands the bytes to the first worker there
    (``S`` from rank 0), which sends them as its own (tests of the dispatcher's keepalives
    over TCP run it whole)."""
    loop = asyncio.new_event_loop()
    core: Core = offline_core()[0]
    main = MainSip(core, [ListenAddr("udp", "127.0.0.1", 5060)], {})
    main.open(loop)
    worker = Mailbox(os.getpid(), 2, loop)
    handed: list[bytes] = []
    try:
        core.worker_pids = {1: 0}  # rank 1 has no mailbox: the next one takes it
        assert not main.send("tcp", "127.0.0.1", 5090, b"OPTIONS")
        core.worker_pids = {2: 0, 1: 0}
        assert main.send("tcp", "127.0.0.1", 5090, b"OPTIONS")

        def drained() -> bool:
            worker.drain(handed.append)
            return bool(handed)

        run_until(loop, drained)
    finally:
        worker.close()
        main.close()
        loop.close()
    assert [decode(p) for p in handed] == [("S", ["0", "tcp", "127.0.0.1", "5090"], b"OPTIONS")]
