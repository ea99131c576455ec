"""The Record-Route entries each branch of an INVITE carries through kemi_websocket.webrtc_cfg
(record_route() before registrar.lookup), on kemi and on Kamailio 5.6: one entry when the
branch leaves from the socket the INVITE came in on, two (both ;r2=on, the outbound one on
top) when it leaves from another one, decided per branch when it is sent (rr's
enable_double_rr 1), whatever the R-URI said when record_route ran.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from kemi_core.sip import SipMsg, parse_datagram
from kemi_core.testing import KAMAILIO_MPATH, kamailio_available
from kemi_websocket.testing import Ua, _Base
from kemi_websocket.testing import WebrtcServer as Server
from kemi_websocket.webrtc_cfg import KAMAILIO_MODULES

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["kemi", "kamailio"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Server]:
    """One worker: a UDP reply must reach the worker that holds the TLS caller's transaction
    (kemi's workers share no transactions; the kernel picks the UDP socket's worker)."""
    kind = request.param
    if kind == "kamailio" and not kamailio_available(*KAMAILIO_MODULES):
        pytest.skip("Kamailio 5.6 with its tls, websocket, xhttp and Lua modules is not installed")
    with Server(kind, tmp_path_factory.mktemp(f"rr-{kind}"), children=1,
                kamailio_mpath=KAMAILIO_MPATH) as srv:
        yield srv


class UdpSip(_Base):
    """A SIP UA's UDP socket that talks to the server's UDP port."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.server = ("127.0.0.1", port)
        self.received: list[SipMsg] = []

    def send(self, text: str | bytes) -> None:
        self.sock.sendto(text.encode() if isinstance(text, str) else text, self.server)

    def _consume(self, data: bytes) -> None:
        self.received.append(parse_datagram(data))


def _udp(server: Server, user: str) -> Ua:
    client = UdpSip(server.ports.udp)
    ua = Ua(client, user, "UDP")
    ua.host = f"127.0.0.1:{client.local()[1]}"  # a UDP phone: reached at its address
    return ua


def _register(ua: Ua) -> None:
    port = ua.client.local()[1]
    t = "" if ua.transport == "UDP" else ";transport=tls"
    aor = f"sip:{ua.user}@127.0.0.1"
    ua.client.send(ua.request("REGISTER", "sip:127.0.0.1", aor,
                              f"Contact: <sip:{ua.user}@127.0.0.1:{port}{t}>;expires=600\r\n"))
    assert ua.client.expect(lambda m: not m.is_request).status == 200


def _shape(server: Server, values: list[str]) -> list[str]:
    """Record-Route values with the server's ports named (they differ per run)."""
    ports = server.ports
    out = []
    for v in values:
        for name, port in (("UDP", ports.udp), ("TLS", ports.tls)):
            v = v.replace(f":{port};", f":{name};").replace(f":{port}>", f":{name}>")
        out.append(v)
    return out


def _invite_record_routes(server: Server, caller: Ua, callees: list[Ua]) -> list[list[str]]:
    """Each callee's Record-Route of the caller's INVITE to the callees' AOR; every callee
    answers 480 (the proxy ACKs it; the 480 going up is not looked at: over TLS without
    ;rport neither server reaches the caller's .invalid Via)."""
    callee_aor = f"sip:{callees[0].user}@127.0.0.1"
    caller.client.send(caller.request("INVITE", callee_aor, callee_aor,
                                      f"Contact: <sip:{caller.user}@{caller.host}>\r\n"))
    seen: list[list[str]] = []
    for ua in callees:
        inv = ua.client.expect(lambda m: m.is_request and m.method == "INVITE", 5)
        seen.append(_shape(server, inv.headers("record-route")))
        ua.client.reply_to(inv, 480, "Temporarily Unavailable")
        ua.client.expect(lambda m: m.is_request and m.method == "ACK", 5)
    return seen


ONE_TLS = ["<sip:127.0.0.1:TLS;transport=tls;lr;ftag=fcaller>"]
ONE_UDP = ["<sip:127.0.0.1:UDP;lr;ftag=fcaller>"]
TLS_OUT = ["<sip:127.0.0.1:TLS;transport=tls;r2=on;lr;ftag=fcaller>",
           "<sip:127.0.0.1:UDP;r2=on;lr;ftag=fcaller>"]
UDP_OUT = ["<sip:127.0.0.1:UDP;r2=on;lr;ftag=fcaller>",
           "<sip:127.0.0.1:TLS;transport=tls;r2=on;lr;ftag=fcaller>"]


@pytest.mark.parametrize("caller_kind,callee_kind,expected", [
    ("tls", "tls", ONE_TLS), ("udp", "tls", TLS_OUT), ("tls", "udp", UDP_OUT),
    ("udp", "udp", ONE_UDP),
])
def test_record_route_per_transport_pair(server: Server, caller_kind: str, callee_kind: str,
                                         expected: list[str]) -> None:
    callee_user = f"rr{caller_kind}{callee_kind}"
    caller = server.tls("caller") if caller_kind == "tls" else _udp(server, "caller")
    callee = server.tls(callee_user) if callee_kind == "tls" else _udp(server, callee_user)
    with caller.client, callee.client:
        _register(callee)
        assert _invite_record_routes(server, caller, [callee]) == [expected]


def test_fork_to_a_udp_and_a_tls_branch(server: Server) -> None:
    """One INVITE over TLS, forked by lookup to a UDP and a TLS contact: each branch gets the
    entries of the socket it leaves from."""
    caller = server.tls("caller")
    by_udp, by_tls = _udp(server, "forky"), server.tls("forky")
    with caller.client, by_udp.client, by_tls.client:
        _register(by_udp)
        _register(by_tls)
        seen: dict[str, list[str]] = {}
        errors: list[BaseException] = []

        def take(ua: Ua, key: str) -> None:
            try:
                inv = ua.client.expect(lambda m: m.is_request and m.method == "INVITE", 5)
                seen[key] = _shape(server, inv.headers("record-route"))
                ua.client.reply_to(inv, 480, "Temporarily Unavailable")
                ua.client.expect(lambda m: m.is_request and m.method == "ACK", 5)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)

        threads = [threading.Thread(target=take, args=(by_udp, "udp")),
                   threading.Thread(target=take, args=(by_tls, "tls"))]
        aor = "sip:forky@127.0.0.1"
        caller.client.send(caller.request("INVITE", aor, aor,
                                          f"Contact: <sip:caller@{caller.host}>\r\n"))
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert not errors, errors
        assert seen == {"udp": UDP_OUT, "tls": ONE_TLS}
