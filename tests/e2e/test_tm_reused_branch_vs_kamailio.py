"""A client that reuses a Via branch for a new request (another Call-ID or CSeq number): Kamailio
5.6 finds its transactions by Call-ID and CSeq number first, so the new request gets a new
transaction and is relayed; kemi did the same only for a retransmission (same Call-ID and
CSeq), which gets the old transaction's reply again. Side by side through t_relay."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, request_text, side_by_side
from kemi_core.testing.udp_client import pending_datagrams

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("sl.so", "pv.so", "tm.so", "textops.so", "ctl.so"),
    reason="Kamailio 5.6 is not installed")]

ROUTES = r"""
request_route { $du = "sip:127.0.0.1:" + $hdr(X-Up); t_relay(); exit; }
"""
#: (Call-ID, CSeq number) sent one after the other with the same branch and sent-by
SEQUENCE = [("a", 1), ("a", 1), ("b", 1), ("a", 2), ("c", 7)]


def answer_200(request: bytes) -> bytes:
    lines = request.decode().split("\r\n")
    kept = [line for line in lines
            if line.split(":")[0].lower() in ("via", "from", "to", "call-id", "cseq")]
    return ("SIP/2.0 200 OK\r\n" + "\r\n".join(kept) + "\r\nContent-Length: 0\r\n\r\n").encode()


def run(port: int, who: str, client: socket.socket, upstream: socket.socket) -> list[str]:
    me, up = client.getsockname()[1], upstream.getsockname()[1]
    seen = []
    for call_id, cseq in SEQUENCE:
        pending_datagrams(client)
        pending_datagrams(upstream)
        via = f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-reused-{who}"
        text = request_text("OPTIONS", ruri="sip:x@127.0.0.1", via=via, extra=f"X-Up: {up}\r\n",
                            call_id=f"{call_id}-{who}", cseq=f"{cseq} OPTIONS")
        client.sendto(text.encode(), ("127.0.0.1", port))
        upstream.settimeout(1.0)  # (a retransmission answered from the transaction: nothing)
        try:
            sent = upstream.recv(65535)
        except TimeoutError:
            relayed = "absorbed"
        else:
            relayed = "relayed"
            upstream.sendto(answer_200(sent), ("127.0.0.1", port))
        client.settimeout(5)
        reply = client.recv(65535).decode()
        cseq_line = next(line for line in reply.split("\r\n") if line.startswith("CSeq:"))
        seen.append(f"{call_id} {cseq}: {relayed}, {reply.split(chr(13))[0]} {cseq_line}")
    return seen


def test_a_reused_branch_starts_a_new_transaction(tmp_path: Path) -> None:
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in (client, upstream):
        s.bind(("127.0.0.1", 0))
    try:
        with side_by_side(cfg_preamble("sl", "pv", "tm", "textops") + ROUTES, tmp_path) as pair:
            kemi = run(pair.kemi_port, "kemi", client, upstream)
            kamailio = run(pair.kamailio_port, "kamailio", client, upstream)
    finally:
        client.close()
        upstream.close()
    assert kemi == kamailio
    assert [line.split(":")[1].split(",")[0].strip() for line in kamailio] == [
        "relayed", "absorbed", "relayed", "relayed", "relayed"]
