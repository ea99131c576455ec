"""tmx on top of tm: route-type tests, t_cancel_branches, t_*_callid, t_precheck_trans."""

from __future__ import annotations

import kemi_tmx
from kemi_core.api import Branch, MsgContext, RouteType
from kemi_core.sip import SipMsg, build_reply
from kemi_tm import exports as tm
from kemi_tm.testing import TmHarness

CALLER = ("127.0.0.1", 5070)


def request(method: str = "INVITE", call_id: str = "call-x") -> bytes:
    return (f"{method} sip:bob@example.com SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx1\r\n"
            "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 7 {method}\r\nContent-Length: 0\r\n\r\n").encode()


def at(sent: list, port: int) -> list[SipMsg]:
    return [s.msg for s in sent if s.port == port]


def harness(routes: dict) -> TmHarness:  # type: ignore[type-arg]
    return TmHarness(routes, modules=(("tmx", kemi_tmx),))


def fork_two(ctx: MsgContext) -> int:
    ctx.dst_uri = "sip:127.0.0.1:5080"
    ctx.branches.append(Branch(uri="sip:carol@127.0.0.1:5090"))
    tm.t_on_reply(ctx, "rpl")
    tm.t_on_branch(ctx, "br")
    return tm.t_relay(ctx)


def test_route_type_tests() -> None:
    seen: dict[str, tuple[int, int, int, int]] = {}

    def probe(name: str):  # type: ignore[no-untyped-def]
        def run(ctx: MsgContext) -> int:
            seen[name] = (kemi_tmx.t_is_request_route(ctx), kemi_tmx.t_is_branch_route(ctx),
                          kemi_tmx.t_is_reply_route(ctx), kemi_tmx.t_is_failure_route(ctx))
            return 1
        return run

    def route(ctx: MsgContext) -> int:
        probe("request")(ctx)
        return fork_two(ctx)

    h = harness({"ksr_request_route": route, "br": probe("branch"), "rpl": probe("reply")})
    h.request(request(), CALLER)
    fwd = at(h.take(), 5080)[0]
    h.reply(build_reply(fwd, 180, "Ringing", to_tag="t"), ("127.0.0.1", 5080))
    assert seen == {"request": (1, -1, -1, -1), "branch": (-1, 1, -1, -1),
                    "reply": (-1, -1, 1, -1)}


def test_t_cancel_branches_others_from_onreply() -> None:
    def rpl(ctx: MsgContext) -> int:
        if ctx.msg.status == 183:
            return kemi_tmx.t_cancel_branches(ctx, "others")
        return 1

    h = harness({"ksr_request_route": fork_two, "rpl": rpl, "br": lambda c: 1})
    h.request(request(), CALLER)
    sent = h.take()
    a, b = at(sent, 5080)[0], at(sent, 5090)[0]
    h.reply(build_reply(b, 180, "Ringing", to_tag="c"), ("127.0.0.1", 5090))
    h.reply(build_reply(a, 183, "Progress", to_tag="b"), ("127.0.0.1", 5080))
    sent = h.take()
    assert [m.method for m in at(sent, 5090)] == ["CANCEL"]
    assert at(sent, 5080) == []


def test_t_reply_callid_and_cancel_callid_and_precheck() -> None:
    results: list[int] = []

    def route(ctx: MsgContext) -> int:
        if ctx.msg.method == "MESSAGE":
            results.append(kemi_tmx.t_cancel_callid(ctx, "call-x", 7, 0))
            results.append(kemi_tmx.t_reply_callid(ctx, "call-o", 7, 404, "Gone"))
            return 1
        results.append(kemi_tmx.t_precheck_trans(ctx))
        if results[-1] > 0:
            return tm.t_check_trans(ctx)
        if ctx.msg.method == "OPTIONS":
            return tm.t_newtran(ctx)
        ctx.dst_uri = "sip:127.0.0.1:5080"
        return tm.t_relay(ctx)

    h = harness({"ksr_request_route": route})
    h.request(request(), CALLER)
    fwd = at(h.take(), 5080)[0]
    h.reply(build_reply(fwd, 180, "Ringing", to_tag="t"), ("127.0.0.1", 5080))
    h.request(request("OPTIONS", call_id="call-o"), CALLER)
    h.take()
    h.request(request("MESSAGE", call_id="other"), CALLER)
    sent = h.take()
    assert [m.method for m in at(sent, 5080)] == ["CANCEL"]
    assert [(m.status, m.call_id) for m in at(sent, 5070)] == [(404, "call-o")]
    h.request(request(), CALLER)  # an INVITE retransmission: precheck says it is known
    assert results == [-1, -1, 1, 1, 1]


def test_tmx_requires_tm() -> None:
    import pytest

    from kemi_core.api import ModuleError
    from kemi_core.testing import offline_core

    with pytest.raises(ModuleError):
        offline_core(("tmx", kemi_tmx))


def test_route_type_enum_is_the_core_one() -> None:
    assert kemi_tmx.RouteType is RouteType
