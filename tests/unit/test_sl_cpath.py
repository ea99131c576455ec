"""sl's usual local reply in one compiled call (kemi_core.sip.stateless_sender): the compiled
sl_send_reply and send_reply give what their Python forms give on the same sequences of
replies: the same answers, the same datagrams on the wire (a real WorkerEndpoints on
127.0.0.1 sending to a peer socket), the same counters (sl's and the core's), ctx.replied and
the same log lines, for the usual reply and for every shape the compiled form hands back
(ACK, 100, a 3xx, queued headers or body, a reply as the message, a bad code or reason, a TCP
request with no connection, a send the kernel refuses, no transport, sl's stats not set, tm
loaded)."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import kemi_sl
import kemi_tm
from kemi_core.config.model import ListenAddr
from kemi_core.counters import Counter
from kemi_core.runtime.context import MsgContext, RecvInfo
from kemi_core.runtime.core import Core
from kemi_core.runtime.ratelimit import RateLimitedLog
from kemi_core.sip import ParseLimits, parse_datagram
from kemi_core.sip.reply import _stateless_sender
from kemi_core.testing.capture import offline_core
from kemi_core.testing.udp_client import pending_datagrams
from kemi_core.transport.endpoints import WorkerEndpoints
from kemi_core.transport.sockets import bind_udp

pytestmark = pytest.mark.skipif(_stateless_sender is None, reason="_fast not built")

CODES = (101, 180, 183, 200, 202, 299, 400, 401, 403, 404, 407, 408, 483, 486, 500, 503, 603,
         699)
REASONS = ("OK", "Not here", "Ünïcode reason", "")


class Rig:
    """A core with sl (and tm when asked) whose transport is a real WorkerEndpoints on
    127.0.0.1; the requests come from a peer socket, which gets the replies."""

    def __init__(self, peer: socket.socket, with_tm: bool = False) -> None:
        modules: list[tuple[str, Any]] = [("sl", kemi_sl)]
        if with_tm:
            modules.append(("tm", kemi_tm))
        self.core, _ = offline_core(*modules)
        self.loop = asyncio.new_event_loop()
        sock = bind_udp("127.0.0.1", 0, reuse_port=False)
        self.port = sock.getsockname()[1]
        sock.close()
        self.ep = WorkerEndpoints(self.loop, [ListenAddr("udp", "127.0.0.1", self.port)],
                                  None, ParseLimits(), False)  # type: ignore[arg-type]
        self.loop.run_until_complete(self.ep.start())
        self.ep.limited_log = RateLimitedLog(logging.getLogger("kemi.transport"), interval=0.0)
        self.core.attach_transport(self.ep)  # type: ignore[arg-type]
        self.peer = peer  # (one for both runs: the Via names its port, the To-tag's CRC too)
        self.to = peer.getsockname()[1]

    def close(self) -> None:
        self.ep.close()
        self.loop.close()

    def counts(self) -> dict[str, int]:
        return {f"{c.group}:{c.name}": c.value for c in self.core.counters
                if isinstance(c, Counter)}


@pytest.fixture
def peer() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


def _request(rig: Rig, n: int, method: str, rport: bool) -> bytes:
    via_port = rig.to if not rport else 5999  # with ;rport the source port counts
    return (f"{method} sip:u{n}@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{via_port};branch=z9hG4bKsl{n}{';rport' if rport else ''}"
            f"\r\nFrom: <sip:a{n}@127.0.0.1>;tag=f{n}\r\nTo: <sip:u{n}@127.0.0.1>\r\n"
            f"Call-ID: sl{n}@test\r\nCSeq: {n} {method}\r\nContent-Length: 0\r\n\r\n").encode()


REPLY = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKr\r\n"
         b"From: <sip:a@127.0.0.1>;tag=f\r\nTo: <sip:u@127.0.0.1>;tag=t\r\n"
         b"Call-ID: r@test\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")


def _context(rig: Rig, n: int, shape: str, method: str) -> MsgContext:
    rport = shape != "via_port"
    raw = REPLY if shape == "a_reply" else _request(rig, n, method, rport)
    proto = "tcp" if shape == "tcp" else "udp"
    src_port = 0 if shape == "port0" else rig.to  # the kernel refuses a send to port 0
    ctx = rig.core.new_context(parse_datagram(raw),
                               RecvInfo(proto, "127.0.0.1", src_port, "127.0.0.1", rig.port))
    if shape == "queued_headers":
        ctx.extra["reply_headers"] = [("X-Queued", "1"), "X-Line: 2\r\n"]
    elif shape == "queued_body":
        ctx.extra["reply_body"] = (b"hello", "text/plain")
    elif shape == "force_rport":
        ctx.force_rport = True
    elif shape == "in_transaction":  # (with tm: send_reply is then tm's stateful reply)
        rig.core.services["tm"].new_transaction(ctx)  # type: ignore[attr-defined]
    return ctx


SHAPES = ("usual", "usual", "usual", "via_port", "force_rport", "ack", "100", "3xx", "bad_code",
          "bad_reason", "queued_headers", "queued_body", "a_reply", "tcp", "port0",
          "no_transport", "no_stats", "added")


def _step(rig: Rig, fns: tuple[Callable[..., int], Callable[..., int]], n: int, shape: str,
          which: int, code: int, reason: str, caplog: Any) -> tuple:
    caplog.clear()
    method = "ACK" if shape == "ack" else ("REGISTER", "OPTIONS", "INVITE")[n % 3]
    ctx = _context(rig, n, shape, method)
    if shape == "100":
        code = 100
    elif shape == "3xx":
        code = 302
        ctx.msg.set_ruri(f"sip:moved{n}@127.0.0.1")
    elif shape == "bad_code":
        code = (99, 700, 0, -5)[n % 4]
    elif shape == "bad_reason":
        reason = "O\r\nK"
    args: tuple = (ctx, code, reason)
    if shape == "added" or n % 5 == 0:
        args += ([("Contact", f"<sip:u{n}@10.0.0.1>;expires=60"), ("X-Two", "2")],)
    before = rig.counts()
    transport, stats = rig.core.transport, kemi_sl._state.stats
    if shape == "no_transport":
        rig.core.transport = None
    elif shape == "no_stats":
        kemi_sl._state.stats = None
    try:
        answer: Any = fns[which](*args)
    except Exception as exc:  # noqa: BLE001 - what the Python form raises, the compiled one must
        answer = (type(exc).__name__, str(exc))
    finally:
        rig.core.transport, kemi_sl._state.stats = transport, stats
    after = rig.counts()
    moved = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    # (each run's core has its own tag prefix and ports)
    logs = [(r.name, r.levelname,
             r.getMessage().replace(str(rig.port), "P"))
            for r in caplog.records if r.name != "asyncio"]
    prefix = kemi_sl._state.tag_prefix.encode()
    wire = [d.replace(prefix, b"PFX") for d in pending_datagrams(rig.peer)]
    if shape == "in_transaction":  # tm's To-tag: its own per core and transaction
        wire = [_TM_TAG.sub(b";tag=TM", d) for d in wire]
    return (shape, answer, ctx.replied, moved, logs, wire)


_TM_TAG = re.compile(rb";tag=[0-9a-f]+-[0-9a-z]+")


def _run(compiled: bool, steps: list[tuple[int, str, int, int, str]], peer: socket.socket,
         caplog: Any, monkeypatch: Any, with_tm: bool = False) -> list[tuple]:
    rig = Rig(peer, with_tm)
    try:
        with monkeypatch.context() as m:
            if compiled:
                fns = (kemi_sl.sl_send_reply, kemi_sl.send_reply)
            else:  # the Python forms, send_reply's stateless way through the Python one too
                m.setattr(kemi_sl, "sl_send_reply", kemi_sl._sl_send_reply_py)
                fns = (kemi_sl._sl_send_reply_py, kemi_sl._send_reply_py)
            kemi_sl._state.tm_for = None  # (tm looked up again for this core)
            caplog.set_level(logging.DEBUG)
            return [_step(rig, fns, *step, caplog) for step in steps]  # type: ignore[arg-type]
    finally:
        rig.close()


def _compare(steps: list, peer: socket.socket, caplog: Any, monkeypatch: Any,
             with_tm: bool = False) -> list[tuple]:
    compiled = _run(True, steps, peer, caplog, monkeypatch, with_tm)
    pure = _run(False, steps, peer, caplog, monkeypatch, with_tm)
    for i, (c, p) in enumerate(zip(compiled, pure, strict=True)):
        assert c == p, f"step {i}: {steps[i]}"
    return compiled


def test_the_compiled_forms_are_in_place() -> None:
    assert type(kemi_sl.sl_send_reply) is not type(kemi_sl._sl_send_reply_py)
    assert kemi_sl._Api.send_reply is kemi_sl.send_reply
    core, _ = offline_core(("sl", kemi_sl))
    records = {e.name: e for e in core.registry.module("sl").values()}
    assert records["sl_send_reply"].func is kemi_sl.sl_send_reply
    assert records["freply"].func is kemi_sl.send_reply
    assert records["sl_send_reply"].param_names == ("code", "reason")


def test_every_shape_once_each_way(peer: socket.socket, caplog: Any, monkeypatch: Any) -> None:
    steps = [(n, shape, n % 2, 200 + n % 3, "OK") for n, shape in enumerate(SHAPES)]
    out = _compare(steps, peer, caplog, monkeypatch)
    by_shape = {o[0]: o for o in out}
    # the usual reply went out once, counted, and marked the context replied
    shape, answer, replied, moved, logs, wire = out[0]
    assert shape == "usual" and answer == 1 and replied and len(wire) == 1 and logs == []
    assert moved == {"sl:200_replies": 1, "sl:sent_replies": 1, "kemi:sent_replies": 1,
                     "kemi:sent_replies_2xx": 1}
    # the others took the Python way and said so as it does
    assert by_shape["ack"][1:] == ("ack", 1, False, {}, [], [])[1:]
    # a TCP request with no connection to answer on: the send fails, counted (compiled too)
    assert by_shape["tcp"][1] == -1 and by_shape["tcp"][3] == {"sl:failures": 1}
    # a datagram the kernel refuses is sent as far as UDP knows (the debug line says why)
    assert by_shape["port0"][1] == 1 and by_shape["port0"][4]
    assert by_shape["no_transport"][1] == -1 and by_shape["no_transport"][4]
    assert by_shape["no_stats"][1] == 1 and "sl:200_replies" not in by_shape["no_stats"][3]
    assert by_shape["bad_code"][1] == -1 and by_shape["a_reply"][1] == -1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_sequences(seed: int, peer: socket.socket, caplog: Any, monkeypatch: Any) -> None:
    rnd = random.Random(seed)
    steps = [(n, rnd.choice(SHAPES), rnd.randrange(2), rnd.choice(CODES), rnd.choice(REASONS))
             for n in range(120)]
    out = _compare(steps, peer, caplog, monkeypatch)
    assert sum(1 for o in out if o[0] == "usual" and o[1] == 1 and o[5]) > 10


def test_with_tm_loaded(peer: socket.socket, caplog: Any, monkeypatch: Any) -> None:
    """tm bound: send_reply asks it for a transaction (none here: the stateless way)."""
    rnd = random.Random(7)
    steps = [(n, rnd.choice(("usual", "usual", "ack", "100", "added", "in_transaction")),
              rnd.randrange(2), rnd.choice(CODES), "OK") for n in range(40)]
    out = _compare(steps, peer, caplog, monkeypatch, with_tm=True)
    assert any(o[0] == "usual" and o[5] for o in out)
    # send_reply (which=1) on a request tm holds: tm's reply, sent and counted as tm's
    held = [o for o, step in zip(out, steps, strict=True)
            if o[0] == "in_transaction" and step[2] == 1]
    assert held and all(o[1] == 1 and len(o[5]) == 1 and "sl:sent_replies" not in o[3]
                        for o in held)


def test_another_core_class_takes_its_own_send_reply_to(peer: socket.socket) -> None:
    sent: list[bytes] = []

    class OwnCore(Core):
        def send_reply_to(self, ctx: MsgContext, data: bytes, *rest: Any) -> bool:
            sent.append(data)
            return super().send_reply_to(ctx, data, *rest)

    rig = Rig(peer)
    try:
        rig.core.__class__ = OwnCore
        ctx = _context(rig, 1, "usual", "OPTIONS")
        assert kemi_sl.sl_send_reply(ctx, 200, "OK") == 1
        assert len(sent) == 1 and pending_datagrams(rig.peer) == sent
    finally:
        rig.close()


def test_added_by_name_and_wrong_calls_take_the_python_form(peer: socket.socket) -> None:
    rig = Rig(peer)
    try:
        added = [("X-One", "1")]
        ctx = _context(rig, 1, "usual", "OPTIONS")
        assert kemi_sl.sl_send_reply(ctx, 200, "OK", added=added) == 1
        assert kemi_sl.send_reply(ctx, 200, "OK", added) == 1
        first, second = pending_datagrams(rig.peer)
        assert first == second and b"X-One: 1\r\n" in first
        with pytest.raises(TypeError, match="_sl_send_reply_py"):
            kemi_sl.sl_send_reply(ctx)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="_send_reply_py"):
            kemi_sl.send_reply(ctx, 200)  # type: ignore[call-arg]
    finally:
        rig.close()
