"""Failure routes, serial forking, timeouts and CANCEL through the glue."""

from __future__ import annotations

from typing import Any

from kemi_core.api import MsgContext, RouteType, get_pv
from kemi_core.sip import SipMsg, build_reply
from kemi_tm import exports as tm
from kemi_tm.testing import TmHarness

CALLER = ("127.0.0.1", 5070)
UAS1 = ("127.0.0.1", 5080)
UAS2 = ("127.0.0.1", 5090)


def request(method: str = "INVITE", branch: str = "z9hG4bKc1", to_tag: str | None = None) -> bytes:
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    return (f"{method} sip:bob@example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\n"
            f"To: {to}\r\nCall-ID: call-f\r\nCSeq: 1 {method}\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def answer(req: SipMsg, status: int, reason: str = "X") -> bytes:
    return build_reply(req, status, reason, to_tag=None if status == 100 else "callee")


def at(sent: list, addr: tuple[str, int]) -> list[SipMsg]:
    return [s.msg for s in sent if (s.host, s.port) == addr]


class Script:
    """Request route relaying to UAS1 with a failure route that forks to UAS2 once."""

    def __init__(self, fork_again: bool = True) -> None:
        self.fork_again = fork_again
        self.seen: list[dict[str, Any]] = []

    def request_route(self, ctx: MsgContext) -> int:
        ctx.dst_uri = "sip:127.0.0.1:5080"
        assert tm.t_on_failure(ctx, "failure") == 1
        return tm.t_relay(ctx)

    def failure(self, ctx: MsgContext) -> int:
        self.seen.append({"code": get_pv(ctx, "$T_reply_code"), "canceled": tm.t_is_canceled(ctx),
                          "timeout": tm.t_branch_timeout(ctx), "replied": tm.t_branch_replied(ctx),
                          "status_4xx": tm.t_check_status(ctx, "^4"),
                          "route_type": ctx.route_type, "ruri": ctx.msg.ruri})
        if self.fork_again and tm.t_is_canceled(ctx) < 0 and len(self.seen) == 1:
            ctx.dst_uri = "sip:127.0.0.1:5090"
            return tm.t_relay(ctx)
        return 1

    def routes(self) -> dict[str, Any]:
        return {"ksr_request_route": self.request_route, "failure": self.failure}


def test_486_runs_failure_route_which_forks_serially_to_second_uas() -> None:
    s = Script()
    h = TmHarness(s.routes())
    h.request(request(), CALLER)
    first = at(h.take(), UAS1)[0]
    h.reply(answer(first, 486, "Busy Here"), UAS1)
    sent = h.take()
    assert [m.method for m in at(sent, UAS1)] == ["ACK"]
    assert at(sent, CALLER) == []  # the 486 is not relayed: the failure route forked again
    second = at(sent, UAS2)[0]
    assert second.method == "INVITE" and second.via.branch.endswith(".1")
    assert s.seen[0]["code"] == 486 and s.seen[0]["route_type"] == RouteType.FAILURE
    assert s.seen[0]["replied"] == 1 and s.seen[0]["timeout"] == -1
    assert s.seen[0]["status_4xx"] == 1
    h.reply(answer(second, 200, "OK"), UAS2)
    assert [m.status for m in at(h.take(), CALLER)] == [200]


def test_failure_route_doing_nothing_relays_the_best_reply() -> None:
    s = Script(fork_again=False)
    h = TmHarness(s.routes())
    h.request(request(), CALLER)
    first = at(h.take(), UAS1)[0]
    h.reply(answer(first, 486, "Busy Here"), UAS1)
    assert [m.status for m in at(h.take(), CALLER)] == [486]


def test_failure_route_t_reply_answers_instead() -> None:
    def failure(ctx: MsgContext) -> int:
        return tm.t_reply(ctx, 404, "Not Found Here")

    s = Script()
    h = TmHarness({"ksr_request_route": s.request_route, "failure": failure})
    h.request(request(), CALLER)
    first = at(h.take(), UAS1)[0]
    h.reply(answer(first, 503, "Unavailable"), UAS1)
    up = at(h.take(), CALLER)
    assert [(m.status, m.reason) for m in up] == [(404, "Not Found Here")]


def test_no_answer_gives_408_and_failure_route_sees_it() -> None:
    s = Script(fork_again=False)
    h = TmHarness(s.routes(), params={"fr_timer": 2000, "fr_inv_timer": 5000})
    h.request(request(), CALLER)
    h.take()
    h.advance(1.0)
    retrans = at(h.take(), UAS1)
    assert len(retrans) >= 1 and all(m.method == "INVITE" for m in retrans)  # timer A
    h.advance(1.4)  # fr_timer ends at 2.0 s; the 408's first retransmission (timer G) is at 2.5
    up = at(h.take(), CALLER)
    assert [m.status for m in up] == [408]
    assert s.seen[0]["code"] == 408 and s.seen[0]["timeout"] == 1
    assert s.seen[0]["replied"] == -1


def test_fr_inv_timer_after_ringing_cancels_branch_and_answers_408() -> None:
    s = Script(fork_again=False)
    h = TmHarness(s.routes(), params={"fr_timer": 2000, "fr_inv_timer": 3000})
    h.request(request(), CALLER)
    first = at(h.take(), UAS1)[0]
    h.reply(answer(first, 180, "Ringing"), UAS1)
    h.take()
    h.advance(3.2)
    sent = h.take()
    assert [m.method for m in at(sent, UAS1)] == ["CANCEL"]
    assert [m.status for m in at(sent, CALLER)] == [408]
    h.reply(answer(first, 487, "Request Terminated"), UAS1)
    assert [m.method for m in at(h.take(), UAS1)] == ["ACK"]  # the 487 is ACKed, not relayed


def test_caller_cancel_gives_200_cancel_downstream_and_487_upstream() -> None:
    s = Script()
    h = TmHarness({**s.routes(), "ksr_request_route": lambda ctx: s.request_route(ctx)})
    h.request(request(), CALLER)
    first = at(h.take(), UAS1)[0]
    h.reply(answer(first, 180, "Ringing"), UAS1)
    h.take()
    h.request(request("CANCEL"), CALLER)
    sent = h.take()
    assert [(m.status, m.cseq.method) for m in at(sent, CALLER)] == [(200, "CANCEL")]
    cancel = at(sent, UAS1)
    assert [m.method for m in cancel] == ["CANCEL"]
    assert cancel[0].via.branch == first.via.branch
    h.reply(answer(cancel[0], 200, "OK"), UAS1)
    h.reply(answer(first, 487, "Request Terminated"), UAS1)
    sent = h.take()
    assert [m.status for m in at(sent, CALLER)] == [487]
    assert [m.method for m in at(sent, UAS1)] == ["ACK"]
    assert s.seen[0]["canceled"] == 1  # the failure route ran and saw the CANCEL, no fork
    assert len(s.seen) == 1 and at(sent, UAS2) == []


def test_cancel_without_transaction_is_forwarded_statelessly() -> None:
    h = TmHarness(Script().routes())
    h.request(request("CANCEL", branch="z9hG4bKother"), CALLER)
    assert [m.method for m in at(h.take(), UAS1)] == ["CANCEL"]


def test_branch_failure_route_runs_per_failed_branch() -> None:
    seen: list[tuple[int, int, RouteType]] = []

    def route(ctx: MsgContext) -> int:
        ctx.dst_uri = "sip:127.0.0.1:5080"
        tm.t_on_branch_failure(ctx, "bf")
        return tm.t_relay(ctx)

    def bf(ctx: MsgContext) -> int:
        seen.append((get_pv(ctx, "$T_reply_code"), get_pv(ctx, "$T_branch_idx"), ctx.route_type))
        return 1

    h = TmHarness({"ksr_request_route": route, "bf": bf})
    h.request(request(), CALLER)
    first = at(h.take(), UAS1)[0]
    h.reply(answer(first, 603, "Decline"), UAS1)
    assert seen == [(603, 0, RouteType.BRANCH_FAILURE)]
    assert [m.status for m in at(h.take(), CALLER)] == [603]


def test_onreply_route_sees_reply_and_can_drop_provisional() -> None:
    codes: list[tuple[int, int]] = []

    def route(ctx: MsgContext) -> int:
        ctx.dst_uri = "sip:127.0.0.1:5080"
        tm.t_on_reply(ctx, "rpl")
        return tm.t_relay(ctx)

    def rpl(ctx: MsgContext) -> int:
        codes.append((get_pv(ctx, "$T_reply_code"), tm.t_get_branch_index(ctx)))
        if ctx.msg.status == 183:
            ctx.dropped = True
        return 1

    h = TmHarness({"ksr_request_route": route, "rpl": rpl})
    h.request(request(), CALLER)
    first = at(h.take(), UAS1)[0]
    h.reply(answer(first, 183, "Progress"), UAS1)
    h.reply(answer(first, 180, "Ringing"), UAS1)
    assert [m.status for m in at(h.take(), CALLER)] == [180]
    assert codes == [(183, 0), (180, 0)]


def test_branch_route_can_edit_or_drop_a_branch() -> None:
    from kemi_core.api import Branch

    def route(ctx: MsgContext) -> int:
        ctx.dst_uri = "sip:127.0.0.1:5080"
        ctx.branches.append(Branch(uri="sip:carol@127.0.0.1:5090"))
        tm.t_on_branch(ctx, "br")
        return tm.t_relay(ctx)

    def br(ctx: MsgContext) -> int:
        assert ctx.route_type == RouteType.BRANCH
        if "carol" in ctx.msg.ruri:
            ctx.dropped = True
        else:
            ctx.msg.append_header("X-Branch", str(get_pv(ctx, "$T_branch_idx")))
        return 1

    h = TmHarness({"ksr_request_route": route, "br": br})
    h.request(request(), CALLER)
    sent = h.take()
    assert at(sent, UAS2) == []
    assert at(sent, UAS1)[0].header("X-Branch") == "0"


def _one_branch(br_route: Any) -> tuple[TmHarness, list[int]]:
    """A request relayed to UAS1 alone with branch route ``br_route``; t_relay's results."""
    results: list[int] = []

    def route(ctx: MsgContext) -> int:
        ctx.dst_uri = "sip:127.0.0.1:5080"
        tm.t_on_branch(ctx, "br")
        results.append(tm.t_relay(ctx))
        return 1

    h = TmHarness({"ksr_request_route": route, "br": br_route})
    h.request(request(), CALLER)
    return h, results


def test_branch_route_of_the_only_branch_edits_that_branch_alone() -> None:
    """One destination with a branch route (t_relay's one-branch path): the route runs once,
    on the branch's copy; its header and $du go with the branch, not into the transaction."""
    runs: list[str] = []

    def br(ctx: MsgContext) -> int:
        runs.append(ctx.msg.ruri)
        ctx.msg.append_header("X-Branch", "only")
        ctx.dst_uri = "sip:127.0.0.1:5090"
        return 1

    h, results = _one_branch(br)
    sent = h.take()
    assert results == [1] and runs == ["sip:bob@example.com"]
    assert at(sent, UAS1) == []
    (fwd,) = at(sent, UAS2)
    assert fwd.header("X-Branch") == "only" and len(fwd.vias) == 2
    (tx,) = h.tm.table._by_ident.values()
    assert tx.request.header("X-Branch") is None
    h.reply(answer(fwd, 200, "OK"), UAS2)
    assert [m.status for m in at(h.take(), CALLER)] == [200]


def test_branch_route_dropping_the_only_branch_fails_t_relay() -> None:
    def br(ctx: MsgContext) -> int:
        ctx.dropped = True
        return 0

    h, results = _one_branch(br)
    assert results == [-1]
    assert at(h.take(), UAS1) == []


def test_branch_route_sending_the_only_branch_over_tcp_without_a_socket() -> None:
    """The branch route's $du needs a listen socket the server lacks: the general steps take
    the routed branch over (the route does not run again) and t_relay says no socket."""
    runs: list[int] = []

    def br(ctx: MsgContext) -> int:
        runs.append(1)
        ctx.dst_uri = "sip:127.0.0.1:5090;transport=tcp"
        return 1

    h, results = _one_branch(br)
    assert results == [-7] and runs == [1]
    assert at(h.take(), UAS2) == []


def test_branch_route_copy_of_a_request_with_rport_stamped_once() -> None:
    """force_rport: the transaction's request and the branch's copy (made from it) carry the
    received Via with ;rport=, once."""
    def route(ctx: MsgContext) -> int:
        ctx.force_rport = True
        ctx.dst_uri = "sip:127.0.0.1:5080"
        tm.t_on_branch(ctx, "br")
        return tm.t_relay(ctx)

    h = TmHarness({"ksr_request_route": route, "br": lambda c: 1})
    h.request(request(), CALLER)
    (fwd,) = at(h.take(), UAS1)
    assert [v.branch for v in fwd.vias][1] == "z9hG4bKc1" and len(fwd.vias) == 2
    assert fwd.vias[1].rport == 5070 and fwd.vias[1].raw.count("rport") == 1
    (tx,) = h.tm.table._by_ident.values()
    assert len(tx.request.vias) == 1 and tx.request.via.rport == 5070


def test_branch_route_after_t_newtran_sees_what_the_route_changed_since() -> None:
    """The transaction made before the script changed the request (t_newtran, then a header
    added): the branch is a copy of the request as routed, with the header."""
    def route(ctx: MsgContext) -> int:
        tm.t_newtran(ctx)
        ctx.msg.append_header("X-Later", "yes")
        ctx.dst_uri = "sip:127.0.0.1:5080"
        tm.t_on_branch(ctx, "br")
        return tm.t_relay(ctx)

    h = TmHarness({"ksr_request_route": route, "br": lambda c: 1})
    h.request(request(), CALLER)
    (fwd,) = at(h.take(), UAS1)
    assert fwd.header("X-Later") == "yes"
