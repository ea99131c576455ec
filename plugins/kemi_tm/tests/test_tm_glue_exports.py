"""KSR.tm knobs and tests, $T_* variables, RPC, local requests, q-value serial forking."""

from __future__ import annotations

from kemi_core.api import Branch, MsgContext, get_pv
from kemi_core.sip import SipMsg, build_reply
from kemi_tm import contacts, uac
from kemi_tm import exports as tm
from kemi_tm.testing import TmHarness

CALLER = ("127.0.0.1", 5070)
UAS1 = ("127.0.0.1", 5080)


def request(method: str = "INVITE", branch: str = "z9hG4bKe1", call_id: str = "call-e") -> bytes:
    return (f"{method} sip:bob@example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n"
            "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n").encode()


def at(sent: list, addr: tuple[str, int]) -> list[SipMsg]:
    return [s.msg for s in sent if (s.host, s.port) == addr]


def test_exports_table_has_kamailio_names() -> None:
    names = {e.name for e in tm.exports()}
    assert len(names) >= 50
    for name in ("t_relay", "t_relay_to_proto_addr", "t_on_branch_failure", "t_check_trans",
                 "t_set_fr", "t_grep_status", "t_uac_send", "t_replicate", "t_next_contacts"):
        assert name in names


def test_t_set_fr_shortens_this_transaction_only() -> None:
    def route(ctx: MsgContext) -> int:
        ctx.dst_uri = "sip:127.0.0.1:5080"
        if ctx.msg.call_id == "short":
            tm.t_set_fr(ctx, 0, 1000)
        return tm.t_relay(ctx)

    h = TmHarness({"ksr_request_route": route})
    h.request(request(call_id="short", branch="z9hG4bKs"), CALLER)
    h.request(request(call_id="long", branch="z9hG4bKl"), CALLER)
    h.take()
    h.advance(1.2)
    up = [m for m in at(h.take(), CALLER) if m.status >= 200]
    assert [(m.status, m.call_id) for m in up] == [(408, "short")]


def test_t_set_auto_inv_100_off() -> None:
    def route(ctx: MsgContext) -> int:
        ctx.dst_uri = "sip:127.0.0.1:5080"
        tm.t_set_auto_inv_100(ctx, 0)
        return tm.t_relay(ctx)

    h = TmHarness({"ksr_request_route": route})
    h.request(request(), CALLER)
    assert at(h.take(), CALLER) == []


def test_t_relay_to_proto_addr_overrides_destination() -> None:
    h = TmHarness({"ksr_request_route":
                   lambda ctx: tm.t_relay_to_proto_addr(ctx, "udp", "127.0.0.1", 5099)})
    h.request(request("OPTIONS"), CALLER)
    assert [m.method for m in at(h.take(), ("127.0.0.1", 5099))] == ["OPTIONS"]


def test_t_check_trans_on_retransmission_and_cancel() -> None:
    results: list[tuple[str, int]] = []

    def route(ctx: MsgContext) -> int:
        results.append((ctx.msg.method, tm.t_check_trans(ctx)))
        if results[-1][1] <= 0 and ctx.msg.method == "INVITE" and len(results) == 1:
            ctx.dst_uri = "sip:127.0.0.1:5080"
            return tm.t_relay(ctx)
        return 1

    h = TmHarness({"ksr_request_route": route})
    h.request(request(), CALLER)
    h.take()
    h.request(request(), CALLER)  # retransmission: 0 and the 100 is sent again
    assert [m.status for m in at(h.take(), CALLER)] == [100]
    h.request(request("CANCEL"), CALLER)
    assert results == [("INVITE", -1), ("INVITE", 0), ("CANCEL", 1)]


