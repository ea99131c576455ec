"""UAs making calls through a SIP proxy-registrar on 127.0.0.1, and the flows the side-by-side
tests run against kemi and Kamailio 5.6 on one config, compared datagram by datagram
(``kemi_core.testing.transcript``).

``compare(pair, flow)`` runs a flow against Kamailio, then kemi (``sidebyside.Pair``). A flow
takes the server's port and a ``Transcript``. The flows here suit a config such as Debian's
kamailio.cfg or Kamailio's KEMI example (a registrar for 127.0.0.1 that record-routes and relays
to the registered users): ``calls``, ``registrations``, ``nat`` (WITH_NAT), ``auth`` (WITH_AUTH
with WITH_IPAUTH: subscribers alice/alicepw and bob/bobpw, 127.0.0.5 trusted).
"""

from __future__ import annotations

import difflib
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import pytest

from kemi_core.sip import SipMsg, parse_datagram
from kemi_core.testing.messages import downstream_reply
from kemi_core.testing.sidebyside import Pair, request_text
from kemi_core.testing.transcript import Transcript, Ua

SDP = ("v=0\r\no=- 1 1 IN IP4 HOSTIP\r\ns=-\r\nc=IN IP4 HOSTIP\r\nt=0 0\r\n"
       "m=audio 6000 RTP/AVP 0\r\n")

Flow = Callable[[int, Transcript], None]


def compare(pair: Pair, flow: Flow) -> None:
    """Run ``flow`` against Kamailio, then kemi; what the UAs received must be the same."""
    got = {}
    for who, port in (("kamailio", pair.kamailio_port), ("kemi", pair.kemi_port)):
        transcript = Transcript(port)
        flow(port, transcript)
        got[who] = transcript.lines
    if got["kemi"] != got["kamailio"]:
        diff = difflib.unified_diff("\n".join(got["kamailio"]).splitlines(),
                                    "\n".join(got["kemi"]).splitlines(), "kamailio", "kemi",
                                    lineterm="")
        pytest.fail("\n".join(diff) + "\n" + pair.kemi.log()[-3000:])


# ---- building requests -----------------------------------------------------------------------
def req(method: str, user: str | None = "bob", frm: str = "alice", extra: str = "",
        body: str = "", cseq: int = 1, call_id: str | None = None, to_tag: str = "",
        via: str | None = None, ruri: str | None = None) -> str:
    """A request from ``frm`` (PORT, HOST: the sending UA's) to ``user`` at the server (SRV
    replaced by the test: the server's port)."""
    target = f"{user}@127.0.0.1:SRV" if user else "127.0.0.1:SRV"
    ctype = "Content-Type: application/sdp\r\n" if body.startswith("v=0") else ""
    return request_text(
        method, ruri=ruri or f"sip:{target}", body=body.replace("HOSTIP", "127.0.0.1"),
        extra=f"Contact: <sip:{frm}@HOST:PORT>\r\n{ctype}{extra}", cseq=f"{cseq} {method}",
        frm=f"<sip:{frm}@127.0.0.1:SRV>;tag={frm}-{call_id or method}",
        to=f"<sip:{target}>" + (f";tag={to_tag}" if to_tag else ""),
        call_id=call_id or uuid.uuid4().hex[:12],
        via=via or f"Via: SIP/2.0/UDP HOST:PORT;branch=z9hG4bK{uuid.uuid4().hex[:12]};rport")


