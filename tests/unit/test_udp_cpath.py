"""A datagram's way in and out of a worker in one compiled call each (Linux): ``_fast.udp_event``
(a read-ahead UdpSocket's readiness event) and ``_fast.udp_out`` (WorkerEndpoints.send's usual
UDP send) give what their Python forms give on the same sequences: the same deliveries, bad
messages, internal errors, sends in the same order and at the same moments (held, flushed late,
at HOLD_MAX, by the flusher), the same answers and log lines for the shapes they hand back.
Real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kemi_core.config.model import ListenAddr
from kemi_core.runtime.ratelimit import RateLimitedLog
from kemi_core.sip import ParseLimits, SipMsg, SipParseError
from kemi_core.testing.udp_client import pending_datagrams, readable
from kemi_core.transport import endpoints, outbox, receiver, udp
from kemi_core.transport.endpoints import WorkerEndpoints
from kemi_core.transport.outbox import Outbox
from kemi_core.transport.receiver import RecvInfo
from kemi_core.transport.sockets import bind_udp

pytestmark = pytest.mark.skipif(udp.udp_event is None or endpoints.udp_out is None
                                or outbox._TIMERFD is None,
                                reason="compiled UDP paths not built (or not Linux)")

DEADLINE = 5.0


def options(n: int) -> bytes:
    return (f"OPTIONS sip:b@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKuc{n}\r\n"
            f"From: <sip:a@127.0.0.1>;tag=t{n}\r\nTo: <sip:b@127.0.0.1>\r\n"
            f"Call-ID: uc{n}@test\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


class Clock:
    """The outbox's clock: each reading moves it on by ``step`` (s)."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 100.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class Handler:
    """A receiver acting on each datagram as ``plan`` says: answer (sent through the socket),
    raise, close the socket, call about_to_wait; it notes everything it saw and what the peer
    had received at each step."""

    def __init__(self, sock: udp.UdpSocket, peer: socket.socket, plan: dict[int, str]) -> None:
        self.sock, self.peer, self.plan = sock, peer, plan
        self.log: list[tuple] = []

    def _step(self, what: tuple, to: tuple[str, int]) -> None:
        n = len(self.log)
        self.log.append((*what, tuple(pending_datagrams(self.peer))))
        act = self.plan.get(n, "answer")
        if act in ("answer", "raise", "close", "hand", "wait"):
            self.sock.sendto(b"a%d" % n, to)
        if act == "refuse":  # (port 0: the kernel refuses it when it goes out)
            self.sock.sendto(b"r%d" % n, ("127.0.0.1", 0))
        if act == "raise":
            raise RuntimeError(f"boom {n}")
        if act == "hand":  # closed with a hand_back: what the event read after goes there
            self.sock.hand_back = self._handed
            self.sock.close()
        if act == "close":
            self.sock.close()
        if act == "wait":
            outbox.about_to_wait()

    def _handed(self, rest: list[tuple[bytes, RecvInfo]]) -> None:
        self.log.append(("handed", tuple(data for data, _ in rest),
                         all(isinstance(rcv, RecvInfo) for _, rcv in rest)))

    def on_message(self, msg: SipMsg, rcv: RecvInfo) -> None:
        self._step(("msg", msg.call_id, rcv), (rcv.src_ip, rcv.src_port))

    def on_bad_message(self, data: bytes, rcv: RecvInfo, error: SipParseError) -> None:
        self._step(("bad", data, error.status, rcv), (rcv.src_ip, rcv.src_port))


