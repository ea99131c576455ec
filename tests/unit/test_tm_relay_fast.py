"""tm's compiled t_relay of a new request (kemi_tm.relay_fast, _fast.c's "tm's relayed new
request") against its reference, relay.relay in Python: the same requests, replies and timer
steps through two cores, one relaying with each form; after every step both sent the same
bytes to the same places (the branch, the 100 Trying, later replies, retransmissions),
counted the same, and hold the same transactions, field for field (the server transaction's
and each branch's: states, timers, keys, idents, the saved request, flags, marks). Hypothesis
draws the method, the request's Via (;rport or not, RFC 2543, sent from another port), the
destination ($du or the R-URI, UDP or TCP, a bad URI), what the script does first (rr's
record_route, force_rport, add_local_rport, branch flags, t_on_failure, t_on_branch,
t_set_fr, append_branch, auto_inv_100 off), a transport that refuses the branch and the
caller's retransmission."""

from __future__ import annotations

import enum
import itertools
import types
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kemi_rr
from kemi_core.api import MsgContext
from kemi_core.core_exports import flags as core_flags
from kemi_core.core_exports import forward as core_forward
from kemi_core.sip import SipMsg, build_reply, parse_datagram, request_relayer
from kemi_corex import functions as corex
from kemi_rr import record
from kemi_tm import exports as tm
from kemi_tm import idents
from kemi_tm.relay_fast import compiled_relay
from kemi_tm.testing import TmHarness

pytestmark = pytest.mark.skipif(request_relayer is None,
                                reason="_fast not built (or KEMI_SIP_PURE)")

CALLEE, REFUSING = ("127.0.0.1", 5080), 5099
DESTINATIONS = {
    "du": "sip:127.0.0.1:5080",
    "du-refused": f"sip:127.0.0.1:{REFUSING}",
    "du-tcp": "sip:127.0.0.1:5080;transport=tcp",
    "du-bad": "sip:",
    "ruri": None,
}
SCRIPT = ("record_route", "force_rport", "add_local_rport", "setbflag", "t_on_failure",
          "t_on_branch", "t_set_fr", "append_branch")


def make_request(method: str, via: str, cseq: int = 1) -> bytes:
    vias = {
        "rport": "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcaller{n};rport",
        "plain": "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcaller{n}",
        "other-port": "SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bKcaller{n}",
        "name": "SIP/2.0/UDP caller.example.com;branch=z9hG4bKcaller{n};rport",
        "2543": "SIP/2.0/UDP 127.0.0.1:5070",
    }
    return (f"{method} sip:bob@127.0.0.1:5080 SIP/2.0\r\n"
            f"Via: {vias[via].format(n=cseq)}\r\n"
            "From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\n"
            f"Call-ID: fast-relay-{method}\r\nCSeq: {cseq} {method}\r\n"
            "Contact: <sip:alice@127.0.0.1:5070>\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def plain(value: Any, svc: Any) -> Any:
    """``value`` as both sides can compare it (messages as bytes, methods by name)."""
    if value is svc:
        return "<svc>"
    if isinstance(value, SipMsg):
        return value.to_bytes()
    if isinstance(value, types.MethodType):
        return ("method", value.__func__.__qualname__)
    if isinstance(value, types.FunctionType):
        return ("function", value.__qualname__)
    if isinstance(value, dict):
        return {k: plain(v, svc) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v, svc) for v in value]
    if isinstance(value, str | bytes | int | float | bool | enum.Enum) or value is None:
        return value
    if hasattr(value, "__slots__"):
        return fields(value, svc)
    text = repr(value)
    return type(value).__qualname__ if " at 0x" in text else text  # (no address to compare)


def fields(obj: Any, svc: Any) -> dict[str, Any]:
    """Every slot of ``obj`` (its class and bases) and its __dict__, compared as ``plain``."""
    out: dict[str, Any] = {"type": type(obj).__name__}
    for cls in type(obj).__mro__:
        for name in cls.__dict__.get("__slots__", ()):
            out[name] = plain(getattr(obj, name, "<unset>"), svc)
    out.update({k: plain(v, svc) for k, v in getattr(obj, "__dict__", {}).items()})
    return out


