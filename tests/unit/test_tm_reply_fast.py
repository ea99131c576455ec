"""tm's compiled relayed reply (kemi_tm.reply_fast, _fast.c's "tm's usual relayed reply") against
its reference, TmService.on_reply in Python: the same requests, replies, retransmissions and
timer steps through two cores, one with each handler; after every step both sent the same
bytes to the same places, counted the same, and hold transactions in the same states (the
server and each branch's machine: state, finals, timers, marks). Hypothesis draws the
transaction's method, its branches (one or two), the script's onreply / branch-failure routes
and the replies (1xx to 6xx, retransmitted, late, from an unknown branch)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kemi_core.api import Branch, MsgContext
from kemi_core.sip import build_reply, parse_datagram, reply_relayer
from kemi_tm import exports as tm
from kemi_tm import idents
from kemi_tm.reply_fast import compiled_on_reply
from kemi_tm.testing import TmHarness

pytestmark = pytest.mark.skipif(reply_relayer is None,
                                reason="_fast not built (or KEMI_SIP_PURE)")

CALLER, CALLEE, OTHER = ("127.0.0.1", 5070), ("127.0.0.1", 5080), ("127.0.0.1", 5082)
STATUSES = (100, 180, 183, 200, 202, 404, 486, 503, 603)


def make_request(method: str, cseq: int = 1) -> bytes:
    return (f"{method} sip:bob@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcaller{cseq};rport\r\n"
            "From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\n"
            f"Call-ID: fast-reply-1\r\nCSeq: {cseq} {method}\r\n"
            "Contact: <sip:alice@127.0.0.1:5070>\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n").encode()


class Side:
    """A TmHarness relaying to the callee (and a second branch when ``forked``), its reply
    handler the compiled one or the Python one."""

    def __init__(self, compiled: bool, forked: bool, onreply: bool, branch_failure: bool) -> None:
        self.onreply_runs: list[int] = []

        def route(ctx: MsgContext) -> int:
            ctx.dst_uri = "sip:127.0.0.1:5080"
            if forked:
                ctx.branches.append(Branch(uri="sip:127.0.0.1:5082"))  # append_branch_uri
            if onreply:
                tm.t_on_reply(ctx, "on_reply")
            if branch_failure:
                tm.t_on_branch_failure(ctx, "on_bf")
            return tm.t_relay(ctx)

        def on_reply(ctx: MsgContext) -> int:
            self.onreply_runs.append(ctx.msg.status)
            return 1

        self.h = TmHarness({"ksr_request_route": route, "on_reply": on_reply,
                            "on_bf": lambda ctx: 1})
        handlers = self.h.core.reply_handlers
        fast = compiled_on_reply(self.h.tm)
        assert fast is not None
        at = handlers.index(fast) if fast in handlers else next(
            i for i, x in enumerate(handlers) if getattr(x, "__name__", "") == "on_reply")
        handlers[at] = fast if compiled else self.h.tm.on_reply

    def state(self) -> Any:
        """What both sides must agree on after a step."""
        tm_stats = self.h.tm.stats
        counters = {name: getattr(tm_stats, name).value
                    for name in ("rpl_received", "rpl_relayed", "rpl_generated")}
        counters.update({f"{k}xx": c.value for k, c in tm_stats.by_class.items()})
        txs = []
        for tx in self.h.tm.table.transactions():
            txs.append((tx.ident, tx.state, tx.final_status, tx.last_status, tx.last_reply,
                        dict(tx.timers), tx.counted_final, tx.deciding, tx.refile,
                        tx.filed_at, [(b.state, b.status, b.final_status, dict(b.timers),
                                       b.replied, b.local_final, b.cancel is not None)
                                      for b in tx.branches]))
        sent = [(s.proto, s.host, s.port, s.data, s.local) for s in self.h.take()]
        return counters, txs, sent, list(self.onreply_runs), len(self.h.tm.table)


def run(side: Side, method: str, steps: list[tuple[str, Any]]) -> list[Any]:
    out = [None]
    h = side.h
    h.request(make_request(method))
    sent = h.take()
    out.append([(s.host, s.port, s.data) for s in sent])
    forwarded = {(s.host, s.port): s.msg for s in sent if s.port in (5080, 5082)}
    for kind, arg in steps:
        if kind == "reply":
            status, to_branch, tag = arg
            dest = CALLEE if to_branch == 0 or OTHER not in forwarded else OTHER
            req = forwarded.get(dest)
            if req is None:
                continue
            data = build_reply(req, status, "Whatever", to_tag=None if status == 100 else tag)
            h.reply(data, dest)
        elif kind == "stranger":  # a reply whose branch names no transaction of ours
            req = forwarded[CALLEE]
            data = build_reply(req, arg, "Stray", to_tag="x").replace(b".0;", b".7;", 1)
            h.reply(data, CALLEE)
        elif kind == "advance":
            h.advance(arg)
        elif kind == "again":  # the caller retransmits its request
            h.request(make_request(method))
        out.append(side.state())
    return out


steps = st.lists(st.one_of(
    st.tuples(st.just("reply"), st.tuples(st.sampled_from(STATUSES), st.integers(0, 1),
                                          st.sampled_from(["t1", "t2"]))),
    st.tuples(st.just("stranger"), st.sampled_from((180, 200))),
    st.tuples(st.just("advance"), st.sampled_from((0.01, 0.6, 5.5, 40.0))),
    st.tuples(st.just("again"), st.none()),
), min_size=1, max_size=8)


@settings(max_examples=150, deadline=None)
@given(method=st.sampled_from(["INVITE", "BYE", "OPTIONS", "MESSAGE"]), forked=st.booleans(),
       onreply=st.booleans(), branch_failure=st.booleans(), steps=steps)
def test_compiled_reply_does_what_the_python_form_does(method: str, forked: bool,
                                                       onreply: bool, branch_failure: bool,
                                                       steps: list[tuple[str, Any]]) -> None:
    results = []
    source = idents._SOURCE
    for compiled in (True, False):
        source.counter = itertools.count(1)  # the same idents (branches, tags) on both sides
        side = Side(compiled, forked, onreply, branch_failure)
        results.append(run(side, method, steps))
        side.h.advance(300)  # every transaction ends
    assert results[0] == results[1]


def test_the_usual_call_takes_the_compiled_form() -> None:
    """A 180 and a 200 to an INVITE and a 200 to a BYE relayed without the Python on_reply."""
    side = Side(True, False, False, False)
    called = []
    pure = side.h.tm.on_reply
    fast = compiled_on_reply(side.h.tm)
    assert fast is not None

    def spy(ctx: MsgContext) -> bool:
        called.append(ctx.msg.status)
        return pure(ctx)

    side.h.tm.on_reply = spy  # type: ignore[method-assign]
    handlers = side.h.core.reply_handlers
    handlers[handlers.index(next(x for x in handlers if type(x) is type(fast)))] = \
        compiled_on_reply(side.h.tm)  # bound to the spy as its Python form
    h = side.h
    for method in ("INVITE", "BYE"):
        h.request(make_request(method, 1 if method == "INVITE" else 2))
        req = next(s.msg for s in h.take() if s.port == 5080)
        for status in ((180, 200) if method == "INVITE" else (200,)):
            h.reply(build_reply(req, status, "OK", to_tag="t1"), CALLEE)
        up = [parse_datagram(s.data).status for s in h.take() if s.port == 5070]
        assert up == ([180, 200] if method == "INVITE" else [200])
    assert called == []
    assert h.tm.stats.rpl_relayed.value == 3
