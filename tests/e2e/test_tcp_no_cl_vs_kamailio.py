"""Core ``tcp_accept_no_cl`` on kemi and on Kamailio 5.6 with the same config: with ``yes`` a
request on TCP without Content-Length is taken as ending at its empty line (no body; what
follows starts the next message), on both. Without it kemi answers 400 and closes the
connection, where Kamailio closes it without a reply (kept on purpose, docs/operating.md)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, side_by_side

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("sl.so"), reason="Kamailio 5.6 is not installed")]

CFG = cfg_preamble("sl", "pv", defines="NO_CL").replace("listen=udp:", "listen=tcp:") + """
request_route {
    sl_send_reply("200", "ok $ci");
}
"""


def options(call_id: str, content_length: int | None = None, body: str = "") -> bytes:
    text = (f"OPTIONS sip:u@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5;branch=z9hG4bK"
            f"{call_id}\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:u@x>\r\nCall-ID: {call_id}\r\n"
            "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n")
    if content_length is not None:
        text += f"Content-Length: {content_length}\r\n"
    return (text + "\r\n" + body).encode()


def statuses(port: int, data: bytes, replies: int) -> list[str]:
    """The status lines of the first ``replies`` replies, then "closed" if the server closed."""
    out: list[str] = []
    buf = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        while len(out) < replies:
            chunk = sock.recv(65535)
            if not chunk:
                return out + ["closed"]
            buf += chunk
            while b"\r\n\r\n" in buf and len(out) < replies:  # replies carry no body here
                head, buf = buf.split(b"\r\n\r\n", 1)
                out.append(head.split(b"\r\n")[0].decode())
    return out


def test_accepted_without_content_length(tmp_path: Path) -> None:
    data = options("n1") + options("n2") + options("n3", 0)
    with side_by_side(CFG.replace("NO_CL", "tcp_accept_no_cl=yes"), tmp_path) as pair:
        got = {port: statuses(port, data, 3) for port in (pair.kemi_port, pair.kamailio_port)}
    assert got[pair.kemi_port] == got[pair.kamailio_port] == [
        "SIP/2.0 200 ok n1", "SIP/2.0 200 ok n2", "SIP/2.0 200 ok n3"]


def test_refused_by_default(tmp_path: Path) -> None:
    with side_by_side(CFG.replace("NO_CL", ""), tmp_path) as pair:
        assert statuses(pair.kemi_port, options("d1"), 1) == [
            "SIP/2.0 400 Missing Content-Length on a stream"]
        assert statuses(pair.kamailio_port, options("d1"), 1) == ["closed"]
        # and a message with it is served on both
        for port in (pair.kemi_port, pair.kamailio_port):
            assert statuses(port, options("d2", 0), 1) == ["SIP/2.0 200 ok d2"]