class Call:
    """UAs alice and bob on a server, with what a flow does over and over."""

    def __init__(self, port: int, tr: Transcript, stack: ExitStack) -> None:
        self.port, self.tr = port, tr
        self.alice = self.ua("alice", stack)
        self.bob = self.ua("bob", stack)

    def ua(self, name: str, stack: ExitStack, host: str = "127.0.0.1") -> Ua:
        ua = Ua(name, self.port, self.tr, host)
        stack.callback(ua.close)
        return ua

    def send(self, ua: Ua, text: str) -> bytes:
        return ua.send(text.replace("SRV", str(self.port)))

    def register(self, ua: Ua, contact: str | None = "<sip:NAME@HOST:PORT>", expires: str | None = "600",
                 cseq: int = 1, extra: str = "", finals: int = 1) -> bytes | None:
        lines = ""
        if contact is not None:
            lines += f"Contact: {contact.replace('NAME', ua.name)}\r\n"
        if expires is not None:
            lines += f"Expires: {expires}\r\n"
        self.send(ua, request_text(
            "REGISTER", ruri="sip:127.0.0.1:SRV", cseq=f"{cseq} REGISTER", extra=lines + extra,
            frm=f"<sip:{ua.name}@127.0.0.1:SRV>;tag=r{cseq}", to=f"<sip:{ua.name}@127.0.0.1:SRV>",
            call_id=f"reg-{ua.name}",
            via=f"Via: SIP/2.0/UDP HOST:PORT;branch=z9hG4bK{uuid.uuid4().hex[:12]};rport"))
        first = ua.final()
        for _ in range(finals - 1):
            ua.final()
        return first

    def answer(self, ua: Ua, request: SipMsg | None, status: int, body: str = "") -> None:
        if request is None:
            return
        headers = [("Content-Type", "application/sdp")] if body else []
        ua.answer(downstream_reply(request, status, contact=f"<sip:{ua.name}@{ua.host}:{ua.port}>",
                                   headers=headers, body=body.replace("HOSTIP", ua.host)))

    def answered(self, caller: Ua, callee: Ua, what: str) -> bytes:
        """The INVITE that reached ``callee`` rung (180) and answered (200 with SDP), the
        caller's ACK through the dialog's route: the caller's 200 (``what`` names the call
        in the assertion)."""
        inv = callee.request("INVITE")
        self.answer(callee, inv, 180)
        caller.wait(is_status(180))
        self.answer(callee, inv, 200, SDP)
        ok = caller.final()
        assert ok is not None, f"no 200 for {what}"
        self.in_dialog(caller, "ACK", ok, 1)
        callee.request("ACK")
        return ok

    def ack(self, ua: Ua, invite: bytes, final: bytes | None) -> None:
        """The ACK of a negative final (the INVITE's branch, the final's To)."""
        if final is None:
            return
        inv, fin = parse_datagram(invite), parse_datagram(final)
        ua.send(request_text("ACK", ruri=inv.ruri, via=f"Via: {inv.header('via')}",
                             frm=str(inv.header("from")), to=str(fin.header("to")),
                             call_id=inv.call_id, cseq=f"{inv.cseq.number} ACK"))

    def in_dialog(self, ua: Ua, method: str, ok: bytes, cseq: int, callee: bool = False,
                  body: str = "") -> bytes:
        """A request in the dialog the 200 ``ok`` made (as the caller, or as the callee)."""
        msg = parse_datagram(ok)
        routes = [r.strip() for v in msg.headers("record-route") for r in v.split(",")]
        frm, to = str(msg.header("from")), str(msg.header("to"))
        if callee:  # towards the caller's Contact: alice on her port
            frm, to = to, frm
            target = f"sip:alice@127.0.0.1:{self.alice.port}"
        else:
            routes.reverse()
            target = str(msg.header("contact")).strip("<>")
        ctype = "Content-Type: application/sdp\r\n" if body else ""
        text = request_text(method, ruri=target, frm=frm, to=to, call_id=msg.call_id,
                            cseq=f"{cseq} {method}", body=body.replace("HOSTIP", ua.host),
                            extra="".join(f"Route: {r}\r\n" for r in routes)
                            + f"Contact: <sip:{ua.name}@HOST:PORT>\r\n{ctype}",
                            via=f"Via: SIP/2.0/UDP HOST:PORT;branch=z9hG4bK{uuid.uuid4().hex[:12]};rport")
        return ua.send(text)


def is_status(code: int, method: str = "") -> Callable[[bytes], bool]:
    return lambda d: d.startswith(f"SIP/2.0 {code} ".encode()) and method.encode() in d


