"""The stateful proxy core (RFC 3261 16.6-16.10): forking, response context, CANCEL."""

from __future__ import annotations

import pytest

from kemi_tm.actions import (
    BranchFinal,
    Dest,
    NeedsDecision,
    PassUp,
    Send,
    TransactionStateError,
)
from kemi_tm.proxy import ProxySettings, ProxyTransaction, reply_priority
from kemi_tm.server import ServerState
from kemi_tm.table import TransactionTable
from kemi_tm.testing import Driven

CALLER = Dest("udp", "10.0.0.1", 5060)
B0 = Dest("udp", "10.0.0.10", 5060)
B1 = Dest("udp", "10.0.0.11", 5060)
ME = "192.0.2.1:5060"


class Call:
    """A proxy transaction plus what it sent where, for terse tests."""

    def __init__(self, sip, method: str = "INVITE", **settings) -> None:
        self.sip = sip
        self.req = sip.request(method, routes=("<sip:next.example.com;lr>",))
        self.tx = Driven(ProxyTransaction(self.req, CALLER, ident="abc", to_tag="ptag",
                                          proxy_settings=ProxySettings(**settings)))
        self.sent: dict[int, bytes] = {}

    def fork(self, dest: Dest, now: float = 0.0) -> int:
        index = self.tx.add_branch(self.req, dest, now, sent_by=ME)
        assert self.tx.sink.take() == []  # the branch's request is the caller's to send
        client = self.tx.branches[index].client
        assert client.dest == dest
        self.sent[index] = client.data
        return index

    def answer(self, index: int, status: int, now: float = 1.0, tag: str | None = None):
        reply = self.sip.reply(self.sent[index], status, "R",
                               to_tag=None if status == 100 else (tag or f"uas{index}"))
        return self.tx.on_response(index, reply, now)


def upstream(actions) -> list:
    return [a for a in actions if isinstance(a, Send) and a.dest == CALLER]


def to(dest, actions) -> list:
    return [a for a in actions if isinstance(a, Send) and a.dest == dest]


def kinds(actions) -> list[type]:
    return [type(a) for a in actions]


def run(tx, until: float) -> list:
    out = []
    for _ in range(1000):
        at = tx.next_timer()
        if at is None or at > until:
            break
        out += tx.on_timer(at)
    return out


def test_start_sends_100_and_branch_gets_our_via(sip):
    c = Call(sip)
    out = c.tx.start(0.0)
    assert len(upstream(out)) == 1
    trying = sip.parse(upstream(out)[0].data)
    assert trying.status == 100 and trying.to.tag is None
    c.fork(B0)
    fwd = sip.parse(c.sent[0])
    assert fwd.via.branch == "z9hG4bKabc.0" and fwd.via.host == "192.0.2.1"
    assert fwd.vias[1].raw == c.req.via.raw
    assert c.req.header_count("Via") == 1  # the received request is untouched


def test_provisionals_forwarded_except_100_and_2xx_forwarded(sip):
    c = Call(sip)
    c.tx.start(0.0)
    c.fork(B0)
    assert c.answer(0, 100) == []
    out = c.answer(0, 180)
    fwd = sip.parse(upstream(out)[0].data)
    assert fwd.status == 180 and [v.raw for v in fwd.vias] == [c.req.via.raw]
    out = c.answer(0, 200, 2.0)
    assert kinds(out) == [BranchFinal, Send]
    assert sip.parse(out[1].data).status == 200
    assert c.tx.final_status == 200 and c.tx.state is ServerState.ACCEPTED
    # a retransmitted 2xx is forwarded again (the ACK for 2xx is end to end)
    assert sip.parse(upstream(c.answer(0, 200, 2.5))[0].data).status == 200


def test_retransmitted_request_gets_last_reply(sip):
    c = Call(sip)
    c.tx.start(0.0)
    c.fork(B0)
    ringing = upstream(c.answer(0, 180))[0].data
    assert c.tx.on_request(sip.request("INVITE"), 1.5) == [Send(CALLER, ringing)]