def _event_run(compiled: bool, datagrams: list[bytes], plan: dict[int, str], step: float,
               monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
               frames: list[str] | None = None) -> tuple:
    """One readiness event of ``datagrams`` (all waiting before it), compiled or in Python:
    what the handler saw, what the peer got after it, the log lines, the outbox after.
    ``frames``: the event is the loop's own (the reader start_read_ahead set), and this gets
    the Python functions of udp.py it ran."""
    loop = asyncio.new_event_loop()
    sock = bind_udp("127.0.0.1", 0, reuse_port=False)
    box = Outbox(clock=Clock(step))
    us = udp.UdpSocket(loop, sock, None, ParseLimits(), "127.0.0.1",  # type: ignore[arg-type]
                       sock.getsockname()[1], box)
    us.read_ahead = frames is None
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    handler = Handler(us, peer, plan)
    us.receiver = handler
    try:
        with monkeypatch.context() as m:
            if not compiled:
                m.setattr(udp, "udp_event", None)
            # the flusher's timer out of the way: it fires in real time (2 ms), which the
            # logging and tracing of a test run may pass; flush_late follows the fake clock
            m.setattr(outbox, "_HOLD_NS", 10**10)
            # every internal error logged (not one a second), in both runs
            m.setattr(receiver, "_internal_log",
                      RateLimitedLog(logging.getLogger("kemi.transport"), interval=0.0))
            for data in datagrams:
                peer.sendto(data, (us.local_ip, us.local_port))
            end = time.monotonic() + DEADLINE
            while not readable(sock) and time.monotonic() < end:
                time.sleep(0.001)
            # every datagram in the socket's queue before the event reads (loopback is
            # synchronous: sendto has queued it when it returns)
            caplog.clear()
            if frames is None:
                us._read_ready()
            else:
                us.start_read_ahead()
                _loop_event(loop, sock, frames)
            after = tuple(pending_datagrams(peer))
            lines = [r.getMessage() for r in caplog.records]
        port = us.local_port
        # the RecvInfo names the peer's ephemeral port: the same within one run only
        seen = [tuple(x.src_port == peer.getsockname()[1] if isinstance(x, RecvInfo) else x
                      for x in entry) for entry in handler.log]
        lines = [line.replace(str(port), "PORT").replace(str(peer.getsockname()[1]), "PEER")
                 for line in lines]
        return seen, after, lines, box.held, box.armed, us.closed, outbox.holding
    finally:
        us.close()
        peer.close()
        loop.close()


def _loop_event(loop: asyncio.AbstractEventLoop, sock: socket.socket, frames: list[str]) -> None:
    """Run the loop until its reader has taken what ``sock`` holds; ``frames`` gets the
    functions of udp.py that ran meanwhile."""

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_filename == udp.__file__:
            frames.append(frame.f_code.co_name)

    async def until_read() -> None:
        end = time.monotonic() + DEADLINE
        while readable(sock) and time.monotonic() < end:
            await asyncio.sleep(0)

    sys.setprofile(profile)
    try:
        loop.run_until_complete(until_read())
    finally:
        sys.setprofile(None)


EVENT_CASES = {
    "answers": ([options(n) for n in range(5)], {}, 0.0),
    "one datagram": ([options(0)], {}, 0.0),
    "keepalives and bad ones": ([b"\r\n", options(1), b"\x00\x00\x00\x00", b"NOT SIP\r\n\r\n",
                                 b"\n", b"\r\n\r\n", b"", options(2), b"xy"], {}, 0.0),
    "a handler raises": ([options(n) for n in range(4)], {1: "raise", 2: "raise"}, 0.0),
    "the socket closes mid-event": ([options(n) for n in range(5)], {2: "close"}, 0.0),
    "closes mid-event, the rest handed back": ([options(n) for n in range(5)], {1: "hand"},
                                               0.0),
    "closes at the last one": ([options(n) for n in range(3)], {2: "hand"}, 0.0),
    "about_to_wait": ([options(n) for n in range(4)], {1: "wait"}, 0.0),
    "flush late": ([options(n) for n in range(6)], {}, 0.0015),
    "one that does not answer": ([options(n) for n in range(3)], {1: "nothing"}, 0.0),
    "a held send refused": ([options(n) for n in range(4)], {1: "refuse", 2: "refuse"}, 0.0),
}


@pytest.mark.parametrize("case", sorted(EVENT_CASES))
def test_an_event_gives_what_the_python_event_gives(case: str, monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="kemi.transport")
    datagrams, plan, step = EVENT_CASES[case]
    compiled = _event_run(True, datagrams, plan, step, monkeypatch, caplog)
    python = _event_run(False, datagrams, plan, step, monkeypatch, caplog)
    assert compiled == python
    assert compiled[3] is None and compiled[6] is None  # nothing held after the event
    if case == "closes mid-event, the rest handed back":  # never dropped
        assert compiled[0][2] == ("handed", (options(2), options(3), options(4)), True)
    if case == "closes at the last one":  # nothing left: nothing handed
        assert [entry[0] for entry in compiled[0]] == ["msg"] * 3
    if case == "a held send refused":  # (the release's udp_send refused them: logged)
        assert sum("udp send from" in line for line in compiled[2]) == 2, compiled[2]


