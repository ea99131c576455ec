"""Client transactions (RFC 3261 17.1) driven by a fake clock."""

from __future__ import annotations

from kemi_tm.actions import Dest, LocalFinal, PassUp, Send, Terminated
from kemi_tm.client import (
    ClientState,
    InviteClientTransaction,
    NonInviteClientTransaction,
    new_client_transaction,
)
from kemi_tm.testing import Driven
from kemi_tm.timers import TimerSettings

UDP = Dest("udp", "10.0.0.2", 5060)
TCP = Dest("tcp", "10.0.0.2", 5060)
BRANCH = "z9hG4bKproxy1.0"


def invite(sip, **kw):
    return sip.request("INVITE", branch=BRANCH, sent_by="192.0.2.1:5060", **kw)


def run_timers(tx, until: float) -> list[tuple[float, object]]:
    """Fire every timer up to ``until``; returns (time, action) pairs."""
    fired = []
    for _ in range(1000):
        at = tx.next_timer()
        if at is None or at > until:
            break
        fired += [(at, a) for a in tx.on_timer(at)]
    return fired


def sends(actions) -> list[bytes]:
    return [a.data for a in actions if isinstance(a, Send)]


def test_factory_picks_the_machine(sip):
    assert isinstance(new_client_transaction(invite(sip), UDP), InviteClientTransaction)
    reg = sip.request("REGISTER", branch=BRANCH)
    assert isinstance(new_client_transaction(reg, UDP), NonInviteClientTransaction)


def test_invite_timer_a_doubles_and_timer_b_gives_local_408(sip):
    tx = Driven(InviteClientTransaction(invite(sip), UDP))
    out = tx.start(0.0)
    assert sends(out) == [tx.request.to_bytes()]
    assert tx.state is ClientState.CALLING and tx.key == (BRANCH, "INVITE")
    fired = run_timers(tx, 100.0)
    retrans = [t for t, a in fired if isinstance(a, Send)]
    assert retrans == [0.5, 1.5, 3.5, 7.5, 15.5]  # 31.5 would come after Timer B (fr_timer 30)
    tail = [(t, type(a)) for t, a in fired if not isinstance(a, Send)]
    # Completed for wt_timer (5 s) after the local 408, as Kamailio's wait timer
    assert tail == [(30.0, LocalFinal), (35.0, Terminated)]
    assert [a.status for _, a in fired if isinstance(a, LocalFinal)] == [408]
    assert tx.terminated and tx.next_timer() is None


def test_invite_acks_a_final_that_comes_after_timer_b(sip):
    """Kamailio 5.6 ACKs a callee's 487 that comes after its fr_timer ended the branch (the
    callee would retransmit it until ACKed); the reply goes no further."""
    tx = Driven(InviteClientTransaction(invite(sip), UDP))
    tx.start(0.0)
    fired = run_timers(tx, 31.0)
    assert [a.status for _, a in fired if isinstance(a, LocalFinal)] == [408]
    assert tx.state is ClientState.COMPLETED and not tx.terminated
    late = sip.reply(tx.request, 487, "Request Terminated")
    for at in (32.0, 33.0):  # the reply and its retransmission: each gets the ACK
        out = tx.on_response(late, at)
        assert [type(a) for a in out] == [Send]
        assert sip.parse(out[0].data).method == "ACK"


def test_invite_over_tcp_has_no_retransmissions(sip):
    tx = Driven(InviteClientTransaction(invite(sip, transport="TCP"), TCP))
    tx.start(10.0)
    assert tx.next_timer() == 40.0  # only Timer B
    fired = run_timers(tx, 100.0)
    assert [type(a) for _, a in fired] == [LocalFinal, Terminated]