def test_2xx_cancels_other_branches_that_had_a_provisional(sip):
    c = Call(sip)
    c.fork(B0)
    c.fork(B1)
    c.answer(0, 180)
    c.answer(1, 180)
    out = c.answer(0, 200, 2.0)
    cancels = to(B1, out)
    assert len(upstream(out)) == 1 and len(cancels) == 1
    cancel = sip.parse(cancels[0].data)
    branch_req = sip.parse(c.sent[1])
    assert cancel.method == "CANCEL" and cancel.ruri == branch_req.ruri
    assert [v.raw for v in cancel.vias] == [branch_req.via.raw]
    assert (cancel.cseq.number, cancel.cseq.method) == (1, "CANCEL")
    assert cancel.to.tag is None and cancel.from_.tag == "a1"
    assert cancel.call_id == branch_req.call_id
    assert cancel.headers("Route") == ["<sip:next.example.com;lr>"]
    # the CANCEL's 200 is absorbed, the 487 is ACKed and not forwarded
    cancel_ok = sip.parse(sip.reply(cancel, 200, "OK").to_bytes())
    assert c.tx.on_response(1, cancel_ok, 2.1) == []
    out = c.answer(1, 487, 2.2)
    assert kinds(out) == [Send, BranchFinal] and sip.parse(out[0].data).method == "ACK"
    assert upstream(out) == []


def test_cancel_waits_for_a_provisional(sip):
    c = Call(sip)
    c.fork(B0)
    c.fork(B1)
    c.answer(0, 180)
    out = c.answer(0, 200, 2.0)
    assert to(B1, out) == []  # branch 1 never answered: no CANCEL yet (9.1)
    out = c.answer(1, 180, 2.5)
    assert [sip.parse(a.data).method for a in to(B1, out)] == ["CANCEL"]
    assert upstream(out) == []  # too late for a provisional upstream


def test_every_2xx_is_forwarded(sip):
    c = Call(sip)
    c.fork(B0)
    c.fork(B1)
    assert len(upstream(c.answer(0, 200, 1.0))) == 1
    out = c.answer(1, 200, 1.1)
    assert len(upstream(out)) == 1 and sip.parse(upstream(out)[0].data).to.tag == "uas1"


def test_local_408_beats_486_by_default_like_kamailio(sip):
    c = Call(sip)
    c.fork(B0)
    c.fork(B1)
    c.answer(0, 486, 1.0)
    out = run(c.tx, 31.0)  # branch 1: Timer B (fr_timer 30)
    decisions = [a for a in out if isinstance(a, NeedsDecision)]
    assert [(a.branch, a.status, a.reply) for a in out if isinstance(a, BranchFinal)] == \
        [(1, 408, None)]
    assert [(d.status, d.reply) for d in decisions] == [(408, None)]
    assert upstream(out) == []  # nothing upstream until the decision
    sent = c.tx.relay_best(31.0)
    reply = sip.parse(upstream(sent)[0].data)
    assert reply.status == 408 and reply.to.tag == "ptag"


def test_faked_reply_prio_prefers_the_received_486(sip):
    c = Call(sip, faked_reply_prio=100)
    c.fork(B0)
    c.fork(B1)
    c.answer(0, 486, 1.0)
    decisions = [a for a in run(c.tx, 31.0) if isinstance(a, NeedsDecision)]
    assert decisions[0].status == 486 and decisions[0].reply is not None
    reply = sip.parse(upstream(c.tx.relay_best(31.0))[0].data)
    assert reply.status == 486 and reply.to.tag == "uas0"
    assert [v.raw for v in reply.vias] == [c.req.via.raw]


def test_503_is_relayed_as_500(sip):
    c = Call(sip)
    c.fork(B0)
    out = c.answer(0, 503, 1.0)
    assert [a.status for a in out if isinstance(a, NeedsDecision)] == [503]
    reply = sip.parse(upstream(c.tx.relay_best(1.0))[0].data)
    # as Kamailio 5.6: a 500 of the transaction's own (its To-tag), not the 503 relayed
    assert (reply.status, reply.reason) == (500, "Service Unavailable")
    assert reply.to.tag == c.tx.to_tag != "uas0" and c.tx.final_status == 500


def test_503_kept_when_remap_disabled(sip):
    c = Call(sip, remap_503_500=False)
    c.fork(B0)
    c.answer(0, 503, 1.0)
    assert sip.parse(upstream(c.tx.relay_best(1.0))[0].data).status == 503