@pytest.mark.parametrize("case", ["answers", "a handler raises", "one datagram"])
def test_the_loop_calls_the_compiled_event_itself(case: str, monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """start_read_ahead: the loop's reader is udp_event itself (no Python frame of the
    socket's per readiness event), and it gives what the Python event gives."""
    caplog.set_level(logging.DEBUG, logger="kemi.transport")
    datagrams, plan, step = EVENT_CASES[case]
    frames: list[str] = []
    compiled = _event_run(True, datagrams, plan, step, monkeypatch, caplog, frames)
    assert "_read_ready" not in frames, frames
    python_frames: list[str] = []
    python = _event_run(False, datagrams, plan, step, monkeypatch, caplog, python_frames)
    assert "_read_ready" in python_frames
    assert compiled == python
    assert len(compiled[0]) == len(datagrams)


def test_hold_max_during_an_event(monkeypatch: pytest.MonkeyPatch,
                                  caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(outbox, "HOLD_MAX", 2)
    datagrams = [options(n) for n in range(7)]
    compiled = _event_run(True, datagrams, {}, 0.0, monkeypatch, caplog)
    assert compiled == _event_run(False, datagrams, {}, 0.0, monkeypatch, caplog)
    # the peer had the first two answers when the third datagram was routed
    assert compiled[0][2][-1] == (b"a0", b"a1")


def test_random_events_give_what_the_python_events_give(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    rnd = random.Random(1419)
    shapes = [lambda n: options(n), lambda n: b"\r\n", lambda n: b"BAD %d\r\n\r\n" % n,
              lambda n: b"", lambda n: options(n)[:-30]]
    for _ in range(12):
        count = rnd.randint(1, 20)
        datagrams = [rnd.choice(shapes)(n) for n in range(count)]
        plan = {n: rnd.choice(["answer", "answer", "raise", "wait", "nothing", "close",
                               "refuse", "hand"])
                for n in range(count) if rnd.random() < 0.3}
        step = rnd.choice([0.0, 0.0007, 0.003])
        assert (_event_run(True, datagrams, plan, step, monkeypatch, caplog)
                == _event_run(False, datagrams, plan, step, monkeypatch, caplog))


# ---- the way out: WorkerEndpoints.send ---------------------------------------------------------

class Rig:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        sock = bind_udp("127.0.0.1", 0, reuse_port=False)
        self.port = sock.getsockname()[1]
        sock.close()
        self.ep = WorkerEndpoints(self.loop, [ListenAddr("udp", "127.0.0.1", self.port)],
                                  None, ParseLimits(), False)  # type: ignore[arg-type]
        self.loop.run_until_complete(self.ep.start())
        # every warning logged (not one a second), in both runs
        self.ep.limited_log = RateLimitedLog(logging.getLogger("kemi.transport"), interval=0.0)
        self.peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.peer.bind(("127.0.0.1", 0))
        self.to = self.peer.getsockname()[1]

    def close(self) -> None:
        self.ep.close()
        self.peer.close()
        self.loop.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    yield r
    r.close()


def test_sends_use_the_compiled_call(rig: Rig) -> None:
    assert isinstance(rig.ep.send, functools.partial)
    assert rig.ep.send.func is endpoints.udp_out


def _sends(rig: Rig, send: Callable[..., bool], steps: list[tuple], caplog: Any) -> list:
    """Each step: a send (its answer, what the peer then has, the outbox's state), a hold,
    a release."""
    box = rig.ep.outbox
    local = ("127.0.0.1", rig.port)
    out: list = []
    for step in steps:
        caplog.clear()
        if step[0] == "hold":
            out.append(("hold", box.hold()))
        elif step[0] == "release":
            box.release()
            out.append(("release",))
        elif step[0] == "queue":  # as when the kernel's send buffer was full
            tr = rig.ep.udp[local]
            tr._queue(b"queued", ("127.0.0.1", rig.to))
            out.append(("queue",))
        elif step[0] == "write":  # the socket is writable again
            rig.ep.udp[local]._write_ready()
            out.append(("write",))
        else:
            proto, host, data, where = step
            port = 0 if host == "port0" else rig.to
            host = "127.0.0.1" if host == "port0" else host
            args: tuple = (proto, host, port, data)
            if where == "local":
                args += (local,)
            elif where == "unknown":
                args += (("10.9.9.9", 5060),)
            answer = send(*args)
            held = None if box.held is None else [(d, a) for _, d, a in box.held]
            out.append((answer, held, box.armed, [r.getMessage().replace(str(rig.port), "P")
                                                  for r in caplog.records]))
        out.append(tuple(pending_datagrams(rig.peer)))
    return out


SEND_STEPS = [
    ("udp", "127.0.0.1", b"plain", "local"),
    ("udp", "127.0.0.1", b"no local", None),
    ("udp", "127.0.0.1", b"unknown local", "unknown"),
    ("udp", "localhost", b"a name", "local"),
    ("udp", "127.0.0.1", bytearray(b"a bytearray"), "local"),
    ("udp", "127.0.0.1", b"x" * 65_507, "local"),
    ("udp", "127.0.0.1", b"x" * 65_508, "local"),
    ("udp", "port0", b"refused", "local"),
    ("UDP", "127.0.0.1", b"upper case", "local"),
    ("sctp", "127.0.0.1", b"no such", "local"),
    ("hold",),
    ("udp", "127.0.0.1", b"h1", "local"),
    ("udp", "localhost", b"h2", "local"),
    ("udp", "port0", b"h3", "local"),
    ("udp", "127.0.0.1", b"h4", None),
    ("release",),
    ("queue",),
    ("udp", "127.0.0.1", b"behind the queue", "local"),
    ("hold",),
    ("udp", "127.0.0.1", b"held behind the queue", "local"),
    ("release",),
    ("write",),
    ("udp", "127.0.0.1", b"direct again", "local"),
]


def test_sends_give_what_the_python_send_gives(rig: Rig, caplog: pytest.LogCaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG, logger="kemi.transport")
    # the flusher's timer out of the way: in real time (2 ms) a loaded machine's run may pass
    # it in one run and not in the other, and the flusher then sends what is held
    monkeypatch.setattr(outbox, "_HOLD_NS", 10**10)
    compiled = _sends(rig, rig.ep.send, SEND_STEPS, caplog)
    python = _sends(rig, functools.partial(WorkerEndpoints.send, rig.ep), SEND_STEPS, caplog)
    assert compiled == python
    assert compiled[0] == (True, None, False, [])
    assert compiled[1] == (b"plain",)


def test_hold_max_and_random_sends_give_what_the_python_sends_give(
        rig: Rig, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG, logger="kemi.transport")
    monkeypatch.setattr(outbox, "HOLD_MAX", 3)
    monkeypatch.setattr(outbox, "_HOLD_NS", 10**10)  # (as above)
    rnd = random.Random(17)
    sends = [("udp", "127.0.0.1", b"s", "local"), ("udp", "127.0.0.1", b"o", None),
             ("udp", "localhost", b"n", "local"), ("udp", "port0", b"r", "local")]
    steps: list[tuple] = []
    holding = False
    for n in range(120):
        if rnd.random() < 0.1:
            steps.append(("release",) if holding else ("hold",))
            holding = not holding
        else:
            proto, host, data, where = rnd.choice(sends)
            steps.append((proto, host, data + b"%d" % n, where))
    if holding:
        steps.append(("release",))
    compiled = _sends(rig, rig.ep.send, steps, caplog)
    python = _sends(rig, functools.partial(WorkerEndpoints.send, rig.ep), steps, caplog)
    assert compiled == python


def test_the_flusher_sends_what_a_compiled_send_held_while_the_loop_blocks(rig: Rig) -> None:
    box = rig.ep.outbox
    assert box.hold()
    assert rig.ep.send("udp", "127.0.0.1", rig.to, b"held", ("127.0.0.1", rig.port))
    assert box.armed and not readable(rig.peer)
    rig.peer.settimeout(DEADLINE)
    assert rig.peer.recv(100) == b"held"  # (this thread blocks: the flusher's timer fires)
    box.release()
    assert box.held is None and not box.armed
