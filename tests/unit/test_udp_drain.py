"""A worker's UDP endpoints behind its entry gate (kemi_core.runtime.drain): once the worker
drains, every request read after that point gets a 503 - also the rest of a burst read in the
same readiness event - while ACK still passes; a worker recycled while others run keeps
reading its listen sockets (the replies to its transactions arrive there) and hands each new
request to another worker instead. Every socket reads an event's datagrams ahead: a shared
listen socket closed inside an event hands what it read and did not deliver to another
worker's mailbox (else it is delivered here), never drops it. Real sockets on 127.0.0.1, the
real gate, WorkerEndpoints and mailboxes."""

from __future__ import annotations

import array
import asyncio
import os
import socket
from collections.abc import Iterator

import pytest

from kemi_core.config.model import CoreConfig, ListenAddr
from kemi_core.runtime.context import MsgContext
from kemi_core.runtime.core import Core
from kemi_core.runtime.dispatch import Dispatcher
from kemi_core.runtime.drain import EntryGate
from kemi_core.runtime.worker import new_event_loop
from kemi_core.sip import ParseLimits, SipMsg, SipParseError, parse_datagram
from kemi_core.testing.capture import offline_core
from kemi_core.testing.process import free_port
from kemi_core.testing.udp_client import request
from kemi_core.transport.endpoints import WorkerEndpoints
from kemi_core.transport.handoff import Mailbox, decode
from kemi_core.transport.receiver import RecvInfo
from kemi_core.transport.sockets import RankSockets

DEADLINE = 5.0


class Inner(Dispatcher):
    """The worker's dispatcher, whose requests stop at a request filter that records what the
    gate let through; ``on_first`` runs once, while the first message is handled (as a drain
    or a recycle would between two messages)."""

    def __init__(self, core: Core) -> None:
        super().__init__(core, ParseLimits())
        self.seen: list[SipMsg] = []
        self.on_first = lambda: None
        core.request_filters.append(self._record)

    def _record(self, ctx: MsgContext) -> bool:
        self.seen.append(ctx.msg)
        if len(self.seen) == 1:
            self.on_first()
        return True

    def on_bad_message(self, data: bytes, rcv: RecvInfo, error: SipParseError) -> None:
        raise AssertionError(f"no bad message expected: {error}")