class Side:
    def __init__(self, compiled: bool, method: str, dest: str, script: frozenset[str],
                 auto_100: bool) -> None:
        def route(ctx: MsgContext) -> int:
            if "record_route" in script and ctx.msg.method == "INVITE":
                record.record_route(ctx)
            if "force_rport" in script:
                core_forward.force_rport(ctx)
            if "add_local_rport" in script:
                core_forward.add_local_rport(ctx)
            if "setbflag" in script:
                core_flags.setbflag(ctx, 3)
            if "t_on_failure" in script:
                tm.t_on_failure(ctx, "on_failure")
            if "t_on_branch" in script:
                tm.t_on_branch(ctx, "on_branch")
            if "t_set_fr" in script:
                tm.t_set_fr(ctx, 5000, 2000)
            if "append_branch" in script:
                corex.append_branch_uri(ctx, "sip:127.0.0.1:5082")
            du = DESTINATIONS[dest]
            if du is not None:
                ctx.dst_uri = du
            self.answers.append(tm.t_relay(ctx))
            return 1

        self.answers: list[int] = []
        params = {} if auto_100 else {"auto_inv_100": 0}
        self.h = TmHarness({"ksr_request_route": route, "on_failure": lambda ctx: 1,
                            "on_branch": lambda ctx: 1}, params=params,
                           modules=(("rr", kemi_rr),))
        svc = self.h.tm
        # the engine asked for its onsend_route (a worker's first relay asks it, through the
        # Python form): from then on the compiled form takes the usual request
        assert self.h.core.onsend_name() is None
        fast = compiled_relay(svc)
        assert fast is not None and svc.relay_fast is not None
        svc.relay_fast = fast if compiled else None
        transport = self.h.transport
        send = transport.send

        def refusing(proto: str, host: str, port: int, data: bytes,
                     local: tuple[str, int] | None = None) -> bool:
            return port != REFUSING and send(proto, host, port, data, local)

        transport.send = refusing  # type: ignore[method-assign]

    def state(self) -> Any:
        svc = self.h.tm
        stats = svc.stats
        counters = {name: getattr(stats, name).value
                    for name in ("rpl_received", "rpl_relayed", "rpl_generated", "uas",
                                 "freed")}
        counters.update({f"{k}xx": c.value for k, c in stats.by_class.items()})
        txs = [fields(tx, svc) for tx in svc.table.transactions()]
        sent = [(s.proto, s.host, s.port, s.data, s.local) for s in self.h.take()]
        return counters, txs, sent, list(self.answers), len(svc.table)


def run(side: Side, method: str, via: str, steps: list[tuple[str, Any]]) -> list[Any]:
    h = side.h
    h.request(make_request(method, via), ("127.0.0.1", 5070))
    out = [side.state()]
    forwarded = [s.msg for s in h.sent if s.port == CALLEE[1]]
    for kind, arg in steps:
        if kind == "reply" and forwarded:
            h.reply(build_reply(forwarded[-1], arg, "Whatever",
                                to_tag=None if arg == 100 else "t1"), CALLEE)
        elif kind == "advance":
            h.advance(arg)
        elif kind == "again":  # the caller retransmits its request
            h.request(make_request(method, via), ("127.0.0.1", 5070))
        out.append(side.state())
    return out


steps = st.lists(st.one_of(
    st.tuples(st.just("reply"), st.sampled_from((100, 180, 200, 486, 503))),
    st.tuples(st.just("advance"), st.sampled_from((0.01, 0.6, 5.5, 40.0))),
    st.tuples(st.just("again"), st.none()),
), max_size=6)


@settings(max_examples=200, deadline=None)
@given(method=st.sampled_from(["INVITE", "BYE", "OPTIONS", "MESSAGE", "CANCEL", "ACK"]),
       via=st.sampled_from(["rport", "plain", "other-port", "name", "2543"]),
       dest=st.sampled_from(sorted(DESTINATIONS)),
       script=st.frozensets(st.sampled_from(SCRIPT)), auto_100=st.booleans(), steps=steps)
def test_compiled_relay_does_what_the_python_form_does(method: str, via: str, dest: str,
                                                       script: frozenset[str], auto_100: bool,
                                                       steps: list[tuple[str, Any]]) -> None:
    results = []
    source = idents._SOURCE
    for compiled in (True, False):
        source.counter = itertools.count(1)  # the same idents (branches, tags) on both sides
        side = Side(compiled, method, dest, script, auto_100)
        results.append(run(side, method, via, steps))
        side.h.advance(300)  # every transaction ends
        assert len(side.h.tm.table) == 0
    assert results[0] == results[1]


def test_the_usual_requests_take_the_compiled_form() -> None:
    """An INVITE (with rr's Record-Route) and a BYE relayed without relay.relay; what is not
    the usual request (a retransmission, an appended branch) runs it."""
    side = Side(True, "INVITE", "du", frozenset({"record_route"}), True)
    called = []
    pure = side.h.tm.relay_fast
    assert pure is not None
    import kemi_tm.relay as relay_module

    reference = relay_module.relay

    def spy(svc: Any, ctx: MsgContext) -> int:
        called.append(ctx.msg.method)
        return reference(svc, ctx)

    relay_module.relay = spy  # type: ignore[assignment]  # the compiled form's Python form is read when it is made
    try:
        side.h.tm.relay_fast = compiled_relay(side.h.tm)
    finally:
        relay_module.relay = reference
    h = side.h
    for method, cseq in (("INVITE", 1), ("BYE", 2)):
        h.request(make_request(method, "rport", cseq))
    sent = h.take()
    to_callee = [s.data for s in sent if s.port == CALLEE[1]]
    assert [parse_datagram(d).method for d in to_callee] == ["INVITE", "BYE"]
    assert b"\r\nRecord-Route: " in to_callee[0]
    trying = [parse_datagram(s.data) for s in sent if s.port == 5070]
    assert [m.status for m in trying] == [100]
    assert called == []
    h.request(make_request("BYE", "rport", 2))  # a retransmission: the Python form absorbs it
    assert called == ["BYE"]
    assert h.tm.stats.uas.value == 2
