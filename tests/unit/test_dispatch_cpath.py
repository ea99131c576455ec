"""A request's way from the parsed message to its route, and a reply's to its handlers, in one
compiled call (``_fast.request_dispatcher``, Dispatcher.on_message): the compiled and the
Python on_message give the same on the same sequences of requests and replies (RESPS): the same replies on the wire
(a real WorkerEndpoints on 127.0.0.1 sending to a peer socket), the same counters, log lines,
what the filters and the route saw (the message, LOG_CONTEXT.msg, the busy cell), the context's
state after, for the usual request and every other shape: ACK (absorbed or not), filters that
take the message or raise, a route that replies, stays silent, raises, exits, drops or faults
after its reply, a request check_request_headers refuses, a header a filter finds malformed,
a reload published by another process, a draining worker, a log_prefix. The script is a real
Python KEMI script (app_python3) in a core built from kamailio.cfg as ``kemi run`` builds it,
or native cfg routes: then the compiled native engine's run (``_fast.route_runner``) and
textops' is_method (``_fast.method_tester``) against their Python forms as well."""

from __future__ import annotations

import array
import asyncio
import logging
import random
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import kemi_textops
from kemi_core.config.model import ListenAddr
from kemi_core.counters import Counter
from kemi_core.native import engine as native_engine
from kemi_core.native.engine import NativeEngine
from kemi_core.runtime import dispatch
from kemi_core.runtime.builder import Overrides, build, load_config
from kemi_core.runtime.context import MsgContext, RecvInfo
from kemi_core.runtime.dispatch import Dispatcher, _prefix_format
from kemi_core.runtime.logs import LOG_CONTEXT
from kemi_core.runtime.ratelimit import RateLimitedLog
from kemi_core.runtime.worker import limits_of
from kemi_core.sip import ParseLimits, SipParseError, parse_datagram
from kemi_core.testing.udp_client import pending_datagrams
from kemi_core.transport.endpoints import WorkerEndpoints
from kemi_core.transport.sockets import bind_udp

pytestmark = pytest.mark.skipif(dispatch.request_dispatcher is None, reason="_fast not built")

CFG = """#!KAMAILIO
debug=2
listen=udp:127.0.0.1:5060
children=1
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "app_python3.so"
modparam("app_python3", "load", "{script}")
cfgengine "python"
"""

SCRIPT = '''
import KSR


class kamailio:
    def ksr_request_route(self, msg):
        do = KSR.hdr.get("X-Do") or "reply"
        KSR.info("{version} saw %s %s %s\\n" % (KSR.pv.get("$rm"), KSR.pv.get("$ci"), do))
        if do == "reply":
            KSR.sl.sl_send_reply(200, "OK")
        elif do == "send_reply":
            KSR.sl.send_reply(404, "Not here")
        elif do == "raise":
            raise RuntimeError("boom")
        elif do == "reply_raise":
            KSR.sl.sl_send_reply(202, "Accepted")
            raise RuntimeError("after the reply")
        elif do == "exit":
            KSR.x.exit()
        elif do == "drop":
            KSR.x.drop()
        elif do == "read_from":
            KSR.info("from %s\\n" % KSR.pv.get("$fu"))
            KSR.sl.sl_send_reply(200, "OK")
        return 1


    def ksr_reply_route(self, msg):
        do = KSR.hdr.get("X-Do") or ""
        KSR.info("{version} reply route saw %s %s\\n" % (KSR.pv.get("$rs"), do))
        if do == "resp_route_drop":
            KSR.x.drop()
        elif do == "resp_route_raise":
            raise RuntimeError("a reply route's bug")
        return 1


def mod_init():
    return kamailio()
'''