def test_invite_provisional_switches_to_fr_inv_timer(sip):
    tx = Driven(InviteClientTransaction(invite(sip), UDP))
    tx.start(0.0)
    out = tx.on_response(sip.reply(tx.request, 180, "Ringing"), 1.0)
    assert [type(a) for a in out] == [PassUp]
    assert tx.state is ClientState.PROCEEDING and tx.got_provisional
    assert tx.next_timer() == 121.0  # fr_inv_timer from the 1xx, Timer A stopped
    tx.on_response(sip.reply(tx.request, 183, "Progress"), 50.0)
    assert tx.next_timer() == 170.0  # restart_fr_on_each_reply
    assert run_timers(tx, 169.9) == []


def test_fr_inv_not_restarted_when_disabled_and_capped_by_lifetime(sip):
    s = TimerSettings(restart_fr_on_each_reply=False, max_inv_lifetime=100.0)
    tx = Driven(InviteClientTransaction(invite(sip), UDP, s))
    tx.start(0.0)
    tx.on_response(sip.reply(tx.request, 180, "Ringing"), 1.0)
    assert tx.next_timer() == 100.0  # max_inv_lifetime caps fr_inv_timer
    tx.on_response(sip.reply(tx.request, 180, "Ringing"), 50.0)
    assert tx.next_timer() == 100.0


