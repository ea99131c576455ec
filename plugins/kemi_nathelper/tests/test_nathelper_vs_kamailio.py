"""nathelper's functions on kemi and on Kamailio 5.6, side by side, over real sockets.

One native kamailio.cfg runs on both servers: each request names the function to call (X-Op)
and its arguments (X-Arg ...); the script records the return code and the variables the
function sets in headers, then forwards the request statelessly to a capture socket. The test
compares what each server forwarded: R-URI, Contact, the recorded values and the SDP body.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from kemi_core.sip import parse_datagram
from kemi_core.testing import (
    KAMAILIO_MPATH,
    KamailioProcess,
    KemiProcess,
    free_port,
    kamailio_available,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not kamailio_available("nathelper.so", "textops.so"),
                       reason="Kamailio 5.6 with its nathelper module is not installed"),
]

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
children=1
listen=udp:127.0.0.1:{port}
{mpath}
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "nathelper.so"
loadmodule "ctl.so"
modparam("ctl", "binrpc", "unix:{ctl}")
modparam("nathelper", "received_avp", "$avp(RECEIVED)")

request_route {{
    $var(rc) = 0;
{calls}
    append_hf("X-Rc: $var(rc)\\r\\n");
    append_hf("X-Du: $du\\r\\n");
    append_hf("X-Received: $avp(RECEIVED)\\r\\n");
    append_hf("X-Alias: $avp(alias)\\r\\n");
    append_hf("X-Rr: $rr_count $rr_top_count\\r\\n");
    $du = "sip:127.0.0.1:{capture}";
    forward();
}}
"""

#: X-Op -> the call the script makes for it (literal arguments: Kamailio 5.6 does not
#: evaluate variables in nat_uac_test's and fix_nated_sdp's flags).
OPS = {
    **{f"nat_uac_test_{f}": f'nat_uac_test("{f}")' for f in (1, 2, 4, 8, 16, 32, 64, 128, 256, 264, 19)},
    "fix_nated_contact": "fix_nated_contact()",
    "fix_nated_register": "fix_nated_register()",
    "set_contact_alias": "set_contact_alias()",
    "set_contact_alias_trim": 'set_contact_alias("1")',
    "add_contact_alias": "add_contact_alias()",
    "add_contact_alias_addr": 'add_contact_alias("$hdr(X-Ip)", "$hdr(X-Port)", "$hdr(X-Proto)")',
    "handle_ruri_alias": "handle_ruri_alias()",
    "handle_ruri_alias_first": 'handle_ruri_alias("0")',
    "handle_ruri_alias_last": 'handle_ruri_alias("1")',
    "is_rfc1918": 'is_rfc1918("$hdr(X-Arg)")',
    "add_rcv_param": "add_rcv_param()",
    "add_rcv_param_uri": 'add_rcv_param("1")',
    **{f"fix_nated_sdp_{f}": f'fix_nated_sdp("{f}")' for f in (1, 2, 4, 8, 15)},
    "fix_nated_sdp_ip": 'fix_nated_sdp("3", "192.0.2.99")',
    "set_alias_to_pv": 'set_alias_to_pv("$avp(alias)")',
}
CALLS = "\n".join(f'    if ($hdr(X-Op) == "{op}") {{ {call}; $var(rc) = $rc; }}'
                  for op, call in OPS.items())

SDP = ("v=0\r\no=u 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n"
       "m=audio 6000 RTP/AVP 0\r\nc=IN IP4 10.0.0.5\r\na=rtcp:6001 IN IP4 10.0.0.5\r\n"
       "a=rtpmap:0 PCMU/8000\r\n")


def request(op: str, *, ruri: str = "sip:bob@127.0.0.1", via: str = "10.0.0.5:5060",
            contact: str | None = "<sip:alice@10.0.0.5:5060;ob>;expires=60",
            extra: str = "", body: str = "", method: str = "INVITE") -> bytes:
    lines = [f"{method} {ruri} SIP/2.0", f"Via: SIP/2.0/UDP {via};branch=z9hG4bK-{op};rport",
             "Max-Forwards: 70", "From: <sip:alice@example.com>;tag=ft1",
             "To: <sip:bob@example.com>", f"Call-ID: nh-{op}", f"CSeq: 1 {method}",
             f"X-Op: {op}"]
    if contact is not None:
        lines.append(f"Contact: {contact}")
    lines += [h for h in extra.split("\r\n") if h]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


