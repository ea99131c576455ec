"""The script's onsend_route on what tm sends (in-process), as Kamailio 5.6.3 does it (learnt
by running it; tests/e2e/test_onsend_vs_kamailio.py compares over sockets): it runs once per
branch on its first send (not on retransmissions, nor on tm's own CANCEL or ACK), sees the
request as routed (not the branch's copy) and the branch's bytes in send_info; a dropped branch
is never sent and counts for nothing when another branch answers; when every branch is
dropped t_relay returns -1 and the transaction answers 477 once the route is over."""

from __future__ import annotations

from typing import Any

from kemi_core.api import Branch, MsgContext, RouteType, get_pv
from kemi_core.sip import SipMsg
from kemi_tm import exports as tm
from kemi_tm.context import AUTO_INV_100_REASON
from kemi_tm.testing import TmHarness

CALLER = ("127.0.0.1", 5070)
CALLEE = ("127.0.0.1", 5080)
OTHER = ("127.0.0.1", 5090)


def invite(sip: Any, method: str = "INVITE") -> bytes:
    msg: SipMsg = sip.request(method, sent_by="127.0.0.1:5070")
    return msg.to_bytes()


def to(sent: list, addr: tuple[str, int]) -> list[SipMsg]:
    return [s.msg for s in sent if (s.host, s.port) == addr]


def relay_to_callee(ctx: MsgContext) -> int:
    ctx.dst_uri = "sip:127.0.0.1:5080"
    return tm.t_relay(ctx)


class Onsend:
    """An onsend route that records what it saw and drops the sends to ``drop``."""

    def __init__(self, drop: tuple[tuple[str, int], ...] = ()) -> None:
        self.drop = drop
        self.seen: list[tuple[str, str, int, str, bytes, RouteType]] = []

    def __call__(self, ctx: MsgContext) -> int:
        info = ctx.extra["send_info"]
        self.seen.append((ctx.msg.method, info["host"], info["port"], ctx.msg.ruri, info["buf"],
                          ctx.route_type))
        if (info["host"], info["port"]) in self.drop:
            ctx.dropped = True
        return 1


def fork(ctx: MsgContext) -> int:
    """Two branches: the R-URI to the callee, an appended one to OTHER."""
    ctx.msg.set_ruri("sip:bob@127.0.0.1:5080")
    ctx.branches.append(Branch("sip:bob@127.0.0.1:5090"))
    ctx.extra["rc"] = rc = tm.t_relay(ctx)
    return rc


def test_onsend_runs_once_per_branch_on_its_first_send(sip: Any) -> None:
    onsend = Onsend()
    h = TmHarness({"ksr_request_route": fork, "ksr_onsend_route": onsend})
    h.request(invite(sip), CALLER)
    sent = h.take()
    down = [s for s in sent if s.port in (5080, 5090)]
    assert [s.port for s in down] == [5080, 5090]
    assert [(m, host, port) for m, host, port, *_ in onsend.seen] == [
        ("INVITE", "127.0.0.1", 5080), ("INVITE", "127.0.0.1", 5090)]
    # the request as routed (its R-URI: the first branch's), the branch's own bytes in buf
    assert {ruri for *_, ruri, _, _ in onsend.seen} == {"sip:bob@127.0.0.1:5080"}
    assert [buf for *_, buf, _ in onsend.seen] == [s.data for s in down]
    assert {rt for *_, rt in onsend.seen} == {RouteType.ONSEND}
    h.advance(0.6)  # timer A: both INVITEs go again, the route does not run again
    assert len([s for s in h.take() if s.port in (5080, 5090)]) == 2
    assert len(onsend.seen) == 2
    fwd = to(sent, CALLEE)[0]
    h.reply(sip.reply(fwd, 180, "Ringing").to_bytes(), CALLEE)
    other = to(sent, OTHER)[0]
    h.reply(sip.reply(other, 180, "Ringing", to_tag="other").to_bytes(), OTHER)
    h.reply(sip.reply(fwd, 486, "Busy").to_bytes(), CALLEE)  # tm ACKs it
    h.request(invite(sip, "CANCEL"), CALLER)  # tm CANCELs the other branch
    methods = [s.msg.method for s in h.take() if s.port in (5080, 5090)]
    assert sorted(methods) == ["ACK", "CANCEL"]
    assert len(onsend.seen) == 2  # neither tm's ACK nor its CANCEL runs the route


