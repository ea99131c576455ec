"""corex's set_source_address changes what the script sees for one message only: the next
message on the same TCP connection has its real source again (kemi hands one RecvInfo to every
message of a stream connection). Side by side with Kamailio 5.6."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, side_by_side

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("corex.so", "sl.so"), reason="Kamailio 5.6 is not installed")]

CFG = cfg_preamble("sl", "pv", "corex").replace("listen=udp:", "listen=tcp:") + """
request_route {
    if ($hdr(X-Set) == "src") {
        set_source_address("tcp:127.0.0.1:9");
        exit;
    }
    sl_send_reply("200", "ok $pr $si:$sp");
}
"""


def options(call_id: str, extra: str = "") -> bytes:
    return (f"OPTIONS sip:u@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5;branch=z9hG4bK"
            f"{call_id}\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:u@x>\r\nCall-ID: {call_id}\r\n"
            f"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n").encode()


def reply_after_a_change(port: int) -> tuple[str, str]:
    """A message that changes its source and is not answered, then one answered on the same
    connection: its status line, and what it should say."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(options("c1", "X-Set: src\r\n") + options("c2"))
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65535)
            if not chunk:
                return "closed", ""
            buf += chunk
        local = sock.getsockname()
    return buf.split(b"\r\n")[0].decode(), f"SIP/2.0 200 ok tcp 127.0.0.1:{local[1]}"


def test_source_changes_stay_with_their_message(tmp_path: Path) -> None:
    with side_by_side(CFG, tmp_path) as pair:
        for port in (pair.kemi_port, pair.kamailio_port):
            got, expected = reply_after_a_change(port)
            assert got == expected, f"port {port}: {got}"