def test_invite_negative_final_is_acked_per_17_1_1_3(sip):
    req = invite(sip, routes=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"))
    tx = Driven(InviteClientTransaction(req, UDP))
    tx.start(0.0)
    tx.on_response(sip.reply(req, 180, "Ringing"), 0.2)
    busy = sip.reply(req, 486, "Busy Here", to_tag="bobtag")
    out = tx.on_response(busy, 1.0)
    assert [type(a) for a in out] == [Send, PassUp]
    assert out[0].dest == UDP
    ack = sip.parse(out[0].data)
    assert ack.method == "ACK" and ack.ruri == req.ruri
    assert [v.raw for v in ack.vias] == [req.via.raw]  # only the top Via of the request
    assert ack.headers("Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert ack.from_.tag == "a1" and ack.to.tag == "bobtag"
    assert ack.call_id == req.call_id
    assert (ack.cseq.number, ack.cseq.method) == (1, "ACK")
    assert ack.content_length == 0
    assert tx.state is ClientState.COMPLETED and tx.final_status == 486
    # the retransmitted 486 is absorbed and ACKed again
    assert tx.on_response(busy, 1.5) == [Send(UDP, out[0].data)]
    # a 200 after the 486 (a broken callee) goes up: a proxy forwards every 2xx to INVITE
    # (RFC 3261 16.7 step 5, as Kamailio 5.6 does); no ACK from here, the state stays
    late = sip.reply(req, 200, "OK", to_tag="bobtag")
    assert tx.on_response(late, 1.6) == [PassUp(late)]
    assert tx.state is ClientState.COMPLETED and tx.final_status == 486
    assert tx.next_timer() == 6.0  # Timer D = wt_timer
    assert [type(a) for _, a in run_timers(tx, 10.0)] == [Terminated]


def test_invite_negative_final_over_tcp_terminates_at_once(sip):
    tx = Driven(InviteClientTransaction(invite(sip, transport="TCP"), TCP))
    tx.start(0.0)
    out = tx.on_response(sip.reply(tx.request, 404, "Not Found"), 1.0)
    assert [type(a) for a in out] == [Send, PassUp, Terminated]
    assert tx.terminated


def test_invite_2xx_is_passed_up_with_its_retransmissions(sip):
    tx = Driven(InviteClientTransaction(invite(sip), UDP))
    tx.start(0.0)
    ok = sip.reply(tx.request, 200, "OK")
    out = tx.on_response(ok, 2.0)
    assert [type(a) for a in out] == [PassUp]  # no ACK: the ACK for a 2xx is end to end
    assert tx.state is ClientState.ACCEPTED
    assert [type(a) for a in tx.on_response(ok, 2.5)] == [PassUp]
    assert tx.on_response(sip.reply(tx.request, 180, "Ringing"), 2.6) == []
    assert tx.next_timer() == 7.0
    assert [type(a) for _, a in run_timers(tx, 7.0)] == [Terminated]


def test_fr_inv_timeout_reports_408_and_still_acks_the_487(sip):
    tx = Driven(InviteClientTransaction(invite(sip), UDP))
    tx.start(0.0)
    tx.on_response(sip.reply(tx.request, 180, "Ringing"), 1.0)
    fired = run_timers(tx, 121.0)
    assert [type(a) for _, a in fired] == [LocalFinal]
    assert fired[0][1].status == 408 and tx.local_final == 408
    assert tx.state is ClientState.PROCEEDING and not tx.terminated
    tx.mark_cancelled(121.0)
    out = tx.on_response(sip.reply(tx.request, 487, "Request Terminated"), 122.0)
    assert [type(a) for a in out] == [Send, PassUp]
    assert sip.parse(out[0].data).method == "ACK"


def test_cancelled_invite_gives_up_after_64_t1(sip):
    tx = Driven(InviteClientTransaction(invite(sip), UDP))
    tx.start(0.0)
    tx.on_response(sip.reply(tx.request, 180, "Ringing"), 1.0)
    tx.mark_cancelled(5.0)
    assert tx.next_timer() == 37.0
    fired = run_timers(tx, 40.0)
    assert [type(a) for _, a in fired] == [LocalFinal, Terminated]
    assert fired[0][1].status == 487


def test_non_invite_timer_e_caps_at_t2_and_timer_f_times_out(sip):
    req = sip.request("OPTIONS", branch=BRANCH)
    tx = Driven(NonInviteClientTransaction(req, UDP))
    tx.start(0.0)
    assert tx.state is ClientState.TRYING
    fired = run_timers(tx, 100.0)
    retrans = [t for t, a in fired if isinstance(a, Send)]
    assert retrans == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5]
    assert [type(a) for t, a in fired if t == 30.0] == [LocalFinal, Terminated]


def test_non_invite_proceeding_retransmits_every_t2(sip):
    req = sip.request("OPTIONS", branch=BRANCH)
    tx = Driven(NonInviteClientTransaction(req, UDP))
    tx.start(0.0)
    out = tx.on_response(sip.reply(req, 100, "Trying", to_tag=None), 0.2)
    assert [type(a) for a in out] == [PassUp] and tx.state is ClientState.PROCEEDING
    fired = run_timers(tx, 9.0)
    assert [t for t, a in fired if isinstance(a, Send)] == [0.5, 4.5, 8.5]


def test_non_invite_final_then_timer_k(sip):
    req = sip.request("OPTIONS", branch=BRANCH)
    tx = Driven(NonInviteClientTransaction(req, UDP))
    tx.start(0.0)
    ok = sip.reply(req, 200, "OK")
    assert [type(a) for a in tx.on_response(ok, 1.0)] == [PassUp]
    assert tx.state is ClientState.COMPLETED and tx.final_status == 200
    assert tx.on_response(ok, 1.2) == []  # retransmission absorbed
    assert tx.next_timer() == 6.0  # Timer K = T4
    assert [type(a) for _, a in run_timers(tx, 6.0)] == [Terminated]


def test_non_invite_over_tcp(sip):
    req = sip.request("OPTIONS", branch=BRANCH, transport="TCP")
    tx = Driven(NonInviteClientTransaction(req, TCP))
    tx.start(0.0)
    assert tx.next_timer() == 30.0  # no Timer E
    out = tx.on_response(sip.reply(req, 200, "OK"), 1.0)
    assert [type(a) for a in out] == [PassUp, Terminated]  # Timer K = 0


def test_transport_error_counts_as_503(sip):
    tx = Driven(InviteClientTransaction(invite(sip), UDP))
    tx.start(0.0)
    out = tx.on_transport_error(0.1)
    assert [type(a) for a in out] == [LocalFinal, Terminated] and out[0].status == 503
    assert tx.on_transport_error(0.2) == []
