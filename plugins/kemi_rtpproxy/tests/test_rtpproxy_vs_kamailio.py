"""kemi's rtpproxy module and Kamailio 5.6's, each driving the same real media relay.

The relay is Debian's rtpengine on its rtpproxy-compatible control port (Debian has no
rtpproxy). One native kamailio.cfg runs on kemi and on Kamailio: it calls rtpproxy_manage with
the flags the request names (X-Flags) on INVITE, ACK, BYE and on every reply, relays through tm
to a UA socket and records the return code in the forwarded request. For each flow the test
compares, server against server: the commands rtpengine received (Call-ID aside), the SDP the
callee and the caller got (the relay's ports aside: they are numbered in order of appearance)
and the return codes.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
import pytest

from kemi_core.sip import SipMsg, parse_datagram
from kemi_core.testing import (
    KAMAILIO_MPATH,
    KamailioProcess,
    KemiProcess,
    RtpEngineProcess,
    free_port,
    kamailio_available,
    rtpengine_available,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not kamailio_available("rtpproxy.so", "tm.so", "textops.so"),
                       reason="Kamailio 5.6 with its rtpproxy module is not installed"),
    pytest.mark.skipif(not rtpengine_available(),
                       reason="rtpengine (Debian's rtpengine-daemon) is not installed"),
]

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
children=2
listen=udp:127.0.0.1:{port}
{mpath}
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "rtpproxy.so"
loadmodule "ctl.so"
modparam("ctl", "binrpc", "unix:{ctl}")
modparam("rtpproxy", "rtpproxy_sock", "{rtpsock}")
modparam("rtpproxy", "rtpproxy_tout", 1)
modparam("rtpproxy", "rtpproxy_retr", 2)

request_route {{
    rtpproxy_manage("$hdr(X-Flags)");
    append_hf("X-Rc: $rc\\r\\n");
    $du = "sip:127.0.0.1:{uas}";
    if (is_method("ACK")) {{
        forward();
        exit;
    }}
    t_on_reply("MANAGE_REPLY");
    t_relay();
}}

onreply_route[MANAGE_REPLY] {{
    rtpproxy_manage("$hdr(X-Flags)");
}}
"""


def sdp(address: str, ports: tuple[int, ...] = (6000,), extra: str = "", media_c: bool = False,
        session_c: bool = True, origin: str | None = None, eol: str = "\r\n",
        family: str = "IP4") -> str:
    lines = ["v=0", f"o=u 1 1 IN {family} {origin or address}", "s=-"]
    if session_c:
        lines.append(f"c=IN {family} {address}")
    lines.append("t=0 0")
    for p in ports:
        lines.append(f"m=audio {p} RTP/AVP 0 8 101")
        if media_c:
            lines.append(f"c=IN {family} {address}")
        lines.append("a=rtpmap:0 PCMU/8000")
        if extra:
            lines.append(extra.replace("PORT1", str(p + 1)))
    return eol.join(lines) + eol


@attrs.frozen
class Flow:
    name: str
    flags: str = ""
    offer: str | None = None  # the INVITE's SDP
    answer: str | None = None  # the 2xx's SDP (None: a 486 ends the call)
    ack: str | None = None  # the ACK's SDP
    code: int = 200


FLOWS = [
    Flow("offer_answer", "co", sdp("10.0.0.5", media_c=True, extra="a=rtcp:PORT1"),
         sdp("192.168.1.9", (7000,))),
    Flow("late_offer", "co", None, sdp("192.168.1.9", (7000,)), sdp("10.0.0.5")),
    Flow("two_streams_486", "", sdp("10.0.0.5", (6000, 6002), "a=rtcp:PORT1 IN IP4 10.0.0.5"),
         code=486),
    Flow("reply_183_then_200", "", sdp("10.0.0.5"), sdp("192.168.1.9", (7000,)), code=183),
    *[Flow(f"flags_{f or 'none'}", f, sdp("10.0.0.5"), sdp("192.168.1.9", (7000,)))
      for f in ("a", "w", "ie", "r", "f", "1", "x", "z20", "q")],
    Flow("origin_differs", "", sdp("10.0.0.5", origin="10.9.9.9"), code=486),
    Flow("session_and_media_c", "", sdp("10.0.0.5", media_c=True), code=486),
    Flow("session_and_media_c_flag_c", "c", sdp("10.0.0.5", media_c=True), code=486),
    Flow("media_c_only", "", sdp("10.0.0.5", (6000, 6002), media_c=True, session_c=False),
         code=486),
    Flow("already_marked", "", sdp("10.0.0.5", extra="a=nortpproxy:yes"), code=486),
    Flow("already_marked_f", "f", sdp("10.0.0.5", extra="a=nortpproxy:yes"), code=486),
    Flow("on_hold", "", sdp("0.0.0.0"), code=486),
    Flow("lf_endings", "", sdp("10.0.0.5", eol="\n"), code=486),
    Flow("ipv6_sdp", "", sdp("fd00::5", family="IP6"), code=486),
    Flow("disabled_stream", "", sdp("10.0.0.5", (6000, 0)), code=486),
]