def test_a_dropped_branch_is_not_sent_and_the_other_decides(sip: Any) -> None:
    onsend = Onsend(drop=(OTHER,))
    seen_failures: list[int] = []

    def request_route(ctx: MsgContext) -> int:
        tm.t_on_branch_failure(ctx, "ksr_bf")
        return fork(ctx)

    def branch_failure(ctx: MsgContext) -> int:
        seen_failures.append(int(get_pv(ctx, "$T_reply_code") or 0))
        return 1

    h = TmHarness({"ksr_request_route": request_route, "ksr_onsend_route": onsend,
                   "ksr_bf": branch_failure})
    h.request(invite(sip), CALLER)
    sent = h.take()
    assert [s.port for s in sent if s.port in (5080, 5090)] == [5080]
    h.reply(sip.reply(to(sent, CALLEE)[0], 500, "Oops").to_bytes(), CALLEE)
    up = to(h.take(), CALLER)
    assert [(m.status, m.reason) for m in up] == [(500, "Oops")]  # not the dropped 477
    assert seen_failures == [500]  # the dropped branch runs no branch-failure route


def test_every_branch_dropped_t_relay_fails_and_477_follows(sip: Any) -> None:
    onsend = Onsend(drop=(CALLEE, OTHER))
    rcs: list[int] = []

    def request_route(ctx: MsgContext) -> int:
        rc = fork(ctx)
        rcs.append(rc)
        return rc

    h = TmHarness({"ksr_request_route": request_route, "ksr_onsend_route": onsend})
    h.request(invite(sip), CALLER)
    h.advance(0.01)  # the transaction's own answer, once the route is over
    sent = h.take()
    assert rcs == [-1]
    assert not [s for s in sent if s.port in (5080, 5090)]
    assert [(m.status, m.reason) for m in to(sent, CALLER)] == [
        (100, AUTO_INV_100_REASON), (477, "Unfortunately error on sending to next hop occurred (477/TM)")]


def test_the_usual_single_branch_dropped_t_relay_fails_and_477_follows(sip: Any) -> None:
    onsend = Onsend(drop=(CALLEE,))
    rcs: list[int] = []

    def request_route(ctx: MsgContext) -> int:
        rcs.append(relay_to_callee(ctx))
        return 1

    h = TmHarness({"ksr_request_route": request_route, "ksr_onsend_route": onsend})
    h.request(invite(sip, "OPTIONS"), CALLER)
    h.advance(0.01)
    sent = h.take()
    assert rcs == [-1] and not to(sent, CALLEE)
    assert [m.status for m in to(sent, CALLER)] == [477]
    h.advance(40.0)
    assert len(h.tm.table) == 0


def test_a_serial_step_whose_branches_are_dropped_answers_477(sip: Any) -> None:
    """t_relay in the failure route: its branch dropped, t_relay returns -1 and the
    transaction answers 477, not the best reply of the step before (failure_reply_mode 3)."""
    onsend = Onsend(drop=(OTHER,))
    rcs: list[int] = []

    def request_route(ctx: MsgContext) -> int:
        tm.t_on_failure(ctx, "ksr_failure")
        return relay_to_callee(ctx)

    def failure(ctx: MsgContext) -> int:
        ctx.dst_uri = "sip:127.0.0.1:5090"
        rcs.append(tm.t_relay(ctx))
        return 1

    h = TmHarness({"ksr_request_route": request_route, "ksr_onsend_route": onsend,
                   "ksr_failure": failure})
    h.request(invite(sip), CALLER)
    fwd = to(h.take(), CALLEE)[0]
    h.reply(sip.reply(fwd, 486, "Busy").to_bytes(), CALLEE)
    sent = h.take()
    assert rcs == [-1] and not to(sent, OTHER)
    assert [m.status for m in to(sent, CALLER)] == [477]


def test_no_onsend_route_nothing_changes(sip: Any) -> None:
    h = TmHarness({"ksr_request_route": relay_to_callee})
    h.request(invite(sip), CALLER)
    assert len(to(h.take(), CALLEE)) == 1
    assert h.core.onsend is None  # asked once, then read as an attribute


def test_a_kemi_engine_cannot_drop_in_onsend_route(sip: Any) -> None:
    """Kamailio 5.6.3's Lua, Python and JavaScript engines ignore a drop there: it goes."""
    onsend = Onsend(drop=(CALLEE,))
    h = TmHarness({"ksr_request_route": relay_to_callee, "ksr_onsend_route": onsend})
    h.engine.name = "lua"
    h.request(invite(sip), CALLER)
    assert len(to(h.take(), CALLEE)) == 1 and len(onsend.seen) == 1