def test_t_grep_status_and_pvs_in_failure_route() -> None:
    seen: dict[str, object] = {}

    def route(ctx: MsgContext) -> int:
        ctx.dst_uri = "sip:127.0.0.1:5080"
        tm.t_on_failure(ctx, "f")
        return tm.t_relay(ctx)

    def failure(ctx: MsgContext) -> int:
        seen.update(grep=tm.t_grep_status(ctx, 404), any_replied=tm.t_any_replied(ctx),
                    reason=get_pv(ctx, "$T_reply_reason"), rpl_ci=get_pv(ctx, "$T_rpl($ci)"),
                    is_set=tm.t_is_set(ctx, "failure_route"))
        return 1

    h = TmHarness({"ksr_request_route": route, "f": failure})
    h.request(request(), CALLER)
    fwd = at(h.take(), UAS1)[0]
    h.reply(build_reply(fwd, 404, "Nobody", to_tag="x"), UAS1)
    assert seen == {"grep": 1, "any_replied": 1, "reason": "Nobody", "rpl_ci": "call-e",
                    "is_set": -1}  # one shot: not armed again in the route


def test_t_grep_status_sees_a_2xx_after_it_was_relayed() -> None:
    """A 2xx's reply is not kept on its branch (BranchFields.reply): its status still counts
    as received, in the onreply route of its retransmission."""
    seen: list[tuple[int, int, int]] = []

    def route(ctx: MsgContext) -> int:
        ctx.dst_uri = "sip:127.0.0.1:5080"
        tm.t_on_reply(ctx, "r")
        return tm.t_relay(ctx)

    def onreply(ctx: MsgContext) -> int:
        seen.append((ctx.msg.status, tm.t_grep_status(ctx, 200), tm.t_grep_status(ctx, 404)))
        return 1

    h = TmHarness({"ksr_request_route": route, "r": onreply})
    h.request(request(), CALLER)
    fwd = at(h.take(), UAS1)[0]
    ok = build_reply(fwd, 200, "OK", to_tag="x")
    h.reply(ok, UAS1)
    h.reply(ok, UAS1)  # retransmitted by the UAS
    assert seen == [(200, -1, -1), (200, 1, -1)]
    assert [m.status for m in at(h.take(), CALLER)] == [200, 200]  # both relayed


def test_failover_disabled_relays_reply_without_failure_route() -> None:
    ran: list[str] = []

    def route(ctx: MsgContext) -> int:
        ctx.dst_uri = "sip:127.0.0.1:5080"
        tm.t_on_failure(ctx, "f")
        tm.t_set_disable_failover(ctx, 1)
        return tm.t_relay(ctx)

    h = TmHarness({"ksr_request_route": route, "f": lambda ctx: ran.append("f")})
    h.request(request(), CALLER)
    fwd = at(h.take(), UAS1)[0]
    h.reply(build_reply(fwd, 480, "Later", to_tag="x"), UAS1)
    assert ran == [] and [m.status for m in at(h.take(), CALLER)] == [480]


def test_failover_disabled_after_relay_is_this_transaction_only() -> None:
    """Set once the transaction exists (it shares the default overrides until then): the next
    transaction still runs its failure route."""
    ran: list[str] = []

    def route(ctx: MsgContext) -> int:
        ctx.dst_uri = "sip:127.0.0.1:5080"
        tm.t_on_failure(ctx, "f")
        ret = tm.t_relay(ctx)
        if ctx.msg.call_id == "first":
            tm.t_set_disable_failover(ctx, 1)
        return ret

    h = TmHarness({"ksr_request_route": route, "f": lambda ctx: ran.append(ctx.msg.call_id)})
    for call_id in ("first", "second"):
        h.request(request(branch=f"z9hG4bK{call_id}", call_id=call_id), CALLER)
        fwd = at(h.take(), UAS1)[0]
        h.reply(build_reply(fwd, 480, "Later", to_tag="x"), UAS1)
        assert [m.status for m in at(h.take(), CALLER)] == [480]
    assert ran == ["second"]