class Ua:
    """The caller and the callee sockets of one server, and what they got."""

    def __init__(self, server_port: int) -> None:
        self.server = ("127.0.0.1", server_port)
        self.uac = _udp()
        self.uas = _udp()

    @property
    def uas_port(self) -> int:
        return int(self.uas.getsockname()[1])

    def close(self) -> None:
        self.uac.close()
        self.uas.close()

    def _request(self, method: str, callid: str, cseq: int, flags: str, body: str | None,
                 to_tag: str = "") -> bytes:
        uac_port = self.uac.getsockname()[1]
        lines = [f"{method} sip:bob@127.0.0.1:{self.uas_port} SIP/2.0",
                 f"Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-{callid}-{method}{cseq};rport",
                 "Max-Forwards: 70", "From: <sip:alice@example.com>;tag=ft1",
                 f"To: <sip:bob@example.com>{to_tag}", f"Call-ID: {callid}",
                 f"CSeq: {cseq} {method}", f"Contact: <sip:alice@127.0.0.1:{uac_port}>",
                 f"X-Flags: {flags}"]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body or '')}")
        return ("\r\n".join(lines) + "\r\n\r\n" + (body or "")).encode()

    def reply(self, req: SipMsg, code: int, body: str | None) -> None:
        """Sent where the top Via says (RFC 3261 18.2.2): the server's process that relayed it."""
        via = req.via
        self.uas.sendto(self._reply(req, code, body), (via.host, via.port or 5060))

    def _reply(self, req: SipMsg, code: int, body: str | None) -> bytes:
        lines = [f"SIP/2.0 {code} {'OK' if code == 200 else 'Other'}"]
        lines += [f"Via: {v}" for v in req.headers("via")]
        lines += [f"From: {req.header('from')}", f"To: {req.header('to')};tag=tt1",
                  f"Call-ID: {req.call_id}", f"CSeq: {req.header('cseq')}",
                  f"Contact: <sip:bob@192.168.1.9:{self.uas_port}>",
                  f"X-Flags: {req.header('x-flags') or ''}"]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body or '')}")
        return ("\r\n".join(lines) + "\r\n\r\n" + (body or "")).encode()

    def _recv(self, sock: socket.socket, first_line: str) -> SipMsg:
        while True:
            data, _ = sock.recvfrom(65535)
            if data.startswith(first_line.encode()):
                return parse_datagram(data)

    def run(self, flow: Flow, callid: str) -> dict[str, object]:
        """The flow: INVITE, (183,) final reply, ACK, BYE when answered. What each side got."""
        seen: dict[str, object] = {}
        self.uac.sendto(self._request("INVITE", callid, 1, flow.flags, flow.offer), self.server)
        inv = self._recv(self.uas, "INVITE")
        seen["invite_sdp"] = inv.body.decode()
        seen["invite_rc"] = inv.header("x-rc")
        if flow.code == 183:
            self.reply(inv, 183, flow.answer)
            seen["183_sdp"] = self._recv(self.uac, "SIP/2.0 183").body.decode()
        final = 486 if flow.code == 486 else 200
        self.reply(inv, final, flow.answer if final == 200 else None)
        got = self._recv(self.uac, f"SIP/2.0 {final}")
        seen["final_sdp"] = got.body.decode()
        if final != 200:
            self.uac.sendto(self._request("ACK", callid, 1, flow.flags, None, ";tag=tt1"),
                            self.server)
            return seen
        self.uac.sendto(self._request("ACK", callid, 1, flow.flags, flow.ack, ";tag=tt1"),
                        self.server)
        ack = self._recv(self.uas, "ACK")
        seen["ack_sdp"] = ack.body.decode()
        seen["ack_rc"] = ack.header("x-rc")
        self.uac.sendto(self._request("BYE", callid, 2, flow.flags, None, ";tag=tt1"),
                        self.server)
        bye = self._recv(self.uas, "BYE")
        seen["bye_rc"] = bye.header("x-rc")
        self.reply(bye, 200, None)
        self._recv(self.uac, "SIP/2.0 200")
        return seen


def _udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(8)
    return s


def normalize(seen: dict[str, object], media_min: int) -> dict[str, object]:
    """The relay's ports (numbered in order of appearance) instead of their values."""
    names: dict[int, str] = {}

    def port(m: re.Match[str]) -> str:
        p = int(m.group(0))
        if not media_min <= p <= media_min + 401:
            return m.group(0)
        if p - 1 in names and p not in names:
            return names[p - 1] + "+1"
        return names.setdefault(p, f"P{len(names)}")

    return {k: re.sub(r"\b\d{4,5}\b", port, v) if isinstance(v, str) else v
            for k, v in sorted(seen.items())}