# ---- the flows ---------------------------------------------------------------------------------
def calls(port: int, tr: Transcript, relays_anywhere: bool = False) -> None:
    """``relays_anywhere``: the config relays to a foreign domain (no MESSAGE to one, then:
    its name would be looked up)."""
    with ExitStack() as stack:
        c = Call(port, tr, stack)
        alice, bob = c.alice, c.bob
        tr.note("bob registers")
        c.register(bob)

        tr.note("a call through Record-Route, answered")
        c.send(alice, req("INVITE", body=SDP, call_id="call-1"))
        ok = c.answered(alice, bob, "the call")
        tr.note("re-INVITE, INFO, UPDATE, PRACK in the dialog")
        c.in_dialog(alice, "INVITE", ok, 2, body=SDP)
        c.answer(bob, bob.request("INVITE"), 200, SDP)
        alice.final()
        c.in_dialog(alice, "ACK", ok, 2)
        bob.request("ACK")
        for cseq, method in enumerate(("INFO", "UPDATE", "PRACK"), 3):
            c.in_dialog(alice, method, ok, cseq)
            c.answer(bob, bob.request(method), 200)
            alice.final()
        tr.note("BYE from the callee")
        c.in_dialog(bob, "BYE", ok, 1, callee=True)
        c.answer(alice, alice.request("BYE"), 200)
        bob.final()

        tr.note("keepalive, unknown user, Max-Forwards 0")
        c.send(alice, req("OPTIONS", user=None))
        alice.final()
        invite = c.send(alice, req("INVITE", user="nobody", body=SDP))
        c.ack(alice, invite, alice.final())
        c.send(alice, req("OPTIONS").replace("Max-Forwards: 70", "Max-Forwards: 0"))
        alice.final()

        tr.note("MESSAGE and OPTIONS to a registered user")
        for method in ("MESSAGE", "OPTIONS"):
            c.send(alice, req(method))
            c.answer(bob, bob.request(method), 200)
            alice.final()

        tr.note("CANCEL of a ringing call")
        invite = c.send(alice, req("INVITE", body=SDP, call_id="call-2"))
        inv = bob.request("INVITE")
        c.answer(bob, inv, 180)
        alice.wait(is_status(180))
        c.send(alice, invite.decode().replace("INVITE", "CANCEL", 1).replace(
            " INVITE\r\n", " CANCEL\r\n").split("Content-Type")[0] + "Content-Length: 0\r\n\r\n")
        alice.wait(is_status(200, "CANCEL"))
        c.answer(bob, bob.request("CANCEL"), 200)
        c.answer(bob, inv, 487)
        c.ack(alice, invite, alice.final())
        bob.request("ACK")

        for status in (486, 404, 503):  # (a 503 goes upstream as 500)
            tr.note(f"the callee answers {status}")
            invite = c.send(alice, req("INVITE", body=SDP))
            c.answer(bob, bob.request("INVITE"), status)
            c.ack(alice, invite, alice.final())
            bob.request("ACK")

        tr.note("a call the callee never answers: tm retransmits, then a CANCEL")
        invite = c.send(alice, req("INVITE", body=SDP, call_id="call-3"))
        alice.wait(is_status(100))
        for _ in range(3):  # the INVITE and its first two retransmissions (T1, 2*T1)
            inv = bob.request("INVITE")
        c.send(alice, invite.decode().replace("INVITE", "CANCEL", 1).replace(
            " INVITE\r\n", " CANCEL\r\n").split("Content-Type")[0] + "Content-Length: 0\r\n\r\n")
        alice.wait(is_status(200, "CANCEL"))
        c.answer(bob, bob.request("CANCEL"), 200)
        c.answer(bob, inv, 487)
        c.ack(alice, invite, alice.final())
        bob.request("ACK")

        tr.note("presence off: PUBLISH, SUBSCRIBE")
        c.send(alice, req("PUBLISH", extra="Event: presence\r\n"))
        alice.final()
        c.send(alice, req("SUBSCRIBE", extra="Event: presence\r\nExpires: 60\r\n"))
        c.answer(bob, bob.request("SUBSCRIBE"), 200)
        alice.final()
        c.send(alice, req("SUBSCRIBE", extra="Event: message-summary\r\n"))
        alice.final()
        c.send(alice, req("SUBSCRIBE", user=None, extra="Event: presence\r\n"))
        alice.final()

        tr.note("a preloaded Route to us, a foreign domain, no user")
        c.send(alice, req("MESSAGE", extra="Route: <sip:127.0.0.1:SRV;lr>\r\n"))
        c.answer(bob, bob.request("MESSAGE"), 200)
        alice.final()
        if not relays_anywhere:
            c.send(alice, req("MESSAGE", ruri="sip:bob@example.com"))
            alice.final()
        c.send(alice, req("MESSAGE", user=None))
        alice.final()

        tr.note("in a dialog the server does not know")
        c.send(alice, req("BYE", to_tag="gone"))
        alice.final()
        c.send(alice, req("ACK", to_tag="gone"))
        c.send(alice, req("OPTIONS", user=None, call_id="after-ack"))
        alice.final()  # nothing for the ACK, then the keepalive's 200


