"""A worker's UDP endpoints behind its entry gate (kemi_core.runtime.drain): once the worker
drains, every request read after that point gets a 503 - also the rest of a burst read in the
same readiness event - while ACK still passes; closing the listen sockets (a recycled worker)
stops the read at once, and the worker's own socket still delivers. Real sockets on 127.0.0.1,
the real gate and WorkerEndpoints."""

from __future__ import annotations

import array
import asyncio
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
from kemi_core.transport.receiver import RecvInfo

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
    def __init__(self, shared: bool, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.port = free_port()
        core, _ = offline_core(config=CoreConfig(listen=[ListenAddr("udp", "127.0.0.1",
                                                                    self.port)]))
        self.gate = EntryGate(core, array.array("d", [0.0]), 0)
        self.inner = Inner(core)
        self.endpoints = WorkerEndpoints(self.loop, core.config.listen,
                                         self.gate.receiver(self.inner), ParseLimits(), shared)
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

    def close(self) -> None:
        self.endpoints.close()
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


def test_a_recycled_worker_stops_reading_its_listen_socket_at_once(shared_rig: Rig) -> None:
    rig = shared_rig
    own = rig.endpoints.own_udp_addr
    assert own is not None and own[1] != rig.port

    def recycle() -> None:
        rig.gate.start_draining()
        rig.endpoints.stop_accepting(udp=True)

    rig.inner.on_first = recycle
    for call_id in ("c1", "c2", "c3"):
        rig.send("INVITE", call_id)
    rig.run_until(seen=1, replies=0)
    # replies to this worker's transactions still arrive on its own socket
    rig.send("ACK", "c1", port=own[1])
    rig.run_until(seen=2, replies=0)
    assert [(m.method, m.call_id) for m in rig.inner.seen] == [("INVITE", "c1"), ("ACK", "c1")]
    assert rig.replies == [] and rig.endpoints.udp == {}


def test_only_sockets_never_closed_while_the_worker_runs_read_ahead(rig: Rig,
                                                                     shared_rig: Rig) -> None:
    # a lone worker's listen socket is its own; several workers' shared listen sockets are
    # closed by a recycle between two datagrams (the rest stays for the next worker)
    assert [tr.read_ahead for tr in rig.endpoints.udp.values()] == [True]
    assert [tr.read_ahead for tr in shared_rig.endpoints.udp.values()] == [False]
    own = shared_rig.endpoints.own_udp
    assert own is not None and own.read_ahead