@attrs.define
class Side:
    name: str
    ua: Ua


@contextmanager
def both_servers(base: Path, rtpsock: str) -> Iterator[tuple[Side, Side]]:
    """Kamailio and kemi on the config, each with its caller and callee sockets."""
    sides: list[Side] = []
    procs: list[KamailioProcess | KemiProcess] = []
    try:
        for name in ("kamailio", "kemi"):
            d = base / name
            d.mkdir()
            port = free_port()
            ua = Ua(port)
            sides.append(Side(name, ua))
            cfg = d / "kamailio.cfg"
            cfg.write_text(CFG.format(
                port=port, uas=ua.uas_port, rtpsock=rtpsock,
                ctl=d / ("ctl" if name == "kamailio" else "kemi_ctl"),
                mpath=f'mpath="{KAMAILIO_MPATH}"' if name == "kamailio" else ""))
            proc: KamailioProcess | KemiProcess = (
                KamailioProcess(cfg, d, f"unix:{d / 'ctl'}") if name == "kamailio"
                else KemiProcess(cfg, d))
            procs.append(proc.start())
        yield sides[0], sides[1]
    finally:
        for p in procs:
            p.stop()
        for s in sides:
            s.ua.close()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RtpEngineProcess, Side, Side]]:
    base = tmp_path_factory.mktemp("rtpproxy")
    with RtpEngineProcess(base) as rtp, both_servers(base, rtp.sock) as (kamailio, kemi):
        yield rtp, kamailio, kemi


def _commands(rtp: RtpEngineProcess, callid: str) -> list[str]:
    """The commands for one call; the Call-ID and a branch the server made (flag 1 on a reply
    names the server's own Via) written as names."""
    out = [c.replace(callid, "CALLID") for c in rtp.commands(f" {callid}")]
    return [re.sub(r"CALLID;z9hG4bK(?!-)\S*", "CALLID;BRANCH", c) for c in out]


@pytest.mark.parametrize("flow", FLOWS, ids=[f.name for f in FLOWS])
def test_same_commands_and_sdp_as_kamailio(setup: tuple[RtpEngineProcess, Side, Side],
                                           flow: Flow) -> None:
    rtp, kamailio, kemi = setup
    expected = normalize(kamailio.ua.run(flow, f"{flow.name}-k"), rtp.media_min)
    got = normalize(kemi.ua.run(flow, f"{flow.name}-e"), rtp.media_min)
    assert got == expected
    rtp.flush()
    # rtpengine's threads may log a command a moment after a later one: give them time
    theirs, ours = [], ["?"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        theirs, ours = _commands(rtp, f"{flow.name}-k"), _commands(rtp, f"{flow.name}-e")
        if ours == theirs:
            break
        rtp.flush()
    assert ours == theirs


def test_the_relay_was_used(setup: tuple[RtpEngineProcess, Side, Side]) -> None:
    """Not vacuous: the callee got the relay's address and port, and rtpengine saw U and L."""
    rtp, _, kemi = setup
    flow = FLOWS[0]
    seen = kemi.ua.run(flow, "used-e")
    assert "c=IN IP4 127.0.0.1" in str(seen["invite_sdp"])
    assert "m=audio 6000 " not in str(seen["invite_sdp"])
    rtp.flush()
    cmds = rtp.commands(" used-e ")
    assert [c[0] for c in cmds] == ["U", "L", "D", "D"], cmds



@pytest.fixture(scope="module")
def without_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Side, Side, Path]]:
    """Both servers pointed at a control port nobody listens on."""
    base = tmp_path_factory.mktemp("rtpproxy_down")
    with both_servers(base, f"udp:127.0.0.1:{free_port()}") as (kamailio, kemi):
        yield kamailio, kemi, base / "kemi"


@pytest.mark.parametrize("flow", FLOWS[:2], ids=[f.name for f in FLOWS[:2]])
def test_relay_down_call_goes_on_as_with_kamailio(without_relay: tuple[Side, Side, Path],
                                                  flow: Flow) -> None:
    """No relay: every function returns its error code, the SDP goes through untouched and
    the call completes, on both servers alike; kemi logs why."""
    kamailio, kemi, kemi_dir = without_relay
    expected = kamailio.ua.run(flow, f"{flow.name}-down-k")
    got = kemi.ua.run(flow, f"{flow.name}-down-e")
    assert got == expected
    if flow.offer:
        assert got["invite_sdp"] == flow.offer
        assert got["invite_rc"] == "-3"
    log = (kemi_dir / "kemi.log").read_text()
    assert "no available proxies" in log
    assert "support for RTP proxy" in log  # disabled at start, as Kamailio says it