#: the same routes in the native cfg language (is_method's compiled form and the native
#: engine's compiled run against their Python forms)
NATIVE_CFG = """#!KAMAILIO
debug=2
listen=udp:127.0.0.1:5060
children=1
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "textops.so"
request_route {
    xlog("L_INFO", "{version} saw $rm $ci $hdr(X-Do)\\n");
    if ($hdr(X-Do) == "exit") {
        exit;
    }
    if ($hdr(X-Do) == "drop") {
        drop;
    }
    if ($hdr(X-Do) == "silent") {
        exit;
    }
    if (is_method("REGISTER")) {
        sl_send_reply("200", "Registered");
        exit;
    }
    if (is_method("OPTIONS|invite")) {
        sl_send_reply("200", "Options or invite");
        exit;
    }
    if (is_method(" message | Bye ")) {
        send_reply("202", "Message");
        exit;
    }
    sl_send_reply("404", "Not here");
}
"""

#: the reply shapes (Python script; without tm a reply is forwarded statelessly): ours,
#: another's top Via, a lone Via, the reply route running (its drop and fault), a CSeq that does
#: not parse, steered to another worker or not, a reply handler taking it or raising
RESPS = ("resp", "resp", "resp_not_ours", "resp_one_via", "resp_route", "resp_route_drop",
         "resp_route_raise", "resp_bad_cseq", "resp_steer", "resp_steer_not", "resp_handler",
         "resp_handler_raise", "resp_draining", "resp_prefix")
DOS = ("reply", "reply", "reply", "send_reply", "silent", "raise", "reply_raise", "exit", "drop",
       "read_from", "filter", "filter_parse", "filter_raise", "ack", "own_ack", "bad_to",
       "reload", "draining", "prefix", "bad_line", "two_vias", "bad_cseq", *RESPS)
#: the shapes with native routes ("lower": a request method in lower case)
NATIVE_DOS = ("reply", "reply", "reply", "reply", "silent", "exit", "drop", "lower", "filter",
              "filter_parse", "filter_raise", "ack", "own_ack", "bad_to", "reload", "draining",
              "prefix", "bad_line", "two_vias", "bad_cseq")


