"""record_route() then a stateless forward(), on kemi and on Kamailio 5.6 (native routes, UDP
and TCP listeners), over real sockets: the request forwarded over UDP (the transport it came
in on) carries one Record-Route entry, over TCP two (;r2=on on both, the TCP one on top),
decided when it is sent, from the socket it leaves from, whatever the R-URI said when
record_route ran (the R-URI says ;transport=tcp in both cases). The script does not see them
after record_route (Kamailio's lumps): X-Seen says what is_present_hf and $hdr read."""

from __future__ import annotations

import re
import socket
import uuid
from pathlib import Path

import pytest

from kemi_core.sip import parse_datagram
from kemi_core.testing import cfg_preamble, kamailio_available, side_by_side

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("rr.so", "textops.so"), reason="Kamailio 5.6 is not installed")]

CFG = cfg_preamble("sl", "rr", "pv", "textops", "xlog") + r"""listen=tcp:127.0.0.1:{port}
request_route {
  if ($rm == "ACK") { exit; }
  record_route();
  $ru = "sip:b@127.0.0.1:" + $hdr(X-To);
  if (is_present_hf("Record-Route")) { append_hf("X-Seen: yes $hdr(Record-Route)\r\n"); }
  else { append_hf("X-Seen: no $hdr(Record-Route)\r\n"); }
  forward();
}
"""


def _invite(me: int, to: str) -> bytes:
    lines = ["INVITE sip:b@127.0.0.1;transport=tcp SIP/2.0",
             f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{uuid.uuid4().hex[:12]}",
             "From: <sip:a@x>;tag=ft", "To: <sip:b@x>", f"Call-ID: {uuid.uuid4().hex}",
             "CSeq: 1 INVITE", "Max-Forwards: 5", f"X-To: {to}", "Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


def _record_routes(data: bytes, port: int) -> list[str]:
    msg = parse_datagram(data)
    return [msg.header("X-Seen") or "", *(re.sub(f":{port}([;>])", r":PORT\1", v)
                                          for v in msg.headers("record-route"))]


def _forwarded(server: int, over: str) -> list[str]:
    """X-Seen and the Record-Route of an INVITE from UDP that the server forwards ``over``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
        up.bind(("127.0.0.1", 0))
        me = up.getsockname()[1]
        if over == "udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as down:
                down.bind(("127.0.0.1", 0))
                down.settimeout(3)
                up.sendto(_invite(me, str(down.getsockname()[1])), ("127.0.0.1", server))
                return _record_routes(down.recv(65535), server)
        with socket.socket() as lst:
            lst.bind(("127.0.0.1", 0))
            lst.listen(1)
            lst.settimeout(3)
            up.sendto(_invite(me, f"{lst.getsockname()[1]};transport=tcp"), ("127.0.0.1", server))
            conn, _ = lst.accept()
            with conn:
                conn.settimeout(3)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65535)
                return _record_routes(data, server)


def test_forward_record_route_per_socket_like_kamailio(tmp_path: Path) -> None:
    with side_by_side(CFG, tmp_path) as pair:
        for over, expected in (
                ("udp", ["no <null>", "<sip:127.0.0.1:PORT;lr;ftag=ft>"]),
                ("tcp", ["no <null>", "<sip:127.0.0.1:PORT;transport=tcp;r2=on;lr;ftag=ft>",
                         "<sip:127.0.0.1:PORT;r2=on;lr;ftag=ft>"])):
            got = {who: _forwarded(port, over)
                   for who, port in (("kemi", pair.kemi_port), ("kamailio", pair.kamailio_port))}
            assert got == {"kemi": expected, "kamailio": expected}, over
