"""t_relay end to end in-process: requests out with our Via, replies matched and relayed."""

from __future__ import annotations

from typing import Any

import pytest

from kemi_core.api import CoreConfig, ListenAddr, MsgContext, RouteType
from kemi_core.sip import SipMsg, build_reply, parse_datagram
from kemi_tm import exports as tm
from kemi_tm import relay
from kemi_tm.testing import TmHarness

CALLER = ("127.0.0.1", 5070)
CALLEE = ("127.0.0.1", 5080)


def invite(method: str = "INVITE", branch: str = "z9hG4bKc1", cseq: int = 1,
           call_id: str = "call-1", to_tag: str | None = None) -> bytes:
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    return (f"{method} sip:bob@example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            "From: <sip:alice@example.com>;tag=a1\r\n"
            f"To: {to}\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            "Contact: <sip:alice@127.0.0.1:5070>\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def relay_to_callee(ctx: MsgContext) -> int:
    ctx.dst_uri = "sip:127.0.0.1:5080"
    return tm.t_relay(ctx)


def answer(req: SipMsg, status: int, reason: str = "X", tag: str | None = "callee") -> bytes:
    return build_reply(req, status, reason, to_tag=None if status == 100 else tag)


def to(sent: list, addr: tuple[str, int]) -> list[SipMsg]:
    return [s.msg for s in sent if (s.host, s.port) == addr]


def test_invite_relayed_with_our_via_and_100_trying() -> None:
    h = TmHarness({"ksr_request_route": relay_to_callee})
    h.request(invite(), CALLER)
    sent = h.take()
    up = to(sent, CALLER)
    down = to(sent, CALLEE)
    assert [m.status for m in up] == [100]
    assert len(down) == 1
    fwd = down[0]
    assert fwd.method == "INVITE"
    assert fwd.vias[0].host == "127.0.0.1" and fwd.vias[0].port == 5060
    assert fwd.vias[0].branch.startswith("z9hG4bK")
    assert fwd.vias[1].rport == 5070  # stamped as the request was received
    assert fwd.max_forwards == 70  # tm does not touch Max-Forwards (maxfwd does)
    assert len(h.tm.table) == 1


def test_replies_relayed_upstream_and_transaction_freed() -> None:
    h = TmHarness({"ksr_request_route": relay_to_callee})
    h.request(invite(), CALLER)
    fwd = to(h.take(), CALLEE)[0]
    h.reply(answer(fwd, 180, "Ringing"), CALLEE)
    h.reply(answer(fwd, 200, "OK"), CALLEE)
    up = to(h.take(), CALLER)
    assert [m.status for m in up] == [180, 200]
    assert len(up[1].vias) == 1 and up[1].via.branch == "z9hG4bKc1"
    h.advance(6.0)  # wt_timer
    assert len(h.tm.table) == 0
    stats = h.tm.stats.totals()
    assert stats["created"] == 1 and stats["freed"] == 1 and stats["2xx"] == 1


def test_a_ringing_branch_times_out_from_the_service_clock_alone() -> None:
    """Timers re-armed by replies fire from the service's own clock timer (the table refiles
    an entry at the next tick after its inputs; nothing here asks it for the next deadline):
    fr_inv_timer (120 s) CANCELs the ringing branch, the caller gets a 408, and the
    transaction is freed after the CANCEL's wait."""
    h = TmHarness({"ksr_request_route": relay_to_callee})
    for n in range(3):
        h.request(invite(branch=f"z9hG4bKr{n}", call_id=f"ring-{n}"), CALLER)
        fwd = to(h.take(), CALLEE)[0]
        h.reply(answer(fwd, 180, "Ringing"), CALLEE)
        h.advance(0.003)
    h.take()
    h.advance(119.0)
    assert to(h.take(), CALLEE) == []  # not before fr_inv_timer
    h.advance(2.0)
    sent = h.take()
    canceled = {m.call_id for m in to(sent, CALLEE) if m.method == "CANCEL"}
    assert canceled == {"ring-0", "ring-1", "ring-2"}
    h.advance(60.0)
    sent += h.take()
    up = to(sent, CALLER)  # the 408 and its retransmissions (the caller never ACKs here)
    assert {m.status for m in up} == {408}
    assert {m.call_id for m in up} == {"ring-0", "ring-1", "ring-2"}
    assert len(h.tm.table) == 0


def test_retransmitted_invite_is_absorbed_and_gets_last_reply() -> None:
    h = TmHarness({"ksr_request_route": relay_to_callee})
    h.request(invite(), CALLER)
    fwd = to(h.take(), CALLEE)[0]
    h.reply(answer(fwd, 180, "Ringing"), CALLEE)
    h.take()
    h.request(invite(), CALLER)
    sent = h.take()
    assert [m.status for m in to(sent, CALLER)] == [180]
    assert to(sent, CALLEE) == []


def test_non_2xx_ack_absorbed_and_2xx_ack_forwarded_statelessly() -> None:
    h = TmHarness({"ksr_request_route": relay_to_callee})
    h.request(invite(), CALLER)
    fwd = to(h.take(), CALLEE)[0]
    h.reply(answer(fwd, 486, "Busy Here"), CALLEE)
    sent = h.take()
    assert [m.method for m in to(sent, CALLEE)] == ["ACK"]  # hop-by-hop ACK downstream
    busy = to(sent, CALLER)[0]
    assert busy.status == 486
    h.request(invite("ACK", to_tag=busy.to.tag), CALLER)
    assert h.take() == []  # absorbed by the transaction
    # a 2xx ACK has a new branch: no transaction, forwarded statelessly to $du
    h.request(invite("ACK", branch="z9hG4bKack2", to_tag="callee", call_id="call-2"), CALLER)
    down = to(h.take(), CALLEE)
    assert [m.method for m in down] == ["ACK"]
    assert down[0].via.host == "127.0.0.1" and len(down[0].vias) == 2


def test_message_and_options_through_tm() -> None:
    h = TmHarness({"ksr_request_route": relay_to_callee})
    for method in ("MESSAGE", "OPTIONS"):
        h.request(invite(method, branch=f"z9hG4bK{method}", call_id=method), CALLER)
        sent = h.take()
        assert to(sent, CALLER) == []  # no 100 for non-INVITE
        fwd = to(sent, CALLEE)[0]
        h.reply(answer(fwd, 200, "OK"), CALLEE)
        assert [m.status for m in to(h.take(), CALLER)] == [200]
    h.advance(6.0)
    assert len(h.tm.table) == 0


def test_unresolvable_destination_fails_then_the_transaction_answers_478() -> None:
    """As Kamailio 5.6: t_relay returns -478 at once; the transaction stays and, the route
    over, answers "478 Unresolvable destination (478/TM)" itself."""
    def route(ctx: MsgContext) -> int:
        ctx.dst_uri = "sip:no-such-host.invalid"
        return tm.t_relay(ctx)

    results: list[int] = []
    h = TmHarness({"ksr_request_route": lambda ctx: results.append(route(ctx))})
    h.request(invite("OPTIONS"), CALLER)
    assert results == [-478]
    h.advance(0.0)
    up = to(h.take(), CALLER)
    assert [(m.status, m.reason) for m in up] == [(478, "Unresolvable destination (478/TM)")]
    h.advance(40.0)
    assert len(h.tm.table) == 0


def test_stateful_reply_after_a_failed_relay_replaces_the_error_reply() -> None:
    def route(ctx: MsgContext) -> int:
        ctx.dst_uri = "sip:no-such-host.invalid"
        if tm.t_relay(ctx) < 0:
            tm.t_reply(ctx, 503, "Mine")
        return 1

    h = TmHarness({"ksr_request_route": route})
    h.request(invite("OPTIONS"), CALLER)
    h.advance(0.0)
    assert [m.status for m in to(h.take(), CALLER)] == [503]


def test_parallel_fork_to_appended_branch() -> None:
    from kemi_core.api import Branch

    def route(ctx: MsgContext) -> int:
        ctx.dst_uri = "sip:127.0.0.1:5080"
        ctx.branches.append(Branch(uri="sip:carol@127.0.0.1:5090"))
        return tm.t_relay(ctx)

    h = TmHarness({"ksr_request_route": route})
    h.request(invite(), CALLER)
    sent = h.take()
    a, b = to(sent, CALLEE), to(sent, ("127.0.0.1", 5090))
    assert len(a) == 1 and len(b) == 1
    assert b[0].ruri == "sip:carol@127.0.0.1:5090"
    assert a[0].via.branch != b[0].via.branch
    h.reply(answer(a[0], 200, "OK"), CALLEE)
    sent = h.take()
    assert [m.status for m in to(sent, CALLER)] == [200]
    # the other branch had no 1xx yet: its CANCEL waits for one
    h.reply(answer(b[0], 180, "Ringing"), ("127.0.0.1", 5090))
    sent = h.take()
    assert [m.method for m in to(sent, ("127.0.0.1", 5090))] == ["CANCEL"]
    assert to(sent, CALLER) == []  # the 180 after a 200 is not relayed


def test_sl_send_reply_after_t_newtran_is_stateful() -> None:
    import kemi_sl

    def route(ctx: MsgContext) -> int:
        if tm.t_newtran(ctx) == 0:
            return 1  # a retransmission: absorbed (the script stops, as in Kamailio)
        return kemi_sl.send_reply(ctx, 404, "Not Here")

    h = TmHarness({"ksr_request_route": route})
    h.request(invite("OPTIONS"), CALLER)
    first = [m.status for m in to(h.take(), CALLER)]
    assert first == [404]
    h.request(invite("OPTIONS"), CALLER)  # retransmission: the transaction answers
    assert [m.status for m in to(h.take(), CALLER)] == [404]
    assert len(h.tm.table) == 1
    h.advance(6.0)
    assert len(h.tm.table) == 0


def test_reply_not_matching_any_transaction_is_forwarded_statelessly() -> None:
    h = TmHarness({"ksr_request_route": relay_to_callee})
    stray = parse_datagram(invite("OPTIONS"))
    stray.prepend_via("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKstray")
    h.reply(build_reply(stray, 200, "OK", to_tag="x"), CALLEE)
    assert [(s.host, s.port) for s in h.take()] == [CALLER]


def test_route_types_of_callbacks() -> None:
    def route(ctx: MsgContext) -> int:
        tm.t_on_branch(ctx, "br")
        tm.t_on_reply(ctx, "rpl")
        tm.t_on_failure(ctx, "fail")
        return relay_to_callee(ctx)

    h = TmHarness({"ksr_request_route": route, "br": lambda c: 1, "rpl": lambda c: 1,
                   "fail": lambda c: 1})
    h.request(invite(), CALLER)
    fwd = to(h.take(), CALLEE)[0]
    h.reply(answer(fwd, 486, "Busy"), CALLEE)
    kinds = {name: rt for name, rt in h.engine.runs}
    assert kinds["br"] == RouteType.BRANCH
    assert kinds["rpl"] == RouteType.TM_ONREPLY
    assert kinds["fail"] == RouteType.FAILURE


def test_t_on_unknown_route_is_an_error() -> None:
    results: list[int] = []
    h = TmHarness({"ksr_request_route": lambda ctx: results.append(tm.t_on_failure(ctx, "nope"))})
    h.request(invite("OPTIONS"), CALLER)
    assert results == [-1]


def _relay_over_tcp(listens: list[ListenAddr], monkeypatch: pytest.MonkeyPatch
                    ) -> tuple[TmHarness, list[int], list[int]]:
    """One INVITE relayed to a $du over TCP; the general per-destination steps counted."""
    general: list[int] = []
    each = relay._send_each_branch

    def counted(*args: Any, **kwargs: Any) -> int:
        general.append(1)
        return each(*args, **kwargs)

    monkeypatch.setattr(relay, "_send_each_branch", counted)
    results: list[int] = []

    def route(ctx: MsgContext) -> int:
        ctx.dst_uri = "sip:127.0.0.1:5080;transport=tcp"
        results.append(tm.t_relay(ctx))
        return 1

    h = TmHarness({"ksr_request_route": route}, config=CoreConfig(listen=listens))
    h.request(invite(), CALLER)
    return h, results, general


def test_one_branch_over_tcp_with_a_listen_socket_goes_the_short_way(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The usual one-branch relay over a stream transport (the webrtc/TLS calls): sent by
    _send_branches itself, as over UDP, with our TCP Via on top."""
    h, results, general = _relay_over_tcp(
        [ListenAddr("udp", "127.0.0.1", 5060), ListenAddr("tcp", "127.0.0.1", 5060)],
        monkeypatch)
    assert results == [1] and general == []
    (out,) = [s for s in h.take() if (s.host, s.port) == CALLEE]
    assert out.proto == "tcp"
    assert out.msg.vias[0].transport.upper() == "TCP" and len(out.msg.vias) == 2


def test_one_branch_over_tcp_without_a_listen_socket_says_no_socket(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No TCP listen socket: the general steps give t_relay's -7 (E_NO_SOCKET), nothing sent."""
    h, results, general = _relay_over_tcp([ListenAddr("udp", "127.0.0.1", 5060)], monkeypatch)
    assert results == [-7] and general == [1]
    assert to(h.take(), CALLEE) == []


def test_each_2xx_the_invite_relays_counts_in_2xx_its_final_handlers_run_once() -> None:
    """The callee sends its 200 again (the ACK is late): the transaction relays each one and
    tm.stats counts each in 2xx, as Kamailio 5.6 does; acc's handler sees one final."""
    h = TmHarness({"ksr_request_route": relay_to_callee})
    finals: list[int] = []
    h.tm.final_handlers.append(lambda tx: finals.append(tx.final_status))
    h.request(invite(), CALLER)
    fwd = to(h.take(), CALLEE)[0]
    for _ in range(3):
        h.reply(answer(fwd, 200, "OK"), CALLEE)
    assert [m.status for m in to(h.take(), CALLER)] == [200, 200, 200]  # (the 100: taken)
    stats = h.tm.stats.totals()
    assert (stats["created"], stats["2xx"], stats["rpl_sent"]) == (1, 3, 4)
    assert (stats["current"], stats["waiting"]) == (1, 1)  # its final is in: it only waits
    assert finals == [200]
    h.advance(6.0)  # wt_timer
    assert h.tm.stats.totals()["2xx"] == 3


def test_a_non_invite_absorbs_its_final_again_and_counts_it_once() -> None:
    h = TmHarness({"ksr_request_route": relay_to_callee})
    h.request(invite("OPTIONS"), CALLER)
    fwd = to(h.take(), CALLEE)[0]
    for _ in range(3):
        h.reply(answer(fwd, 200, "OK"), CALLEE)
    assert [m.status for m in to(h.take(), CALLER)] == [200]
    stats = h.tm.stats.totals()
    assert (stats["created"], stats["2xx"], stats["rpl_sent"]) == (1, 1, 1)
