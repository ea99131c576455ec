""";received and ;rport= on the sender's Via (RFC 3261 18.2.1, RFC 3581), side by side with
Kamailio 5.6: the top Via of replies made here (sl_send_reply, t_reply, with and without
force_rport) and of requests sent on (forward, t_relay, force_rport then forward), for Vias
with and without ;rport (bare, with a value), with an old ;received, a host that is not the
source, parameters around them, spaces and a quoted ';'. Both servers must write the same text."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, request_text, side_by_side
from kemi_core.testing.udp_client import pending_datagrams

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("sl.so", "pv.so", "tm.so", "textops.so", "ctl.so"),
    reason="Kamailio 5.6 is not installed")]

ROUTES = r"""
request_route {
  if ($rU == "sl") { sl_send_reply("200", "OK"); exit; }
  if ($rU == "slf") { force_rport(); sl_send_reply("200", "OK"); exit; }
  if ($rU == "tm") { t_newtran(); t_reply("202", "Accepted"); exit; }
  if ($rU == "tmf") { force_rport(); t_newtran(); t_reply("202", "Accepted"); exit; }
  $du = "sip:127.0.0.1:" + $hdr(X-Up);
  if ($rU == "fwd") { forward(); exit; }
  if ($rU == "fwdf") { force_rport(); forward(); exit; }
  if ($rU == "rel") { t_relay(); exit; }
}
"""
#: the sender's Via after "SIP/2.0/UDP " ({me}: the client's own port, so replies reach it)
VIAS = [
    "127.0.0.1:{me}", "127.0.0.1:{me};rport", "127.0.0.1;rport", "127.0.0.1:{me};rport=1234",
    "10.1.1.1:5070;rport", "10.1.1.1:5070;x=1;rport;y=2", "10.1.1.1;rport;x=1",
    "[::1]:5070;rport", "127.0.0.1:{me};received=127.0.0.1",
    "127.0.0.1:{me};x=1;received=10.9.9.9;y", "10.1.1.1:5070;received=10.9.9.9;rport",
    "127.0.0.1:{me};rport;received=127.0.0.1", "127.0.0.1:{me} ; rport ; x = 1",
    '127.0.0.1:{me};x="a;b";rport', "host.example.com:5070", "10.1.1.1:5070",
]
REPLIED = ("sl", "slf", "tm", "tmf")  # (a Via without rport whose host is not us: no answer)
SENT_ON = ("fwd", "fwdf", "rel")


def reaches_client(via: str, user: str) -> bool:
    return "{me}" in via or "rport" in via or user.endswith("f")


@pytest.fixture(scope="module")
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in (client, upstream):
        s.bind(("127.0.0.1", 0))
        s.settimeout(5)
    yield client, upstream
    client.close()
    upstream.close()


def top_via(data: bytes, index: int = 0) -> str:
    vias = [line for line in data.decode().split("\r\n") if line.lower().startswith("via:")]
    return vias[index]


def answer_200(request: bytes) -> bytes:
    lines = request.decode().split("\r\n")
    kept = [line for line in lines
            if line.split(":")[0].lower() in ("via", "from", "to", "call-id", "cseq")]
    return ("SIP/2.0 200 OK\r\n" + "\r\n".join(kept) + "\r\nContent-Length: 0\r\n\r\n").encode()


def run(port: int, client: socket.socket, upstream: socket.socket, who: str) -> dict[str, str]:
    me, up = client.getsockname()[1], upstream.getsockname()[1]
    seen: dict[str, str] = {}
    for user in REPLIED + SENT_ON:
        for n, via in enumerate(VIAS):
            if user in REPLIED and not reaches_client(via, user):
                continue
            pending_datagrams(client)
            pending_datagrams(upstream)
            head = f"Via: SIP/2.0/UDP {via.format(me=me)};branch=z9hG4bK-{user}-{n}"
            text = request_text("OPTIONS", ruri=f"sip:{user}@127.0.0.1", via=head,
                                extra=f"X-Up: {up}\r\n", call_id=f"vs-{user}-{n}-{who}")
            client.sendto(text.replace("PORT", str(me)).encode(), ("127.0.0.1", port))
            if user in REPLIED:
                got = top_via(client.recv(65535))
            else:
                sent = upstream.recv(65535)
                got = top_via(sent, 1)  # below the server's own
                if user == "rel":  # answered (no retransmission to come), the 200 relayed back
                    upstream.sendto(answer_200(sent), ("127.0.0.1", port))
                if user == "rel" and reaches_client(via, user):
                    back = client.recv(65535)
                    while not back.startswith(b"SIP/2.0 200"):
                        back = client.recv(65535)
                    got += " | back: " + top_via(back)
            seen[f"{user} {via}"] = got.replace(str(me), "ME")
    return seen


def test_received_and_rport_written_as_kamailio_writes_them(
        tmp_path: Path, sockets: tuple[socket.socket, socket.socket]) -> None:
    client, upstream = sockets
    cfg = cfg_preamble("sl", "pv", "tm", "textops") + ROUTES
    with side_by_side(cfg, tmp_path) as pair:
        kemi = run(pair.kemi_port, client, upstream, "kemi")
        kamailio = run(pair.kamailio_port, client, upstream, "kamailio")
    assert kemi == kamailio
    # and the stamps are there at all (the comparison alone would pass on two silent servers)
    assert kamailio["sl 127.0.0.1:{me};rport"].endswith(";rport=ME;branch=z9hG4bK-sl-1"
                                                        ";received=127.0.0.1")
