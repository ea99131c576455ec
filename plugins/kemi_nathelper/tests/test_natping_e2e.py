"""NAT keepalives from a real server, kemi beside Kamailio 5.6 on the same kamailio.cfg.

Three UAs register from their own UDP sockets with a private address in the Contact: alice is
marked for SIP pings (sipping_bflag), bob for plain UDP pings, carol is not marked behind NAT.
Each server must ping alice with an OPTIONS and bob with 4 zero bytes, at the address they
registered from, from its listen socket, and never ping carol (ping_nated_only). kemi's pings
are compared with Kamailio's header by header (branch, tags and Call-ID aside).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kemi_core.sip import SipMsg, parse_datagram
from kemi_core.testing import (
    KAMAILIO_MPATH,
    KamailioProcess,
    KemiProcess,
    free_port,
    kamailio_available,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not kamailio_available("nathelper.so", "registrar.so", "usrloc.so"),
                       reason="Kamailio 5.6 with nathelper, usrloc and registrar is not installed"),
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
loadmodule "kex.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "nathelper.so"
loadmodule "ctl.so"
modparam("ctl", "binrpc", "unix:{ctl}")
modparam("nathelper", "natping_interval", 2)
modparam("nathelper", "ping_nated_only", 1)
modparam("nathelper", "sipping_bflag", 7)
modparam("nathelper", "sipping_from", "sip:pinger@kamailio.org")
modparam("nathelper|registrar", "received_avp", "$avp(RECEIVED)")
modparam("usrloc", "nat_bflag", 6)

request_route {{
    force_rport();
    if ($hdr(X-Nat) != "no" && nat_uac_test("19")) {{
        fix_nated_register();
        setbflag(6);
        if ($hdr(X-Sipping) == "yes") setbflag(7);
    }}
    save("location");
}}
"""

USERS = {"alice": ("yes", "yes"), "bob": ("yes", "no"), "carol": ("no", "no")}


def register(sock: socket.socket, port: int, user: str) -> None:
    nat, sipping = USERS[user]
    raw = (f"REGISTER sip:127.0.0.1 SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-{user}-{port};rport\r\n"
           f"Max-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=r1\r\n"
           f"To: <sip:{user}@127.0.0.1>\r\nCall-ID: reg-{user}-{port}\r\nCSeq: 1 REGISTER\r\n"
           f"Contact: <sip:{user}@10.0.0.5:5060;ob>;expires=120\r\n"
           f"X-Nat: {nat}\r\nX-Sipping: {sipping}\r\nContent-Length: 0\r\n\r\n")
    sock.sendto(raw.encode(), ("127.0.0.1", port))
    data, _ = sock.recvfrom(65535)
    assert data.startswith(b"SIP/2.0 200"), data


class Pings:
    """What each UA socket received from one server, until every expected ping is there."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.socks = {}
        for user in USERS:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            s.settimeout(5)
            self.socks[user] = s
        self.got: dict[str, list[tuple[bytes, tuple[str, int]]]] = {u: [] for u in USERS}

    def register_all(self) -> None:
        for user, s in self.socks.items():
            register(s, self.port, user)
            s.setblocking(False)

    def poll(self) -> None:
        for user, s in self.socks.items():
            while True:
                try:
                    self.got[user].append(s.recvfrom(65535))
                except BlockingIOError:
                    break

    def done(self) -> bool:
        return len(self.got["alice"]) >= 2 and len(self.got["bob"]) >= 2

    def answer(self, data: bytes) -> None:
        """A 200 for alice's OPTIONS, as a UA sends it back through the NAT."""
        msg = parse_datagram(data)
        via = msg.header("via")
        reply = (f"SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: {msg.header('from')}\r\n"
                 f"To: {msg.header('to')};tag=ua\r\nCall-ID: {msg.call_id}\r\n"
                 f"CSeq: {msg.header('cseq')}\r\nContent-Length: 0\r\n\r\n")
        self.socks["alice"].sendto(reply.encode(), ("127.0.0.1", self.port))

    def close(self) -> None:
        for s in self.socks.values():
            s.close()


def _write(dirpath: Path, port: int, kamailio: bool) -> Path:
    cfg = dirpath / "kamailio.cfg"
    cfg.write_text(CFG.format(port=port, ctl=dirpath / ("ctl" if kamailio else "kemi_ctl"),
                              mpath=f'mpath="{KAMAILIO_MPATH}"' if kamailio else ""))
    return cfg


@pytest.fixture
def both(tmp_path: Path) -> Iterator[tuple[Pings, Pings, KemiProcess]]:
    kdir, edir = tmp_path / "kamailio", tmp_path / "kemi"
    kdir.mkdir()
    edir.mkdir()
    kport, eport = free_port(), free_port()
    kp, ep = Pings(kport), Pings(eport)
    with KamailioProcess(_write(kdir, kport, True), kdir, f"unix:{kdir / 'ctl'}"), \
            KemiProcess(_write(edir, eport, False), edir) as kemi:
        yield kp, ep, kemi
    kp.close()
    ep.close()


def _shape(msg: SipMsg) -> list[tuple[str, str]]:
    """Header names in order with the values that must match (volatile ones blanked)."""
    out = []
    for name, value in msg.iter_headers():
        key = name.lower()
        if key == "via":
            value = value.split(";branch=")[0].rsplit(":", 1)[0]  # SIP/2.0/UDP host
        elif key == "from":
            value = value.split(";tag=")[0]
        elif key == "call-id":
            value = "x"
        out.append((name, value))
    return out


def test_keepalives_like_kamailio(both: tuple[Pings, Pings, KemiProcess]) -> None:
    kam, kemi, proc = both
    kam.register_all()
    kemi.register_all()
    deadline = time.monotonic() + 15  # two intervals of 2 s, with room for a loaded machine
    while time.monotonic() < deadline and not (kam.done() and kemi.done()):
        kam.poll()
        kemi.poll()
        time.sleep(0.05)
    assert kam.done(), kam.got
    assert kemi.done(), kemi.got
    for pings in (kam, kemi):
        assert pings.got["carol"] == []
        assert all(data == b"\x00\x00\x00\x00" for data, _ in pings.got["bob"])
        assert all(src == ("127.0.0.1", pings.port) for u in USERS for _, src in pings.got[u])
    ours = parse_datagram(kemi.got["alice"][0][0])
    theirs = parse_datagram(kam.got["alice"][0][0])
    assert (ours.method, ours.ruri) == (theirs.method, theirs.ruri) == (
        "OPTIONS", "sip:alice@10.0.0.5:5060;ob")
    assert _shape(ours) == _shape(theirs)
    # the UA's answer is taken by the server, not forwarded or logged as an error
    kemi.answer(kemi.got["alice"][0][0])
    proc.wait_log("worker 2 ready")
    assert "ERROR" not in proc.log()