class Rig:
    """A worker's endpoints. Shared: on the rank's sockets as the main process makes them
    (``kept``), the worker given copies of them as a fork gives it (closing its copy leaves
    the main process's socket and what waits in it), rank 1 of 2."""

    def __init__(self, shared: bool, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.port = free_port()
        core, _ = offline_core(config=CoreConfig(listen=[ListenAddr("udp", "127.0.0.1",
                                                                    self.port)]))
        self.gate = EntryGate(core, array.array("d", [0.0]), 0)
        self.inner = Inner(core)
        self.kept: RankSockets | None = None
        mine: RankSockets | None = None
        if shared:
            self.kept = RankSockets([("127.0.0.1", self.port)], True)
            mine = RankSockets.__new__(RankSockets)
            mine.listen = {addr: sock.dup() for addr, sock in self.kept.listen.items()}
        self.endpoints = WorkerEndpoints(self.loop, core.config.listen,
                                         self.gate.receiver(self.inner), ParseLimits(), shared,
                                         rank=1, sockets=mine, workers=2)
        self.loop.run_until_complete(self.endpoints.start())
        core.attach_transport(self.endpoints)
        self.peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.peer.bind(("127.0.0.1", 0))
        self.peer.setblocking(False)
        self.replies: list[SipMsg] = []

    def send(self, method: str, call_id: str, port: int | None = None) -> None:
        data = request(method, f"sip:b@127.0.0.1:{self.port}", self.peer.getsockname()[1],
                       call_id=call_id)
        self.peer.sendto(data, ("127.0.0.1", port or self.port))

    def run_until(self, seen: int, replies: int) -> None:
        async def until() -> None:
            end = self.loop.time() + DEADLINE
            while self.loop.time() < end and (len(self.inner.seen) < seen
                                              or len(self.replies) < replies):
                try:
                    self.replies.append(parse_datagram(self.peer.recv(65535)))
                except BlockingIOError:
                    await asyncio.sleep(0.005)

        self.loop.run_until_complete(until())

    def recycle(self) -> None:
        """What Worker.drain("recycling") does to a worker with shared sockets."""
        self.gate.start_draining(self.endpoints.hand_to_another)
        self.endpoints.stop_accepting()

    def close_listens(self) -> None:
        """This worker's copies of its listen sockets closed (the rank's stay)."""
        self.gate.start_draining()
        for tr in self.endpoints.udp.values():
            tr.close()
        self.endpoints.udp.clear()

    def waiting_for_the_next_worker(self) -> list[str]:
        """The Call-IDs waiting in the rank's listen socket (the main process's)."""
        assert self.kept is not None
        sock = self.kept.listen[("127.0.0.1", self.port)]
        found = []
        while True:
            try:
                found.append(parse_datagram(sock.recv(65535)).call_id)
            except BlockingIOError:
                return found

    def close(self) -> None:
        self.endpoints.close()
        if self.kept is not None:
            self.kept.close()
        self.peer.close()
        self.loop.close()


#: asyncio's own loop, and the worker's (uvloop when installed)
LOOPS = {"asyncio": asyncio.new_event_loop, "worker": new_event_loop}


@pytest.fixture(params=sorted(LOOPS))
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    r = Rig(shared=False, loop=LOOPS[request.param]())
    yield r
    r.close()


@pytest.fixture(params=sorted(LOOPS))
def shared_rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    r = Rig(shared=True, loop=LOOPS[request.param]())
    yield r
    r.close()


def test_requests_read_after_the_drain_began_get_503_even_within_one_burst(rig: Rig) -> None:
    rig.inner.on_first = rig.gate.start_draining
    # all four wait in the socket before the loop reads any: one readiness event takes them
    for method, call_id in (("INVITE", "c1"), ("INVITE", "c2"), ("ACK", "c1"), ("INVITE", "c3")):
        rig.send(method, call_id)
    rig.run_until(seen=2, replies=2)
    assert [(m.method, m.call_id) for m in rig.inner.seen] == [("INVITE", "c1"), ("ACK", "c1")]
    assert sorted((r.status, r.call_id) for r in rig.replies) == [(503, "c2"), (503, "c3")]


def handed_to(rig: Rig, other: Mailbox, count: int) -> list[tuple[str, list[str], bytes]]:
    """What ``other`` (worker 2's mailbox) gets, once it has ``count`` hand-overs."""
    handed: list[bytes] = []

    async def until_handed() -> None:
        end = rig.loop.time() + DEADLINE
        while len(handed) < count and rig.loop.time() < end:
            other.drain(handed.append)
            await asyncio.sleep(0.005)

    rig.loop.run_until_complete(until_handed())
    found = [decode(packet) for packet in handed]
    return [f for f in found if f is not None]


def test_a_recycled_worker_hands_new_requests_to_another_and_still_reads_its_own(
        shared_rig: Rig) -> None:
    rig = shared_rig
    tag = os.getpid() * 1000 + 37  # a fake main pid: mailbox names nobody else uses
    rig.endpoints.mailbox = Mailbox(tag, 1, rig.loop)
    other = Mailbox(tag, 2, rig.loop)
    try:
        rig.send("INVITE", "c1")
        rig.run_until(seen=1, replies=0)
        rig.recycle()  # (as Worker.drain does it from the doorbell's handler: between events)
        for call_id in ("c2", "c3"):
            rig.send("INVITE", call_id)
        rig.send("ACK", "c1")  # its transaction's: still here
        found = handed_to(rig, other, 2)
        rig.run_until(seen=2, replies=0)
    finally:
        other.close()
    assert [(m.method, m.call_id) for m in rig.inner.seen] == [("INVITE", "c1"), ("ACK", "c1")]
    peer = str(rig.peer.getsockname()[1])
    assert [(f[0], f[1][:5], parse_datagram(f[2]).call_id) for f in found] == [
        ("R", ["udp", "127.0.0.1", peer, "127.0.0.1", str(rig.port)], call_id)
        for call_id in ("c2", "c3")]
    assert rig.replies == [] and rig.waiting_for_the_next_worker() == []


def test_a_close_inside_an_event_hands_what_it_read_to_another_worker(
        shared_rig: Rig) -> None:
    rig = shared_rig
    tag = os.getpid() * 1000 + 31  # a fake main pid: mailbox names nobody else uses
    rig.endpoints.mailbox = Mailbox(tag, 1, rig.loop)
    other = Mailbox(tag, 2, rig.loop)
    try:
        rig.inner.on_first = rig.close_listens
        # all three wait before the loop reads: one event reads them all ahead
        for call_id in ("c1", "c2", "c3"):
            rig.send("INVITE", call_id)
        rig.run_until(seen=1, replies=0)
        found = handed_to(rig, other, 2)
    finally:
        other.close()
    assert [(m.method, m.call_id) for m in rig.inner.seen] == [("INVITE", "c1")]
    # each with the RecvInfo it arrived with: the peer, our listen address
    peer = str(rig.peer.getsockname()[1])
    assert [(f[0], f[1][:5]) for f in found if f] == [
        ("R", ["udp", "127.0.0.1", peer, "127.0.0.1", str(rig.port)])] * 2
    assert [parse_datagram(f[2]).call_id for f in found if f] == ["c2", "c3"]
    assert rig.replies == [] and rig.waiting_for_the_next_worker() == []


def test_with_no_other_worker_to_take_them_they_are_answered_here(shared_rig: Rig) -> None:
    rig = shared_rig
    rig.inner.on_first = rig.recycle
    for call_id in ("c1", "c2", "c3"):
        rig.send("INVITE", call_id)
    rig.run_until(seen=1, replies=2)
    # worker 2 is not there: answered by the draining gate
    assert [(m.method, m.call_id) for m in rig.inner.seen] == [("INVITE", "c1")]
    assert sorted((r.status, r.call_id) for r in rig.replies) == [(503, "c2"), (503, "c3")]


def test_every_socket_reads_ahead(rig: Rig, shared_rig: Rig) -> None:
    # should a shared listen socket close inside an event, what it read goes to another worker
    assert [tr.read_ahead for tr in rig.endpoints.udp.values()] == [True]
    assert [tr.read_ahead for tr in shared_rig.endpoints.udp.values()] == [True]
    assert [tr.hand_back for tr in rig.endpoints.udp.values()] == [None]
    assert [tr.hand_back is not None for tr in shared_rig.endpoints.udp.values()] == [True]
