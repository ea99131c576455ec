"""loose_route() on in-dialog and preloaded requests, on kemi and on Kamailio 5.6 with the same
Lua script (KSR.rr.loose_route, then KSR.forward), over real sockets: what loose_route
returned and left in $du, and the request as the next hop gets it (its Request-URI and Route
headers). The Route sets: our own entry alone (the usual in-dialog request, which kemi's
compiled loose_route takes), with ;transport=udp, our entry without ;lr, a double Record-Route
(;r2=on), our entry then the next hop's (one line, two lines), a Route naming another port
(not us), a strict router before us (our entry in the Request-URI), our entry on a request
without a To tag (a preloaded Route set that ends at us)."""

from __future__ import annotations

import re
import socket
import uuid
from pathlib import Path

import pytest

from kemi_core.sip import parse_datagram
from kemi_core.testing import cfg_preamble, kamailio_available, side_by_side

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("rr.so", "app_lua.so"), reason="Kamailio 5.6 is not installed")]

CFG = cfg_preamble("sl", "rr", "pv", "textops", "app_lua") + """
modparam("app_lua", "load", "{dir}/lr.lua")
cfgengine "lua"
"""
SCRIPT = """
function ksr_request_route()
    local rc = KSR.rr.loose_route()
    KSR.hdr.append("X-LR: " .. rc .. " " .. (KSR.pv.get("$du") or "none") .. "\\r\\n")
    KSR.forward()
end
"""

# (method, Request-URI, Route lines, To tag): ME is the server's own host:port, DOWN the
# test's socket that receives what the server forwards
CASES = [
    ("ACK", "sip:b@127.0.0.1:DOWN", ["<sip:ME;lr;ftag=ft>"], True),
    ("BYE", "sip:b@127.0.0.1:DOWN", ["<sip:ME;transport=udp;lr;ftag=ft;did=1.2>"], True),
    ("BYE", "sip:b@127.0.0.1:DOWN", ["<sip:ME;ftag=ft>"], True),
    ("BYE", "sip:b@127.0.0.1:DOWN", ["<sip:ME;r2=on;lr;ftag=ft>, <sip:ME;r2=on;lr;ftag=ft>"],
     True),
    ("BYE", "sip:b@127.0.0.1:DOWN", ["<sip:ME;lr>, <sip:127.0.0.1:DOWN;lr>"], True),
    ("ACK", "sip:b@127.0.0.1:DOWN", ["<sip:ME;lr>", "<sip:127.0.0.1:DOWN;lr;x=1>"], True),
    ("BYE", "sip:b@127.0.0.1:5999", ["<sip:127.0.0.1:DOWN;lr>"], True),
    ("BYE", "sip:ME;lr;ftag=ft", ["<sip:b@127.0.0.1:DOWN>"], True),
    ("INVITE", "sip:b@127.0.0.1:DOWN", ["<sip:ME;lr>"], False),
]


def _request(method: str, ruri: str, routes: list[str], to_tag: bool, me: int) -> bytes:
    lines = [f"{method} {ruri} SIP/2.0",
             f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{uuid.uuid4().hex[:12]}",
             "From: <sip:a@127.0.0.1>;tag=ft",
             "To: <sip:b@127.0.0.1>" + (";tag=tt" if to_tag else ""),
             f"Call-ID: {uuid.uuid4().hex}", f"CSeq: 2 {method}",
             *[f"Route: {r}" for r in routes], "Max-Forwards: 5", "Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


def _routed(server: int, case: tuple[str, str, list[str], bool]) -> list[str]:
    """X-LR, the Request-URI and the Route lines of the request the server forwards."""
    method, ruri, routes, to_tag = case
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as down:
        up.bind(("127.0.0.1", 0))
        down.bind(("127.0.0.1", 0))
        down.settimeout(3)
        port = str(down.getsockname()[1])

        def fill(text: str) -> str:
            return text.replace("ME", f"127.0.0.1:{server}").replace("DOWN", port)

        data = _request(method, fill(ruri), [fill(r) for r in routes], to_tag,
                        up.getsockname()[1])
        up.sendto(data, ("127.0.0.1", server))
        msg = parse_datagram(down.recv(65535))

        def norm(text: str) -> str:
            return text.replace(f":{server}", ":ME").replace(f":{port}", ":DOWN")

        return [norm(msg.header("X-LR") or ""), norm(msg.ruri),
                *(norm(v) for v in msg.headers("route"))]


def test_loose_route_like_kamailio(tmp_path: Path) -> None:
    with side_by_side(CFG, tmp_path, files={"lr.lua": SCRIPT}) as pair:
        for case in CASES:
            got = {who: _routed(port, case)
                   for who, port in (("kemi", pair.kemi_port), ("kamailio", pair.kamailio_port))}
            assert got["kemi"] == got["kamailio"], (case, got)
            assert re.match(r"-?\d ", got["kemi"][0]), got