def registrations(port: int, tr: Transcript) -> None:
    with ExitStack() as stack:
        c = Call(port, tr, stack)
        alice, bob = c.alice, c.ua("carol", stack)  # an AOR of its own on the shared servers
        tr.note("two contacts, expires in a Contact and in the header")
        c.register(bob, "<sip:carol@HOST:PORT>;expires=300, <sip:carol2@HOST:PORT>", "100")
        tr.note("a query, refreshes")
        c.register(bob, None, None, cseq=2)
        c.register(bob, "<sip:carol@HOST:PORT>", "4000", cseq=3)  # max_expires 3600
        c.register(bob, "<sip:carol@HOST:PORT>;expires=10", None, cseq=4)  # min_expires 60
        c.register(bob, "<sip:carol@HOST:PORT>", None, cseq=5)  # default_expires
        tr.note("* with expires 0, then a query")
        c.register(bob, "*", "0", cseq=6)
        c.register(bob, None, None, cseq=7)
        c.send(alice, req("MESSAGE", user="carol"))
        alice.final()
        tr.note("refused: sl_reply_error() follows save()'s own reply")
        c.register(bob, "*", "600", cseq=8, finals=2)
        c.register(bob, "*", "0", cseq=9, extra="Contact: <sip:x@127.0.0.1:5>\r\n", finals=2)
        c.register(bob, cseq=10)
        c.register(bob, cseq=3, finals=2)  # an older CSeq of the same Call-ID
        tr.note("the same URI with +sip.instance and reg-id: a binding of its own")
        c.register(bob, '<sip:carol@HOST:PORT>;+sip.instance="<urn:uuid:1>";reg-id=1', cseq=11)
        tr.note("without them: the first binding of that URI, refreshed, then removed")
        c.register(bob, cseq=12)
        c.register(bob, expires="0", cseq=13)
        tr.note("without them again: the one left, refreshed, keeps its instance and reg-id")
        c.register(bob, cseq=14)
        tr.note("unregister, then a call: 404 (no 100 first)")
        c.register(bob, "*", "0", cseq=15)
        invite = c.send(alice, req("INVITE", user="carol", body=SDP))
        c.ack(alice, invite, alice.final())


NAT_VIA = "Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK{};rport"


def nat(port: int, tr: Transcript) -> None:
    """A callee registered from behind a NAT (private Contact and Via), called by a NATed
    caller; a MESSAGE with only a private Via."""
    with ExitStack() as stack:
        c = Call(port, tr, stack)
        alice, bob = c.alice, c.bob
        tr.note("bob registers from behind a NAT")
        c.register(bob, "<sip:bob@192.168.1.10:5060>", extra="")
        tr.note("alice calls from behind a NAT")
        invite = req("INVITE", body=SDP.replace("HOSTIP", "192.168.1.20"), call_id="nat-1",
                     via=NAT_VIA.format(uuid.uuid4().hex[:12]))
        c.send(alice, invite.replace("<sip:alice@HOST:PORT>", "<sip:alice@192.168.1.20:5060>"))
        ok = c.answered(alice, bob, "the NATed call")
        c.in_dialog(alice, "BYE", ok, 2)
        c.answer(bob, bob.request("BYE"), 200)
        alice.final()
        tr.note("a private Via only")
        c.send(alice, req("MESSAGE", via=NAT_VIA.format("m1").replace(";rport", "")))
        c.answer(bob, bob.request("MESSAGE"), 200)
        alice.final()