def test_6xx_cancels_the_others_and_wins(sip):
    c = Call(sip)
    c.fork(B0)
    c.fork(B1)
    c.answer(0, 180)
    c.answer(1, 180)
    out = c.answer(1, 603, 2.0)
    assert [sip.parse(a.data).method for a in to(B0, out)] == ["CANCEL"]
    assert upstream(out) == [] and not any(isinstance(a, NeedsDecision) for a in out)
    out = c.answer(0, 487, 2.5)
    assert [a.status for a in out if isinstance(a, NeedsDecision)] == [603]
    with pytest.raises(TransactionStateError):
        c.tx.add_branch(c.req, B0, 2.6, sent_by=ME)  # 6xx blocks new branches
    assert sip.parse(upstream(c.tx.relay_best(2.6))[0].data).status == 603


@pytest.mark.parametrize(("codes", "best"), [
    ((404, 401), 401),  # 16.7 step 6: 401/407/415/420/484 preferred among 4xx
    ((486, 302), 302),  # lowest class wins
    ((500, 480), 480),
    ((480, 404), 404),  # lower code inside a class
])
def test_best_response_choice(sip, codes, best):
    c = Call(sip)
    for _ in codes:
        c.fork(B0)
    out = []
    for i, code in enumerate(codes):
        out += c.answer(i, code, 1.0 + i)
    assert [a.status for a in out if isinstance(a, NeedsDecision)] == [best]


def test_reply_priority_order():
    assert reply_priority(200, False) < reply_priority(603, False) < reply_priority(302, False)
    assert reply_priority(302, False) < reply_priority(401, False) < reply_priority(404, False)
    assert reply_priority(499, False) < reply_priority(500, False)
    assert reply_priority(408, True, 100) > reply_priority(486, False, 100)


@pytest.mark.parametrize(("mode", "best"), [(0, 401), (3, 486)])
def test_serial_forking_and_failure_reply_mode(sip, mode, best):
    c = Call(sip, failure_reply_mode=mode)
    c.tx.start(0.0)
    c.fork(B0)
    out = c.answer(0, 401, 1.0)
    assert [a.status for a in out if isinstance(a, NeedsDecision)] == [401]
    assert c.tx.deciding
    # failure route: try the next destination (a new serial step)
    c.fork(B1, now=1.1)
    assert c.tx.step == 1 and not c.tx.deciding
    out = c.answer(1, 486, 2.0)
    assert [a.status for a in out if isinstance(a, NeedsDecision)] == [best]
    assert sip.parse(upstream(c.tx.relay_best(2.0))[0].data).status == best


def test_failure_route_may_reply_itself(sip):
    c = Call(sip)
    c.fork(B0)
    c.answer(0, 404, 1.0)
    out = c.tx.reply(480, "Temporarily Unavailable", 1.1)
    assert sip.parse(upstream(out)[0].data).status == 480
    assert c.tx.relay_best(1.2) == []  # already answered
    with pytest.raises(TransactionStateError):
        c.tx.reply(500, "X", 1.3)


def test_fr_inv_timeout_cancels_branch_and_relays_local_408(sip):
    c = Call(sip)
    c.fork(B0)
    c.answer(0, 180, 1.0)
    out = run(c.tx, 121.0)
    assert [sip.parse(a.data).method for a in to(B0, out)] == ["CANCEL"]
    assert [(a.status, a.reply) for a in out if isinstance(a, BranchFinal)] == [(408, None)]
    assert [a.status for a in out if isinstance(a, NeedsDecision)] == [408]
    assert sip.parse(upstream(c.tx.relay_best(121.0))[0].data).status == 408
    out = c.answer(0, 487, 121.5)  # the late 487 is only ACKed
    assert [sip.parse(a.data).method for a in out] == ["ACK"]


