"""The kemi_router fixture driving one routing logic written for Lua, Python and native routes:
local replies, hop limit, relay checks, failover on busy and on timeout, CANCEL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .conftest import CANCEL, KEEPALIVE, PRIMARY, SECONDARY, invite


def test_keepalive_answered_locally(kemi_router: Any, failover_cfg: Path) -> None:
    out = kemi_router(failover_cfg).request(KEEPALIVE)
    assert [(r.status, r.reason) for r in out.replies] == [(200, "Keepalive")]
    assert out.forwarded == [] and not out.dropped and out.errors == []
    reply = out.replies[0]
    assert reply.cseq.method == "OPTIONS" and reply.to.tag  # a stateless reply gets a To-tag
    assert [v.branch for v in reply.vias] == ["z9hG4bKping1"]
    assert out.sent[0].dest == "udp:127.0.0.1:5070"  # back to the Via's sent-by


def test_max_forwards_exhausted_gets_483(kemi_router: Any, failover_cfg: Path) -> None:
    out = kemi_router(failover_cfg).request(invite(max_forwards=0))
    assert [(r.status, r.reason) for r in out.replies] == [(483, "Too Many Hops")]
    assert out.forwarded == []
    assert "relaying" not in out.logs


def test_relay_to_primary(kemi_router: Any, failover_cfg: Path) -> None:
    out = kemi_router(failover_cfg).request(invite(), source="udp:127.0.0.1:5070")
    assert [f.dest for f in out.forwarded] == [PRIMARY]
    fwd = out.forwarded[0].msg
    assert fwd.method == "INVITE" and fwd.ruri == "sip:bob@example.com"
    assert fwd.header("X-Route") == "primary"
    assert fwd.max_forwards == 69
    top, caller = fwd.vias
    assert (top.host, top.port, top.transport) == ("127.0.0.1", 5060, "UDP")
    assert top.branch.startswith("z9hG4bK") and top.branch != "z9hG4bKcaller1"
    assert caller.branch == "z9hG4bKcaller1"
    assert fwd.body.startswith(b"v=0\r\no=alice") and fwd.content_length == len(fwd.body)
    assert [r.status for r in out.replies] == [100]  # tm's 100 Trying for the INVITE
    assert "relaying INVITE sip:bob@example.com to primary" in out.logs
    assert out.pv("$avp(route)") == "primary"
    assert out.pv("$du") == "sip:127.0.0.1:5080"


def test_busy_fails_over_then_200_is_relayed(kemi_router: Any, failover_cfg: Path) -> None:
    router = kemi_router(failover_cfg)
    out = router.request(invite())
    busy = router.reply(out.forwarded[0], 486, "Busy Here")
    assert [f.dest for f in busy.forwarded] == [SECONDARY]
    assert [a.dest for a in busy.acks] == [PRIMARY]  # tm ACKs the 486 hop by hop
    assert busy.acks[0].msg.method == "ACK" and busy.replies == []
    second = busy.forwarded[0].msg
    assert second.header("X-Route") == "primary" and second.max_forwards == 69
    assert second.vias[0].branch != out.forwarded[0].msg.vias[0].branch
    assert "failover to secondary after 486" in busy.logs

    ringing = router.reply(busy.forwarded[0], 180)
    assert [(r.status, r.reason) for r in ringing.replies] == [(180, "Ringing")]
    ok = router.reply(busy.forwarded[0], 200, "OK", body="v=0\n")
    assert [(r.status, r.reason) for r in ok.replies] == [(200, "OK")]
    answer = ok.replies[0]
    assert [v.branch for v in answer.vias] == ["z9hG4bKcaller1"]  # our Via popped
    assert answer.to.tag and answer.body == b"v=0\r\n"
    assert answer.cseq.method == "INVITE" and ok.final is answer


def test_timeout_fails_over_through_advance(kemi_router: Any, failover_cfg: Path) -> None:
    router = kemi_router(failover_cfg)
    out = router.request(invite())
    waiting = router.advance(9.9)  # fr_timer is 10 s: only timer A retransmissions so far
    assert waiting.forwarded == [] and waiting.replies == []
    assert [r.dest for r in waiting.retransmissions] == [PRIMARY] * 4  # 0.5, 1.5, 3.5, 7.5 s
    assert all(r.data == out.forwarded[0].data for r in waiting.retransmissions)
    later = router.advance(0.2)
    assert [f.dest for f in later.forwarded] == [SECONDARY]
    assert "failover to secondary after 408" in later.logs
    assert later.replies == []  # the caller hears nothing until the secondary answers
    ok = router.reply(later.forwarded[0], 200)
    assert [r.status for r in ok.replies] == [200]


def test_secondary_timeout_relays_408_upstream(kemi_router: Any, failover_cfg: Path) -> None:
    router = kemi_router(failover_cfg)
    router.request(invite())
    assert [f.dest for f in router.advance(10.0).forwarded] == [SECONDARY]
    end = router.advance(10.0)
    assert [(r.status, r.reason) for r in end.replies] == [(408, "Request Timeout")]


def test_cancel_reaches_the_branch_and_stops_failover(kemi_router: Any, failover_cfg: Path) -> None:
    router = kemi_router(failover_cfg)
    out = router.request(invite())
    router.reply(out.forwarded[0], 180, "Ringing")
    cancelled = router.request(CANCEL)
    assert [(r.status, r.cseq.method) for r in cancelled.replies] == [(200, "CANCEL")]
    assert [c.dest for c in cancelled.cancels] == [PRIMARY]
    assert cancelled.forwarded == []
    terminated = router.reply(out.forwarded[0], 487, "Request Terminated")
    assert terminated.forwarded == []  # the failure route sees t_is_canceled()
    assert [(r.status, r.cseq.method) for r in terminated.replies] == [(487, "INVITE")]
    assert [a.dest for a in terminated.acks] == [PRIMARY]
