"""The requests tm makes itself on a branch (the CANCEL of a forwarded INVITE, the ACK of a
negative final reply), on kemi and on Kamailio 5.6 with the same config: what the next hop gets.

What Kamailio 5.6.3 does (run): both carry the Max-Forwards of the INVITE as it was sent on the
branch (here 5, the config does not decrement it), not a fresh 70.
"""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, side_by_side

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("tm.so"), reason="Kamailio 5.6 is not installed")]

CFG = cfg_preamble("tm", "sl", "pv") + """
request_route {
  if ($rm == "CANCEL" || $rm == "ACK") { t_relay(); exit; }
  $du = "sip:127.0.0.1:" + $hdr(X-Uas);
  t_relay();
}
"""


def _reply(uas: socket.socket, request: str, status: str) -> None:
    """Answer ``request`` from the downstream socket, to its top Via (RFC 3261 18.2.2)."""
    head = request.split("\r\n\r\n")[0].split("\r\n")
    keep = [h for h in head[1:] if h.split(":")[0].lower() in ("via", "from", "to", "call-id",
                                                                "cseq")]
    keep = [h + ";tag=uas" if h.lower().startswith("to:") else h for h in keep]
    host, _, port = [h for h in keep if h.lower().startswith("via:")][0].split()[2] \
        .split(";")[0].partition(":")
    text = "\r\n".join([f"SIP/2.0 {status}", *keep, "Content-Length: 0", "", ""])
    uas.sendto(text.encode(), (host, int(port or 5060)))


def _local_request(server_port: int, final: str | None) -> tuple[str, str]:
    """An INVITE with Max-Forwards 5 through the server to our downstream socket, which
    answers 180 then ``final`` (None: the caller CANCELs instead). Returns the method and the
    Max-Forwards of the first request tm made itself (CANCEL or ACK) that came down."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as down:
        up.bind(("127.0.0.1", 0))
        down.bind(("127.0.0.1", 0))
        down.settimeout(3)
        me = up.getsockname()[1]
        base = [f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{uuid.uuid4().hex[:10]}",
                "From: <sip:a@x>;tag=1", "To: <sip:b@x>", f"Call-ID: {uuid.uuid4().hex}"]
        invite = "\r\n".join(["INVITE sip:b@127.0.0.1 SIP/2.0", *base, "CSeq: 1 INVITE",
                              "Max-Forwards: 5", f"X-Uas: {down.getsockname()[1]}",
                              "Content-Length: 0", "", ""])
        up.sendto(invite.encode(), ("127.0.0.1", server_port))
        forwarded = down.recv(65535).decode()
        _reply(down, forwarded, "180 Ringing")
        if final is None:
            up.settimeout(3)
            while not up.recv(65535).startswith(b"SIP/2.0 180"):  # the 180 is through
                pass
            cancel = "\r\n".join(["CANCEL sip:b@127.0.0.1 SIP/2.0", *base, "CSeq: 1 CANCEL",
                                  "Max-Forwards: 70", "Content-Length: 0", "", ""])
            up.sendto(cancel.encode(), ("127.0.0.1", server_port))
        else:
            _reply(down, forwarded, final)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            data = down.recv(65535).decode()
            method = data.split(" ", 1)[0]
            if method in ("CANCEL", "ACK"):
                mf = [h for h in data.split("\r\n") if h.lower().startswith("max-forwards:")]
                return method, mf[0].split(":", 1)[1].strip() if mf else ""
    return "(nothing)", ""


def test_cancel_and_ack_carry_the_invites_max_forwards_like_kamailio(tmp_path: Path) -> None:
    with side_by_side(CFG, tmp_path) as pair:
        theirs = [_local_request(pair.kamailio_port, None),
                  _local_request(pair.kamailio_port, "486 Busy Here")]
        ours = [_local_request(pair.kemi_port, None),
                _local_request(pair.kemi_port, "486 Busy Here")]
        log = pair.kemi.log()
    assert theirs == [("CANCEL", "5"), ("ACK", "5")]
    assert ours == theirs, log[-2000:]