def test_caller_cancel_gives_487(sip):
    c = Call(sip)
    c.tx.start(0.0)
    c.fork(B0)
    c.answer(0, 180, 1.0)
    out = c.tx.cancel_all(2.0)
    assert c.tx.canceled and [sip.parse(a.data).method for a in to(B0, out)] == ["CANCEL"]
    out = c.answer(0, 487, 2.1)
    assert [a.status for a in out if isinstance(a, NeedsDecision)] == [487]
    with pytest.raises(TransactionStateError):
        c.tx.add_branch(c.req, B1, 2.2, sent_by=ME)
    final = upstream(c.tx.relay_best(2.2))[0].data
    assert sip.parse(final).status == 487
    # the caller's ACK for the 487 is absorbed by the server transaction
    assert c.tx.on_request(sip.request("ACK", to_tag="uas0"), 2.3) == []
    assert c.tx.state is ServerState.CONFIRMED


def test_caller_cancel_before_any_provisional(sip):
    c = Call(sip)
    c.fork(B0)
    assert c.tx.cancel_all(0.2) == []  # 9.1: no CANCEL before a 1xx
    out = run(c.tx, 31.0)  # the branch never answers: Timer B
    assert [(a.status, a.reply) for a in out if isinstance(a, BranchFinal)] == [(487, None)]
    assert sip.parse(upstream(c.tx.relay_best(31.0))[0].data).status == 487


def test_cancel_with_no_branch_answers_487_at_once(sip):
    c = Call(sip)
    c.tx.start(0.0)
    out = c.tx.cancel_all(0.5)
    reply = sip.parse(upstream(out)[0].data)
    assert reply.status == 487 and reply.to.tag == "ptag"


def test_non_invite_single_branch(sip):
    c = Call(sip, method="OPTIONS")
    assert c.tx.start(0.0) == []  # no 100 for non-INVITE
    c.fork(B0)
    out = c.answer(0, 200, 1.0)
    assert sip.parse(upstream(out)[0].data).status == 200
    assert c.tx.state is ServerState.COMPLETED


def test_non_invite_timeout_and_no_cancel(sip):
    c = Call(sip, method="OPTIONS")
    c.fork(B0)
    c.fork(B1)
    c.answer(0, 100)
    out = c.answer(1, 200, 1.0)
    assert len(upstream(out)) == 1 and to(B0, out) == []  # no CANCEL for non-INVITE
    out = run(c.tx, 40.0)
    assert [(a.branch, a.status) for a in out if isinstance(a, BranchFinal)] == [(0, 408)]
    assert not any(isinstance(a, NeedsDecision) for a in out)


def test_negative_retransmission_reacked_not_forwarded(sip):
    c = Call(sip)
    c.fork(B0)
    c.fork(B1)
    first = c.answer(0, 486, 1.0)
    again = c.answer(0, 486, 1.2)
    assert [a.data for a in again] == [first[0].data]  # the same ACK, nothing else


def test_send_failure_counts_as_503_relayed_as_500(sip):
    c = Call(sip)
    c.fork(B0)
    out = c.tx.branch_send_failed(0, 0.0)
    assert [(a.status, a.reply) for a in out if isinstance(a, BranchFinal)] == [(503, None)]
    assert sip.parse(upstream(c.tx.relay_best(0.1))[0].data).status == 500


def test_late_2xx_after_final_is_passed_up_for_stateless_forwarding(sip):
    c = Call(sip)
    c.fork(B0)
    c.answer(0, 180, 1.0)
    run(c.tx, 121.0)  # fr_inv_timer: local 408
    c.tx.relay_best(121.0)
    out = c.answer(0, 200, 121.2)
    assert [type(a) for a in out] == [PassUp] and out[0].msg.status == 200


def test_replies_matched_to_their_branch(sip):
    c = Call(sip)
    c.fork(B0)
    table = TransactionTable()
    table.insert(c.tx.machine)
    ok = sip.reply(c.sent[0], 200, "OK")
    assert table.lookup_reply(ok) == (c.tx.machine, 0)
    assert table.lookup_reply(sip.reply(c.req, 200, "OK")) is None  # not our Via
    bad = sip.reply(sip.request("INVITE", branch="z9hG4bKabc.7"), 200, "OK")
    assert table.lookup_reply(bad) is None  # no such branch
    other = sip.reply(sip.request("BYE", branch="z9hG4bKabc.0"), 200, "OK")
    assert table.lookup_reply(other) is None  # our branch, another method


def test_unsupported_failure_reply_mode():
    with pytest.raises(ValueError):
        ProxySettings(failure_reply_mode=1)