CASES: list[tuple[str, bytes]] = [
    *[(f"uac_test_{f}", request(f"nat_uac_test_{f}", body=SDP))
      for f in (1, 2, 4, 8, 16, 32, 64, 128, 256, 19)],
    ("uac_test_public", request("nat_uac_test_19", via="127.0.0.1:{src}",
                                contact="<sip:alice@127.0.0.1:{src}>")),
    ("uac_test_no_port", request("nat_uac_test_16", via="127.0.0.1")),
    ("uac_test_host_name", request("nat_uac_test_2", via="ua.example.com")),
    ("uac_test_sdp_public", request("nat_uac_test_264", body=SDP.replace("10.0.0.5", "127.0.0.1"))),
    ("fix_contact", request("fix_nated_contact")),
    ("fix_contact_noport", request("fix_nated_contact", contact="\"Al\" <sip:alice@10.0.0.5>")),
    ("fix_contact_bare", request("fix_nated_contact", contact="sip:alice@10.0.0.5:5070")),
    ("fix_register", request("fix_nated_register", method="REGISTER")),
    ("alias", request("set_contact_alias")),
    ("alias_bare", request("set_contact_alias", contact="sip:alice@10.0.0.5:5070;expires=30")),
    ("alias_trim", request("set_contact_alias_trim",
                           contact="<sip:alice@10.0.0.5:5060;alias=1.2.3.4~5~1>")),
    ("alias_twice", request("set_contact_alias",
                            contact="<sip:alice@10.0.0.5:5060;alias=1.2.3.4~5~1>")),
    ("add_alias", request("add_contact_alias")),
    ("add_alias_same", request("add_contact_alias", contact="<sip:alice@127.0.0.1:{src}>")),
    ("add_alias_same_udp", request("add_contact_alias",
                                   contact="<sip:alice@127.0.0.1:{src};transport=udp>")),
    ("add_alias_params", request("add_contact_alias",
                                 contact="<sip:alice@10.0.0.5;transport=tcp;ob>")),
    ("add_alias_bare", request("add_contact_alias", contact="sip:alice@10.0.0.5")),
    ("add_alias_addr", request("add_contact_alias_addr",
                               extra="X-Ip: 192.0.2.7\r\nX-Port: 5099\r\nX-Proto: tcp")),
    ("ruri_alias", request("handle_ruri_alias",
                           ruri="sip:bob@10.0.0.9:5060;alias=192.0.2.1~5077~1;x=y")),
    ("ruri_alias_tcp", request("handle_ruri_alias", ruri="sip:bob@10.0.0.9;alias=192.0.2.1~5077~2")),
    ("ruri_alias_none", request("handle_ruri_alias")),
    ("ruri_alias_last", request("handle_ruri_alias_last",
                                ruri="sip:bob@h;alias=192.0.2.1~1~1;x=2;alias=192.0.2.2~2~1;y")),
    ("ruri_alias_last_one", request("handle_ruri_alias_last", ruri="sip:bob@h;alias=192.0.2.1~1~1;x")),
    ("ruri_alias_first", request("handle_ruri_alias_first",
                                 ruri="sip:bob@h;alias=192.0.2.1~1~1;alias=192.0.2.2~2~1")),
    *[(f"rfc1918_{ip}", request("is_rfc1918", extra=f"X-Arg: {ip}"))
      for ip in ("10.1.2.3", "172.20.0.1", "192.168.9.9", "100.64.1.1", "192.0.0.5",
                 "192.0.0.200", "8.8.8.8", "127.0.0.1")],
    ("rcv_param", request("add_rcv_param")),
    ("rcv_param_uri", request("add_rcv_param_uri")),
    ("rcv_param_two", request("add_rcv_param",
                              contact="<sip:a@10.0.0.5>;q=0.5, <sip:b@10.0.0.6>")),
    *[(f"sdp_{f}", request(f"fix_nated_sdp_{f}", body=SDP)) for f in (1, 2, 4, 8, 15)],
    ("sdp_ip", request("fix_nated_sdp_ip", body=SDP)),
    ("sdp_none", request("fix_nated_sdp_2")),
    ("sdp_rtcp_port_only", request("fix_nated_sdp_2",
                                   body=SDP.replace("a=rtcp:6001 IN IP4 10.0.0.5", "a=rtcp:6001"))),
    ("alias_to_pv", request("set_alias_to_pv",
                            contact="<sip:alice@10.0.0.5:5060;alias=192.0.2.3~5090~2>")),
    ("rr_count", request("nat_uac_test_1", extra="Record-Route: <sip:p1;lr;r2=on>, "
                                               "<sip:p2;lr>\r\nRecord-Route: <sip:p3;lr>")),
]

