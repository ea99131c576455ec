"""Server transactions (RFC 3261 17.2) driven by a fake clock."""

from __future__ import annotations

import pytest

from kemi_tm.actions import Dest, PassUp, Send, Terminated, TransactionStateError
from kemi_tm.server import ServerState, ServerTransaction
from kemi_tm.testing import Driven

UDP = Dest("udp", "10.0.0.1", 5060)
TCP = Dest("tcp", "10.0.0.1", 5060)


def run_timers(tx, until: float) -> list[tuple[float, object]]:
    fired = []
    for _ in range(1000):
        at = tx.next_timer()
        if at is None or at > until:
            break
        fired += [(at, a) for a in tx.on_timer(at)]
    return fired


def raw(sip, req, status, reason="X", tag="uas1") -> bytes:
    return sip.reply(req, status, reason, to_tag=None if status == 100 else tag).to_bytes()


def test_invite_retransmission_gets_last_provisional(sip):
    req = sip.request("INVITE")
    tx = Driven(ServerTransaction(req, UDP))
    assert tx.state is ServerState.PROCEEDING
    assert tx.on_request(req, 0.1) == []  # nothing sent yet: absorbed
    trying = raw(sip, req, 100, "Trying")
    assert tx.send_reply(100, trying, 0.2) == [Send(UDP, trying)]
    assert tx.on_request(req, 0.3) == [Send(UDP, trying)]
    ringing = raw(sip, req, 180, "Ringing")
    tx.send_reply(180, ringing, 0.4)
    assert tx.on_request(req, 0.5) == [Send(UDP, ringing)]
    assert tx.next_timer() is None


def test_invite_negative_final_timer_g_then_h(sip):
    req = sip.request("INVITE")
    tx = Driven(ServerTransaction(req, UDP))
    busy = raw(sip, req, 486, "Busy Here")
    assert tx.send_reply(486, busy, 0.0) == [Send(UDP, busy)]
    assert tx.state is ServerState.COMPLETED and tx.final_status == 486
    assert tx.on_request(req, 0.1) == [Send(UDP, busy)]  # retransmitted INVITE
    fired = run_timers(tx, 100.0)
    assert [t for t, a in fired if isinstance(a, Send)] == [
        0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert [(t, type(a)) for t, a in fired if not isinstance(a, Send)] == [(32.0, Terminated)]
    assert tx.terminated


def test_invite_ack_confirms_then_timer_i(sip):
    req = sip.request("INVITE")
    tx = Driven(ServerTransaction(req, UDP))
    tx.send_reply(404, raw(sip, req, 404), 0.0)
    ack = sip.request("ACK", to_tag="uas1")
    assert tx.on_request(ack, 0.7) == []  # absorbed
    assert tx.state is ServerState.CONFIRMED
    assert tx.next_timer() == 5.7  # Timer I = T4, G and H stopped
    assert tx.on_request(req, 1.0) == [] and tx.on_request(ack, 1.0) == []
    assert [type(a) for _, a in run_timers(tx, 10.0)] == [Terminated]


def test_invite_over_tcp_no_timer_g_and_no_wait_after_ack(sip):
    req = sip.request("INVITE", transport="TCP")
    tx = Driven(ServerTransaction(req, TCP))
    tx.send_reply(486, raw(sip, req, 486), 0.0)
    assert tx.next_timer() == 32.0  # Timer H only
    out = tx.on_request(sip.request("ACK", transport="TCP", to_tag="uas1"), 1.0)
    assert [type(a) for a in out] == [Terminated]


def test_invite_2xx_accepted_state(sip):
    req = sip.request("INVITE")
    tx = Driven(ServerTransaction(req, UDP))
    ok1 = raw(sip, req, 200, "OK", tag="fork1")
    ok2 = raw(sip, req, 200, "OK", tag="fork2")
    tx.send_reply(200, ok1, 1.0)
    assert tx.state is ServerState.ACCEPTED
    assert tx.send_reply(200, ok2, 1.5) == [Send(UDP, ok2)]  # forked 2xx go through too
    assert not tx.can_reply(486)
    with pytest.raises(TransactionStateError):
        tx.send_reply(486, raw(sip, req, 486), 1.6)
    assert tx.on_request(req, 1.7) == []  # INVITE retransmission absorbed
    ack = sip.request("ACK", to_tag="fork1")
    assert tx.on_request(ack, 1.8) == [PassUp(ack)]  # end-to-end ACK: route it
    assert tx.next_timer() == 6.5  # wt_timer after the last 2xx sent
    assert [type(a) for _, a in run_timers(tx, 6.5)] == [Terminated]


def test_invite_second_final_refused(sip):
    req = sip.request("INVITE")
    tx = Driven(ServerTransaction(req, UDP))
    tx.send_reply(486, raw(sip, req, 486), 0.0)
    with pytest.raises(TransactionStateError):
        tx.send_reply(200, raw(sip, req, 200), 0.1)


def test_non_invite_trying_proceeding_completed_timer_j(sip):
    req = sip.request("BYE", to_tag="uas1")
    tx = Driven(ServerTransaction(req, UDP))
    assert tx.state is ServerState.TRYING
    assert tx.on_request(req, 0.1) == []
    trying = raw(sip, req, 100, "Trying")
    tx.send_reply(100, trying, 0.2)
    assert tx.state is ServerState.PROCEEDING
    assert tx.on_request(req, 0.3) == [Send(UDP, trying)]
    ok = raw(sip, req, 200, "OK")
    assert tx.send_reply(200, ok, 1.0) == [Send(UDP, ok)]
    assert tx.state is ServerState.COMPLETED
    assert tx.on_request(req, 2.0) == [Send(UDP, ok)]
    with pytest.raises(TransactionStateError):
        tx.send_reply(500, raw(sip, req, 500), 2.0)
    assert tx.next_timer() == 6.0  # Timer J = wt_timer
    assert [type(a) for _, a in run_timers(tx, 6.0)] == [Terminated]


def test_non_invite_over_tcp_terminates_on_final(sip):
    req = sip.request("OPTIONS", transport="TCP")
    tx = Driven(ServerTransaction(req, TCP))
    out = tx.send_reply(200, raw(sip, req, 200), 0.0)
    assert [type(a) for a in out] == [Send, Terminated]
