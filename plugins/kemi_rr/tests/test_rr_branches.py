"""record_route() then tm's branches (sans-IO, through tm's harness): each branch carries the
Record-Route entries of the socket it leaves from: parallel forks over UDP and TCP, a branch
route, t_relay_to a forced transport, a failure route's new branch. The routes' message never
has them (Kamailio's lumps: only what is sent has them)."""

from __future__ import annotations

from typing import Any

import kemi_rr
from kemi_core.api import Branch, ListenAddr, MsgContext
from kemi_core.sip import build_reply, parse_datagram
from kemi_tm import exports as tm
from kemi_tm.testing import TmHarness

FTAG = "a1"
ONE = [f"<sip:127.0.0.1;lr;ftag={FTAG}>"]
TWO = [f"<sip:127.0.0.1:5062;transport=tcp;r2=on;lr;ftag={FTAG}>",
       f"<sip:127.0.0.1;r2=on;lr;ftag={FTAG}>"]


def _invite() -> bytes:
    return ("INVITE sip:bob@example.com;transport=tcp SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKrr1\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag={FTAG}\r\n"
            "To: <sip:bob@example.com>\r\nCall-ID: call-rr\r\nCSeq: 1 INVITE\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def _harness(routes: dict[str, Any]) -> TmHarness:
    h = TmHarness(routes, modules=(("rr", kemi_rr),))
    h.core.config.listen.append(ListenAddr("tcp", "127.0.0.1", 5062))
    return h


def _sent(h: TmHarness) -> dict[tuple[str, int], list[str]]:
    """Record-Route of each request sent, by (transport, port)."""
    out = {}
    for s in h.take():
        msg = parse_datagram(s.data)
        if msg.is_request:
            out[(s.proto, s.port)] = [str(v) for v in msg.headers("record-route")]
    return out


def test_parallel_fork_over_udp_and_tcp_and_a_branch_route() -> None:
    seen: list[list[str]] = []

    def request_route(ctx: MsgContext) -> int:
        kemi_rr.ki_record_route(ctx)
        ctx.dst_uri = "sip:127.0.0.1:5080"
        ctx.branches.append(Branch(uri="sip:bob@127.0.0.1:5090;transport=tcp"))
        tm.t_on_branch(ctx, "branch")
        return tm.t_relay(ctx)

    def branch(ctx: MsgContext) -> int:
        # as Kamailio: the branch route's message has none of them (they go on when sent)
        seen.append(ctx.msg.headers("record-route"))
        return 1

    h = _harness({"ksr_request_route": request_route, "branch": branch})
    h.request(_invite())
    assert _sent(h) == {("udp", 5080): ONE, ("tcp", 5090): TWO}
    assert seen == [[], []]


def test_t_relay_to_a_forced_transport() -> None:
    def request_route(ctx: MsgContext) -> int:
        kemi_rr.ki_record_route(ctx)
        return tm.t_relay_to_proto_addr(ctx, "tcp", "127.0.0.1", 5090)

    h = _harness({"ksr_request_route": request_route})
    h.request(_invite())
    assert _sent(h) == {("tcp", 5090): TWO}


def test_failure_route_branch_over_tcp_gets_two_entries() -> None:
    def request_route(ctx: MsgContext) -> int:
        kemi_rr.ki_record_route(ctx)
        ctx.dst_uri = "sip:127.0.0.1:5080"
        tm.t_on_failure(ctx, "failure")
        return tm.t_relay(ctx)

    def failure(ctx: MsgContext) -> int:
        assert not ctx.msg.has_header("Record-Route")
        ctx.dst_uri = "sip:127.0.0.1:5090;transport=tcp"
        return tm.t_relay(ctx)

    h = _harness({"ksr_request_route": request_route, "failure": failure})
    h.request(_invite())
    first = h.take()
    assert [parse_datagram(s.data).headers("record-route") for s in first
            if s.port == 5080] == [ONE]
    req = parse_datagram(next(s.data for s in first if s.port == 5080))
    h.reply(build_reply(req, 486, "Busy Here", to_tag="callee"), ("127.0.0.1", 5080))
    assert _sent(h)[("tcp", 5090)] == TWO


def test_a_branch_routes_rr_changes_are_that_branchs_own() -> None:
    """As Kamailio's lumps added in a branch route: add_rr_param there (the KEMI example's
    ;nat=yes for a NATed contact) and remove_record_route go on that branch only, not on the
    request's later branches."""
    def request_route(ctx: MsgContext) -> int:
        kemi_rr.ki_record_route(ctx)
        ctx.dst_uri = "sip:127.0.0.1:5080"
        ctx.branches += [Branch(uri=f"sip:bob@127.0.0.1:{port}") for port in range(5081, 5085)]
        tm.t_on_branch(ctx, "branch")
        return tm.t_relay(ctx)

    def branch(ctx: MsgContext) -> int:
        if ctx.msg.ruri.endswith(":5081"):
            kemi_rr.ki_add_rr_param(ctx, ";nat=yes")
        elif ctx.msg.ruri.endswith(":5083"):
            kemi_rr.ki_remove_record_route(ctx)
        return 1

    h = _harness({"ksr_request_route": request_route, "branch": branch})
    h.request(_invite())
    assert _sent(h) == {("udp", 5080): ONE, ("udp", 5081): [ONE[0].replace(">", ";nat=yes>")],
                        ("udp", 5082): ONE, ("udp", 5083): [], ("udp", 5084): ONE}