def test_drop_replies_in_failure_route_answers_500() -> None:
    def route(ctx: MsgContext) -> int:
        ctx.dst_uri = "sip:127.0.0.1:5080"
        tm.t_on_failure(ctx, "f")
        return tm.t_relay(ctx)

    h = TmHarness({"ksr_request_route": route, "f": lambda ctx: tm.t_drop_replies(ctx, "a")})
    h.request(request(), CALLER)
    fwd = at(h.take(), UAS1)[0]
    h.reply(build_reply(fwd, 401, "Unauthorized", to_tag="x"), UAS1)
    assert [m.status for m in at(h.take(), CALLER)] == [500]


def test_contacts_serial_forking_by_q() -> None:
    def route(ctx: MsgContext) -> int:
        ctx.msg.set_ruri("sip:low@127.0.0.1:5081")
        ctx.branches.append(Branch(uri="sip:high@127.0.0.1:5082", q=1000))
        ctx.branches[0].q = 1000
        ctx.branches.append(Branch(uri="sip:mid@127.0.0.1:5083", q=500))
        assert contacts.t_load_contacts(ctx) == 1
        assert contacts.t_next_contacts(ctx) == 1
        tm.t_on_failure(ctx, "f")
        return tm.t_relay(ctx)

    def failure(ctx: MsgContext) -> int:
        if contacts.t_next_contacts(ctx) < 0:
            return 1
        tm.t_on_failure(ctx, "f")
        return tm.t_relay(ctx)

    h = TmHarness({"ksr_request_route": route, "f": failure})
    h.request(request(), CALLER)
    first = [s.msg for s in h.take() if s.msg.is_request]
    # R-URI (q unset = 1.0) and "high" (1.0) go first, in parallel
    assert sorted(m.ruri for m in first) == ["sip:high@127.0.0.1:5082", "sip:low@127.0.0.1:5081"]
    for m in first:
        port = int(m.ruri.rsplit(":", 1)[1])
        h.reply(build_reply(m, 486, "Busy", to_tag="x"), ("127.0.0.1", port))
    second = [s.msg for s in h.take() if s.msg.is_request and s.msg.method == "INVITE"]
    assert [m.ruri for m in second] == ["sip:mid@127.0.0.1:5083"]
    h.reply(build_reply(second[0], 404, "No", to_tag="y"), ("127.0.0.1", 5083))
    assert [m.status for m in at(h.take(), CALLER)] == [404]


def test_t_uac_send_runs_a_client_transaction() -> None:
    results: list[int] = []
    h = TmHarness({"ksr_request_route": lambda ctx: results.append(uac.t_uac_send(
        ctx, "OPTIONS", "sip:probe@127.0.0.1:5099", "", "", "X-Probe: 1\r\n", ""))})
    h.request(request("MESSAGE"), CALLER)
    sent = at(h.take(), ("127.0.0.1", 5099))
    assert results == [1] and sent[0].method == "OPTIONS" and sent[0].header("X-Probe") == "1"
    h.advance(0.6)
    assert len(at(h.take(), ("127.0.0.1", 5099))) == 1  # retransmitted (timer E)
    h.reply(build_reply(sent[0], 200, "OK", to_tag="p"), ("127.0.0.1", 5099))
    assert h.take() == []  # absorbed: the reply belongs to the local transaction
    assert h.tm.uac.outcomes == [("OPTIONS", 200)]


def test_rpc_stats_and_list() -> None:
    h = TmHarness({"ksr_request_route": lambda ctx: (setattr(ctx, "dst_uri", "sip:127.0.0.1:5080"),
                                                     tm.t_relay(ctx))[1]})
    h.request(request(), CALLER)
    stats = h.core.rpc_commands["tm.stats"].func(h.core, [])
    assert stats["created"] == 1 and stats["current"] == 1
    listing = h.core.rpc_commands["tm.list"].func(h.core, [])
    assert listing["transactions"][0]["call_id"] == "call-e"
    assert listing["transactions"][0]["pending"] == 1