class Rig:
    """A worker's core, engine and dispatcher built from kamailio.cfg, its transport a real
    WorkerEndpoints on 127.0.0.1; requests come from the peer socket's address."""

    def __init__(self, tmp: Path, peer: socket.socket, compiled: bool, native: bool = False,
                 monkeypatch: pytest.MonkeyPatch | None = None) -> None:
        cfg = tmp / "kamailio.cfg"
        if native:  # the routes are the cfg's own (a reload reads the file again)
            self.script, self.template = cfg, NATIVE_CFG
            cfg.write_text(NATIVE_CFG.replace("{version}", "v1"))
            if not compiled:  # textops binds its Python is_method, engines their Python run
                assert monkeypatch is not None
                monkeypatch.setattr(kemi_textops, "COMPILED_CFG", {})
                monkeypatch.setattr(native_engine, "route_runner", None)
        else:
            self.script, self.template = tmp / "route.py", SCRIPT
            self.script.write_text(SCRIPT.replace("{version}", "v1"))
            cfg.write_text(CFG.format(script=self.script))
        config = load_config(cfg, Overrides())
        built = build(config)
        self.core = core = built.core
        core.worker_rank = 1
        built.loader.child_init_all(1)
        core.engine = core.new_engine()
        if native:
            assert isinstance(core.engine, NativeEngine)
            assert ("run" in core.engine.__dict__) is compiled  # (the compiled run)
        self.loop = asyncio.new_event_loop()
        sock = bind_udp("127.0.0.1", 0, reuse_port=False)
        self.port = sock.getsockname()[1]
        sock.close()
        self.ep = WorkerEndpoints(self.loop, [ListenAddr("udp", "127.0.0.1", self.port)],
                                  None, ParseLimits(), False)  # type: ignore[arg-type]
        self.loop.run_until_complete(self.ep.start())
        self.ep.limited_log = RateLimitedLog(logging.getLogger("kemi.transport"), interval=0.0)
        core.attach_transport(self.ep)  # type: ignore[arg-type]
        self.d = Dispatcher(core, limits_of(built))
        core.dispatcher = self.d
        self.d.limited = RateLimitedLog(logging.getLogger("kemi.dispatch"), interval=0.0)
        self.compiled = compiled
        self.on_message = self.d.on_message if compiled else Dispatcher.on_message.__get__(self.d)
        self.busy = array.array("d", [0.0, 0.0])
        self.draining = [False]
        self.d.entry_gate(self.busy, 1, self.draining, self._refuse)
        self.peer, self.to = peer, peer.getsockname()[1]
        #: what the filters saw: (filter, method, Call-ID, LOG_CONTEXT.msg is the message,
        #: the busy cell set)
        self.saw: list[tuple] = []
        self.contexts: list[MsgContext] = []
        core.request_filters.insert(0, self._first_filter)
        core.ack_filters.append(self._ack_filter)
        core.reply_handlers.insert(0, self._reply_handler)

    def _refuse(self, msg: Any, rcv: RecvInfo) -> bool:
        self.saw.append(("refuse", msg.method, msg.call_id))
        return msg.method != "ACK"

    def _note(self, name: str, ctx: MsgContext) -> None:
        self.saw.append((name, ctx.msg.method, ctx.msg.call_id, LOG_CONTEXT.msg is ctx.msg,
                         self.busy[1] > 0.0))

    def _first_filter(self, ctx: MsgContext) -> bool:
        self._note("request", ctx)
        self.contexts.append(ctx)
        do = ctx.msg.header("X-Do")
        if do == "filter_parse":
            raise SipParseError(400, "Bad From in a filter")
        if do == "filter_raise":
            raise KeyError("a filter's bug")
        return do == "filter"

    def _reply_handler(self, ctx: MsgContext) -> bool:
        msg = ctx.msg
        self.saw.append(("reply", msg.status, msg.call_id, LOG_CONTEXT.msg is msg,
                         self.busy[1] > 0.0))
        self.contexts.append(ctx)
        do = msg.header("X-Do")
        if do == "resp_handler_raise":
            raise KeyError("a reply handler's bug")
        return do == "resp_handler"

    def _ack_filter(self, ctx: MsgContext) -> bool:
        self._note("ack", ctx)
        return False

    def counts(self) -> dict[str, int]:
        return {f"{c.group}:{c.name}": c.value for c in self.core.counters
                if isinstance(c, Counter)}

    def close(self) -> None:
        self.ep.close()
        self.loop.close()


