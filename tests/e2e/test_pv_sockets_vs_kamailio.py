"""Pseudo-variables a Kamailio config may use that kemi once refused as unknown, side by side
with Kamailio 5.6: the socket a request arrived on ($Rn $Ru $Rut $RAi $RAp $RAu $RAut), the
sender's ($sas $sut $prid), flags in hexadecimal ($mF $bF $sF), the destination set ($ds),
P-Preferred-Identity's parts ($pU $pd $pn), Diversion's parameters ($dir $dip), $bs, $rmid,
$Au and $AU; $fn and $tn beside them. Each printed by xlog for a few requests, on two listen
sockets (one named and advertising another address)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, request_text, side_by_side

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("sl.so", "pv.so", "xlog.so", "corex.so", "kex.so", "ctl.so"),
    reason="Kamailio 5.6 is not installed")]

NAMES = ("Rn Ru Rut RAi RAp RAu RAut sas sut prid mF bF sF ds pU pd pn dir dip bs rmid Au AU "
         "fn tn").split()
XLOGS = "\n".join(f'  xlog("L_ERR", "PV $ci {n}=[${n}]\\n");' for n in NAMES)
ROUTES = """listen=udp:127.0.0.1:{port2}
request_route {
  if ($hdr(X-Flags) != "") {
    setflag(3);
    setbflag(5);
    append_branch("sip:x@127.0.0.1:7777");
    append_branch("sip:y@127.0.0.1:7778", "0.5");
  }
XLOGS
  sl_send_reply("200", "OK");
  exit;
}
""".replace("XLOGS", XLOGS)

BODY = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"
REQUESTS = [
    ("INVITE", "X-Flags: 1\r\nP-Preferred-Identity: \"Pref Name\" <sip:pref@p.example.com>\r\n"
               "Diversion: <sip:div@d.example.com>;reason=unconditional;privacy=full\r\n"
               "Content-Type: application/sdp", BODY, '"A l" <sip:alice@a.example.com>;tag=f1'),
    ("OPTIONS", "", "", "<sip:carol@c.example.com>;tag=f2"),
]


def printed(log: str, port: int, port2: int) -> list[str]:
    return [line.split("PV ", 1)[1].replace(str(port2), "P2").replace(str(port), "P1")
            for line in log.splitlines() if "PV pv-" in line]


def run(port: int, port2: int, client: socket.socket) -> None:
    me = str(client.getsockname()[1])
    for n, (method, extra, body, frm) in enumerate(REQUESTS):
        for m, to in enumerate((port, port2)):
            text = request_text(method, ruri=f"sip:bob@127.0.0.1:{to}", call_id=f"pv-{n}{m}",
                                extra=extra, body=body, frm=frm, to="Bob <sip:bob@b.example.com>")
            client.sendto(text.replace("PORT", me).encode(), ("127.0.0.1", to))
            client.settimeout(5)
            assert client.recv(65535).startswith(b"SIP/2.0 200 ")


def test_pvs_read_as_kamailio_reads_them(tmp_path: Path) -> None:
    cfg = (cfg_preamble("sl", "pv", "xlog", "corex", "kex").replace(
        "listen=udp:127.0.0.1:{port}",
        'listen=udp:127.0.0.1:{port} advertise 198.51.100.9:5080 name "pub"') + ROUTES)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.bind(("127.0.0.1", 0))
        me = str(client.getsockname()[1])
        seen = {}
        with side_by_side(cfg, tmp_path) as pair:
            for who, port, server in (("kamailio", pair.kamailio_port, pair.kamailio),
                                      ("kemi", pair.kemi_port, pair.kemi)):
                cfg_text = (tmp_path / who / "kamailio.cfg").read_text()
                port2 = int(cfg_text.split("listen=udp:127.0.0.1:")[2].split()[0])
                run(port, port2, client)
                last = f"PV pv-11 {NAMES[-1]}="
                seen[who] = [line.replace(me, "CLIENT")
                             for line in printed(server.wait_log(last), port, port2)]
    assert len(seen["kamailio"]) == len(NAMES) * 4
    assert "pv-00 RAut=[sip:198.51.100.9:5080;transport=udp]" in seen["kamailio"]
    assert seen["kemi"] == seen["kamailio"], [
        (ours, theirs) for ours, theirs in zip(seen["kemi"], seen["kamailio"], strict=True)
        if ours != theirs]