COMPARED = ("x-rc", "x-du", "x-received", "x-alias", "x-rr", "contact")


class Server:
    def __init__(self, port: int, capture: socket.socket) -> None:
        self.port = port
        self.capture = capture

    def run(self, raw: bytes) -> dict[str, object]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            src = s.getsockname()[1]
            s.sendto(raw.replace(b"{src}", str(src).encode()), ("127.0.0.1", self.port))
            data, _ = self.capture.recvfrom(65535)
        msg = parse_datagram(data)
        out: dict[str, object] = {h: (msg.header(h) or "").replace(str(src), "SRC")
                                  for h in COMPARED}
        out["ruri"] = msg.ruri
        out["body"] = msg.body.decode().replace(str(src), "SRC")
        return out


def _capture() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    return s


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    base = tmp_path_factory.mktemp("nathelper")
    cap_k, cap_e = _capture(), _capture()
    kport, eport = free_port(), free_port()
    kdir, edir = base / "kamailio", base / "kemi"
    kdir.mkdir()
    edir.mkdir()
    kcfg = kdir / "kamailio.cfg"
    kcfg.write_text(CFG.format(calls=CALLS, port=kport, capture=cap_k.getsockname()[1],
                               ctl=kdir / "ctl", mpath=f'mpath="{KAMAILIO_MPATH}"'))
    ecfg = edir / "kamailio.cfg"
    ecfg.write_text(CFG.format(calls=CALLS, port=eport, capture=cap_e.getsockname()[1],
                               ctl=edir / "kemi_ctl", mpath=""))
    with KamailioProcess(kcfg, kdir, f"unix:{kdir / 'ctl'}"), KemiProcess(ecfg, edir):
        yield Server(kport, cap_k), Server(eport, cap_e)
    cap_k.close()
    cap_e.close()


@pytest.mark.parametrize(("name", "raw"), CASES, ids=[c[0] for c in CASES])
def test_same_as_kamailio(servers: tuple[Server, Server], name: str, raw: bytes) -> None:
    kamailio, kemi = servers
    expected = kamailio.run(raw)
    got = kemi.run(raw)
    assert got == expected


def test_last_alias_at_the_end(servers: tuple[Server, Server]) -> None:
    """A difference kept on purpose: Kamailio 5.6.3's handle_ruri_alias("1") fails (-1) when the
    last alias ends the R-URI; kemi consumes it, as the function is documented to."""
    raw = request("handle_ruri_alias_last", ruri="sip:bob@h;alias=192.0.2.1~1~1;alias=192.0.2.2~2~1")
    kamailio, kemi = servers
    assert kamailio.run(raw)["x-rc"] == "-1"
    got = kemi.run(raw)
    assert (got["x-rc"], got["x-du"], got["ruri"]) == ("1", "sip:192.0.2.2:2",
                                                      "sip:bob@h;alias=192.0.2.1~1~1")


def test_cases_exercise_the_functions(servers: tuple[Server, Server]) -> None:
    """The comparison is not vacuous: Kamailio changed the Contact and answered 1 and -1."""
    kamailio, _ = servers
    assert kamailio.run(request("set_contact_alias"))["contact"] != \
        "<sip:alice@10.0.0.5:5060;ob>;expires=60"
    assert kamailio.run(request("is_rfc1918", extra="X-Arg: 8.8.8.8"))["x-rc"] == "-1"
    assert kamailio.run(request("is_rfc1918", extra="X-Arg: 10.0.0.1"))["x-rc"] == "1"