def _request(n: int, do: str, to_port: int) -> bytes:
    method = "ACK" if do in ("ack", "own_ack") else ("INVITE", "OPTIONS", "REGISTER", "MESSAGE")[n % 4]
    if do == "lower":
        method = method.lower()
    to = "<sip:u@127.0.0.1>"
    if do == "own_ack":
        to += ";tag=OWNTAG"
    elif do == "bad_to":
        to = "<sip:u@127.0.0.1"  # no closing bracket: check_request_headers refuses it
    from_ = "<sip:a@127.0.0.1>;tag=f" if do != "read_from" or n % 2 else "sip:a@[::1;tag=f"
    gap = "  " if do == "bad_line" else " "  # a request line the gate refuses
    more = "Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKx\r\n" if do == "two_vias" else ""
    cseq = f"{n + 1} {method}" if do != "bad_cseq" else f"{n + 1}"
    return (f"{method} sip:u{n}@127.0.0.1{gap}SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{to_port};branch=z9hG4bKdq{n};rport\r\n{more}"
            f"From: {from_}\r\nTo: {to}\r\nCall-ID: dq{n}@test\r\n"
            f"CSeq: {cseq}\r\nX-Do: {do}\r\nMax-Forwards: 70\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


def _reply(n: int, do: str, port: int, to_port: int) -> bytes:
    """A callee's reply to a request this worker forwarded (its Via on top)."""
    top = "127.0.0.1:5060" if do != "resp_not_ours" else "10.0.0.7:5060"  # (the cfg's listen)
    vias = f"Via: SIP/2.0/UDP {top};branch=z9hG4bKfw{n}.0\r\n"
    if do != "resp_one_via":
        vias += f"Via: SIP/2.0/UDP 127.0.0.1:{to_port};branch=z9hG4bKdq{n};rport={to_port}\r\n"
    cseq = f"{n + 1} INVITE" if do != "resp_bad_cseq" else "x INVITE"
    status = (180, 200, 486)[n % 3]
    return (f"SIP/2.0 {status} Whatever\r\n{vias}From: <sip:a@127.0.0.1>;tag=f\r\n"
            f"To: <sip:u@127.0.0.1>;tag=t\r\nCall-ID: dq{n}@test\r\nCSeq: {cseq}\r\n"
            f"X-Do: {do}\r\nContent-Length: 0\r\n\r\n").encode()


def _step(rig: Rig, n: int, do: str, caplog: Any) -> tuple:
    caplog.clear()
    rig.saw.clear()
    rig.contexts.clear()
    if do.startswith("resp"):
        data = _reply(n, do, rig.port, rig.to)
        # the reply route runs for its shapes only; steering set for its two
        rig.d.reply_cb = "ksr_reply_route" if do.startswith("resp_route") else "no_reply_route"
        steered = do == "resp_steer"
        rig.d.steer = (lambda msg, rcv: steered) if do.startswith("resp_steer") else None
    else:
        data = _request(n, do, rig.to)
    if do == "own_ack":  # the tag of this worker's own stateless replies
        data = data.replace(b"OWNTAG", f"{rig.core.local_tag_prefix}.1".encode())
    if do == "reload":  # another process publishes a new script: this worker follows it
        rig.script.write_text(rig.template.replace("{version}", f"v{n}"))
        reload = rig.core._reload
        assert reload is not None
        fresh = reload.spec.factory(rig.core)
        fresh.load()  # (what the main process checks and publishes)
        snapshot = getattr(fresh, "snapshot", None)
        reload.channel.publish(b"" if snapshot is None else snapshot())
    rig.draining[0] = do in ("draining", "resp_draining")
    rig.d.log_prefix = (_prefix_format(rig.core, "[$ci $rm] ") if do in ("prefix", "resp_prefix")
                        else None)
    before = rig.counts()
    rcv = RecvInfo("udp", "127.0.0.1", rig.to, "127.0.0.1", rig.port)
    msg = parse_datagram(data)
    try:
        rig.on_message(msg, rcv)
    finally:
        rig.draining[0] = False
        rig.d.log_prefix = None
        rig.d.steer = None
    after = rig.counts()
    moved = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    logs = [(r.name, r.levelname, r.getMessage().replace(str(rig.port), "P"),
             getattr(r, "kemi_exception", None).__class__.__name__)
            for r in caplog.records if r.name != "asyncio"]
    states = [(c.replied, c.fault, c.dropped) for c in rig.contexts]
    prefix = rig.core.local_tag_prefix.encode()
    wire = [d.replace(prefix, b"PFX") for d in pending_datagrams(rig.peer)]
    return (do, moved, logs, list(rig.saw), states, wire, rig.busy[1], LOG_CONTEXT.msg,
            LOG_CONTEXT.prefix)


def _run(compiled: bool, dos: list[str], tmp: Path, peer: socket.socket,
         caplog: Any, native: bool = False) -> list[tuple]:
    caplog.set_level(logging.DEBUG)
    with pytest.MonkeyPatch.context() as monkeypatch:
        # (the same script path: fault lines name it)
        rig = Rig(tmp, peer, compiled, native, monkeypatch)
        return _steps(rig, compiled, dos, caplog)


def _steps(rig: Rig, compiled: bool, dos: list[str], caplog: Any) -> list[tuple]:
    try:
        if compiled:
            assert rig.on_message.__name__ == "on_message"
            assert not hasattr(rig.on_message, "__func__")  # the compiled one
        return [_step(rig, n, do, caplog) for n, do in enumerate(dos)]
    finally:
        rig.close()


def _compare(dos: list[str], tmp: Path, peer: socket.socket, caplog: Any,
             native: bool = False) -> list[tuple]:
    compiled = _run(True, dos, tmp, peer, caplog, native)
    pure = _run(False, dos, tmp, peer, caplog, native)
    for i, (c, p) in enumerate(zip(compiled, pure, strict=True)):
        assert c == p, f"step {i}: {dos[i]}"
    return compiled


@pytest.fixture
def peer() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


def test_every_shape_once(tmp_path: Path, peer: socket.socket, caplog: Any) -> None:
    out = _compare(list(DOS), tmp_path, peer, caplog)
    by = {o[0]: o for o in out}
    # the usual request: counted, routed with the log context and busy cell set, answered
    do, moved, logs, saw, states, wire, busy, log_msg, log_prefix = out[0]
    assert moved["core:rcv_requests"] == moved["core:rcv_requests_invite"] == 1
    assert saw[0][3:] == (True, True) and states == [(True, None, False)] and len(wire) == 1
    assert (busy, log_msg, log_prefix) == (0.0, None, "")
    assert any("v1 saw" in line[2] for line in logs)
    # a fault gets its 500, one after the script's reply does not
    assert [w[:12] for w in by["raise"][5]] == [b"SIP/2.0 500 "]
    assert [w[:12] for w in by["reply_raise"][5]] == [b"SIP/2.0 202 "]
    assert by["raise"][1]["kemi:script_errors"] == 1
    # a request check_request_headers refuses: its 400, never routed
    assert [w[:12] for w in by["bad_to"][5]] == [b"SIP/2.0 400 "] and by["bad_to"][3] == []
    # a filter's SipParseError: the 400; another error: the guard's line, no reply
    assert [w[:12] for w in by["filter_parse"][5]] == [b"SIP/2.0 400 "]
    assert by["filter_raise"][5] == [] and by["filter_raise"][1]["kemi:script_errors"] == 1
    # the reload is followed before the route runs; a draining worker refuses
    assert any("v16 saw" in line[2] for line in by["reload"][2])
    assert by["draining"][3][0][0] == "refuse"
    # the gate's other refusals (its Python decides), and a second Via it lets through
    for do in ("bad_line", "bad_cseq"):
        assert [w[:12] for w in by[do][5]] == [b"SIP/2.0 400 "] and by[do][3] == [], do
    assert by["two_vias"][3][0][0] == "request" and by["two_vias"][5] == []
    # replies: ours forwarded to the next Via; the reply route's drop and fault counted; the
    # steered one handed over; a handler that takes it ends it, one that raises meets the guard
    assert len(by["resp"][5]) == 1 and by["resp"][3][0][3:] == (True, True)
    assert by["resp_not_ours"][5] == [] and by["resp_not_ours"][1]["core:drop_replies"] == 1
    assert any("reply route saw" in line[2] for line in by["resp_route"][2])
    assert by["resp_route_drop"][1]["core:drop_replies"] == 1 and by["resp_route_drop"][3] == []
    assert by["resp_route_raise"][1]["kemi:script_errors"] == 1
    assert by["resp_steer"][1]["kemi:replies_handed_over"] == 1 and by["resp_steer"][3] == []
    assert len(by["resp_steer_not"][5]) == 1
    assert by["resp_handler"][5] == [] and by["resp_handler"][3][0][0] == "reply"
    assert by["resp_handler_raise"][1]["kemi:script_errors"] == 1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_sequences(seed: int, tmp_path: Path, peer: socket.socket, caplog: Any) -> None:
    rnd = random.Random(seed)
    dos = [rnd.choice(DOS) for _ in range(80)]
    out = _compare(dos, tmp_path, peer, caplog)
    assert sum(1 for o in out if o[0] == "reply" and o[5]) >= 3
    assert sum(1 for o in out if o[0] == "resp" and o[5]) >= 1  # a reply forwarded


def test_native_routes_every_shape_once(tmp_path: Path, peer: socket.socket,
                                        caplog: Any) -> None:
    out = _compare(list(NATIVE_DOS), tmp_path, peer, caplog, native=True)
    by_method: dict[str, list[bytes]] = {}
    for o in out:
        if o[0] == "reply":
            by_method[o[3][0][1]] = [w.split(b"\r\n")[0] for w in o[5]]
    # is_method's three name texts, each answered by its own branch
    assert by_method == {"INVITE": [b"SIP/2.0 200 Options or invite"],
                         "OPTIONS": [b"SIP/2.0 200 Options or invite"],
                         "REGISTER": [b"SIP/2.0 200 Registered"],
                         "MESSAGE": [b"SIP/2.0 202 Message"]}
    by = {o[0]: o for o in out}
    assert by["silent"][5] == [] and by["exit"][5] == [] and by["drop"][4] == [(False, None, True)]
    assert [w[:18] for w in by["lower"][5]] == [b"SIP/2.0 202 Messag"]  # ("message", upper())
    assert any("v14 saw" in line[2] for line in by["reload"][2])


@pytest.mark.parametrize("seed", [4, 5])
def test_native_random_sequences(seed: int, tmp_path: Path, peer: socket.socket,
                                 caplog: Any) -> None:
    rnd = random.Random(seed)
    dos = [rnd.choice(NATIVE_DOS) for _ in range(80)]
    out = _compare(dos, tmp_path, peer, caplog, native=True)
    assert sum(1 for o in out if o[0] in ("reply", "lower") and o[5]) >= 10


def test_the_compiled_native_run_finds_what_the_python_run_finds(tmp_path: Path) -> None:
    """engine.run by every kind of name, compiled and in Python, and after the engine's own
    reload (its name table emptied in place, read by the compiled run)."""
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text("""#!KAMAILIO
loadmodule "sl.so"
request_route {
    route(ONE);
}
route[ONE] {
    return 2;
}
failure_route[ONE] {
    return 3;
}
""")
    built = build(load_config(cfg, Overrides()))
    core = built.core
    engine = core.new_engine()
    assert isinstance(engine, NativeEngine) and "run" in engine.__dict__
    ctx = MsgContext(parse_datagram(_request(1, "reply", 5070)),
                     RecvInfo("udp", "127.0.0.1", 5070, "127.0.0.1", 5060), core)
    python_run = NativeEngine.run.__get__(engine)

    def answers(run: Any) -> list[Any]:
        out = []
        for name in ("ksr_request_route", "request_route", "route:ONE", "route[ONE]",
                     "failure_route:ONE", "ONE", "NONE", "ksr_request_route", "ONE"):
            for route_type in (1, 2):  # (REQUEST, FAILURE: a bare name's table)
                ctx.route_type = route_type  # type: ignore[assignment]
                try:
                    out.append(run(name, ctx))
                except Exception as exc:
                    out.append((exc.__class__.__name__, str(exc)))
        return out

    first = answers(engine.run)
    assert first == answers(python_run)
    assert first[:6] == [1, 1, 1, 1, 2, 2] and first[8:10] == [3, 3]
    assert first[10:12] == [2, 3] and first[12][0] == "ScriptError"
    cfg.write_text(cfg.read_text().replace("return 2", "return 4"))
    engine.reload()
    again = answers(engine.run)
    assert again == answers(python_run)
    assert again[4:6] == [4, 4] and again[10] == 4


def test_a_subclass_keeps_its_own_on_message() -> None:
    from kemi_core.testing.capture import offline_core

    class Own(Dispatcher):
        def on_message(self, msg: Any, rcv: RecvInfo) -> None:
            super().on_message(msg, rcv)

    core, _ = offline_core()
    assert "on_message" not in Own(core, ParseLimits()).__dict__
    assert "on_message" in Dispatcher(core, ParseLimits()).__dict__
