"""A draining worker's entry gate (kemi_core.runtime.drain) with tm loaded: a retransmission of
a request whose transaction is still there is answered by tm (the last reply again) and never
reaches the script; a new request - even with the same Call-ID - gets the 503. In-process: the
real gate in front of the real dispatcher, tm and a capture transport."""

from __future__ import annotations

import array

from kemi_core.api import MsgContext, RecvInfo
from kemi_core.runtime.drain import EntryGate
from kemi_core.sip import SipMsg, build_reply, parse_datagram
from kemi_core.testing import Sent, attach_dispatcher, offline_core
from kemi_core.testing.udp_client import request
from kemi_tm import exports as tm
from kemi_tm.testing import TmHarness

CALLER = ("127.0.0.1", 5070)
CALLEE = ("127.0.0.1", 5080)
RURI = "sip:bob@127.0.0.1"


def invite(method: str = "INVITE", cseq: int = 1, call_id: str = "call-1") -> bytes:
    """A new request of the call each time (a new branch); resend the bytes to retransmit."""
    return request(method, RURI, CALLER[1], cseq=cseq, call_id=call_id)


def relay_to_callee(ctx: MsgContext) -> int:
    ctx.dst_uri = "sip:127.0.0.1:5080"
    return tm.t_relay(ctx)


def to(sent: list[Sent], addr: tuple[str, int]) -> list[SipMsg]:
    return [s.msg for s in sent if (s.host, s.port) == addr]


def answer(req: SipMsg, status: int, reason: str) -> bytes:
    return build_reply(req, status, reason, to_tag="callee")


class Gated:
    """A TmHarness whose messages pass the worker's entry gate first."""

    def __init__(self) -> None:
        self.h = TmHarness({"ksr_request_route": relay_to_callee})
        self.gate = EntryGate(self.h.core, array.array("d", [0.0]), 0)
        self.entry = self.gate.receiver(self.h.dispatcher)

    def send(self, raw: bytes, src: tuple[str, int]) -> None:
        self.entry.on_message(parse_datagram(raw),
                              RecvInfo("udp", src[0], src[1], "127.0.0.1", 5060))

    def routed(self) -> int:
        return sum(1 for name, _ in self.h.engine.runs if name == "ksr_request_route")


def test_retransmitted_invite_gets_last_reply_new_request_gets_503() -> None:
    g = Gated()
    first = invite()
    g.send(first, CALLER)
    fwd = to(g.h.take(), CALLEE)[0]
    g.send(answer(fwd, 180, "Ringing"), CALLEE)
    assert [m.status for m in to(g.h.take(), CALLER)] == [180]
    assert g.routed() == 1

    g.gate.start_draining()
    g.send(first, CALLER)  # the caller's retransmission, same branch
    up = to(g.h.take(), CALLER)
    assert [m.status for m in up] == [180]  # the last reply again, no 503
    assert g.routed() == 1  # tm took it: the script never saw it

    # same dialog, new transactions: refused
    g.send(invite(cseq=2), CALLER)
    g.send(invite("BYE", cseq=3), CALLER)
    up = to(g.h.take(), CALLER)
    assert [(m.status, m.cseq.method) for m in up] == [(503, "INVITE"), (503, "BYE")]
    assert g.routed() == 1

    # the call still completes: the 200 goes up, the transaction is still tm's
    g.send(answer(fwd, 200, "OK"), CALLEE)
    assert [m.status for m in to(g.h.take(), CALLER)] == [200]


def test_retransmitted_bye_waiting_for_its_branch_is_absorbed() -> None:
    g = Gated()
    bye = invite("BYE", cseq=2)
    g.send(bye, CALLER)
    fwd = to(g.h.take(), CALLEE)[0]
    assert fwd.method == "BYE"
    g.gate.start_draining()
    g.send(bye, CALLER)  # no reply yet: tm has nothing to resend, and no 503 either
    assert to(g.h.take(), CALLER) == []
    assert g.routed() == 1
    g.send(build_reply(fwd, 200, "OK"), CALLEE)
    assert [m.status for m in to(g.h.take(), CALLER)] == [200]
    assert len(g.h.tm.table) == 1  # kept (wt) to absorb more retransmissions
    g.send(bye, CALLER)  # a retransmission after the final: the 200 again
    assert [m.status for m in to(g.h.take(), CALLER)] == [200]


def test_without_tm_every_request_is_new() -> None:
    core, transport = offline_core()
    gate = EntryGate(core, array.array("d", [0.0]), 0)
    entry = gate.receiver(attach_dispatcher(core))
    gate.start_draining()
    data = invite()
    for _ in range(2):
        entry.on_message(parse_datagram(data), RecvInfo("udp", *CALLER, "127.0.0.1", 5060))
    assert [s.msg.status for s in transport.sent] == [503, 503]


def ack_of(req: bytes, reply: SipMsg) -> bytes:
    """The hop-by-hop ACK of a negative final reply to ``req`` (same branch, the reply's To)."""
    msg = parse_datagram(req)
    head = [f"ACK {RURI} SIP/2.0", f"Via: {msg.via.raw}", f"From: {msg.header('From')}",
            f"To: {reply.header('To')}", f"Call-ID: {msg.call_id}",
            f"CSeq: {msg.cseq.number} ACK", "Max-Forwards: 70", "Content-Length: 0"]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


def test_ack_of_the_gates_503_ends_at_the_gate() -> None:
    """As the ACK of any local negative reply (Kamailio's sl filter): the ACK of the draining
    gate's 503 is neither routed nor relayed downstream."""
    g = Gated()
    g.gate.start_draining()
    req = invite(call_id="call-ack")
    g.send(req, CALLER)
    up = to(g.h.take(), CALLER)
    assert [m.status for m in up] == [503]
    assert g.h.core.is_local_tag(up[0].to.tag)
    g.send(ack_of(req, up[0]), CALLER)
    assert g.h.take() == []  # not relayed to the callee
    assert g.routed() == 0


def test_gate_503_tag_is_the_servers_local_tag() -> None:
    """The 503's To-tag is the one every stateless reply here carries, so sl's ACK filter in
    a worker that does not drain ends its ACK too; the same for its retransmissions."""
    g = Gated()
    g.gate.start_draining()
    req = invite(call_id="call-tag")
    g.send(req, CALLER)
    g.send(req, CALLER)
    tags = [m.to.tag for m in to(g.h.take(), CALLER)]
    assert len(tags) == 2 and tags[0] == tags[1]
    assert tags[0] == g.h.core.local_tag(parse_datagram(req))