def challenge(reply: bytes | None) -> Any:
    from kemi_auth.testing import parse_challenge  # (a plugin: not a kemi_core import)
    ch = parse_challenge(parse_datagram(reply)) if reply else None
    assert ch is not None, "no challenge"
    return ch


def auth(port: int, tr: Transcript) -> None:
    """WITH_AUTH (and IPAUTH, USRLOCDB, ACCDB): REGISTER and INVITE without, with wrong, with
    someone else's and with the right credentials; a MESSAGE relayed without its credentials;
    what needs none (a foreign caller to a local user, a trusted address); 403 to relay."""
    from kemi_auth.testing import credentials  # (a plugin: not a kemi_core import)

    with ExitStack() as stack:
        c = Call(port, tr, stack)
        alice, bob = c.alice, c.bob
        gw = c.ua("gw", stack, host="127.0.0.5")  # the address table's group 1
        registrar = f"sip:127.0.0.1:{port}"
        tr.note("REGISTER: none, wrong, someone else's, then the right credentials")
        ch = challenge(c.register(bob))
        for cseq, (user, password) in enumerate((("bob", "nope"), ("alice", "alicepw"),
                                                  ("bob", "bobpw")), 2):
            value = credentials(ch, "REGISTER", registrar, user, password)
            c.register(bob, cseq=cseq, extra=f"Authorization: {value}\r\n")
        tr.note("INVITE: none, wrong, then the right credentials")
        bob_uri = f"sip:bob@127.0.0.1:{port}"
        invite = c.send(alice, req("INVITE", body=SDP))
        reply = alice.final()
        c.ack(alice, invite, reply)
        ch = challenge(reply)
        for password, call_id in (("bad", "auth-1"), ("alicepw", "auth-2")):
            value = credentials(ch, "INVITE", bob_uri, "alice", password)
            invite = c.send(alice, req("INVITE", body=SDP, call_id=call_id,
                                       extra=f"Proxy-Authorization: {value}\r\n"))
            if password == "alicepw":
                inv = bob.request("INVITE")
                c.answer(bob, inv, 200, SDP)
                ok = alice.final()
                assert ok is not None, "no 200 for the authenticated call"
                c.in_dialog(alice, "ACK", ok, 1)
                bob.request("ACK")
                c.in_dialog(alice, "BYE", ok, 2)
                c.answer(bob, bob.request("BYE"), 200)
                alice.final()
            else:
                c.ack(alice, invite, alice.final())
        tr.note("MESSAGE with credentials (consumed), from a foreign user, from a trusted address")
        value = credentials(ch, "MESSAGE", bob_uri, "alice", "alicepw")
        c.send(alice, req("MESSAGE", extra=f"Proxy-Authorization: {value}\r\n"))
        c.answer(bob, bob.request("MESSAGE"), 200)
        alice.final()
        c.send(alice, req("MESSAGE").replace("<sip:alice@127.0.0.1:SRV>", "<sip:eve@example.com>"))
        c.answer(bob, bob.request("MESSAGE"), 200)
        alice.final()
        c.send(gw, req("MESSAGE", frm="gw"))
        c.answer(bob, bob.request("MESSAGE"), 200)
        gw.final()
        tr.note("a foreign user to a foreign domain: not relayed")
        c.send(alice, req("MESSAGE", ruri="sip:bob@example.org").replace(
            "<sip:alice@127.0.0.1:SRV>", "<sip:eve@example.com>"))
        alice.final()


