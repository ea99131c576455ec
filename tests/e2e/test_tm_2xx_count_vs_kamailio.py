"""tm.stats' 2xx count on kemi and on Kamailio 5.6 with the same config, when the callee sends
its 200 again (as it does until the ACK comes: on a loaded machine the ACK is late), or sends a
200 after its own 486 (a broken callee).

What Kamailio 5.6 does, learnt by running it: an INVITE's transaction relays each 2xx the
callee sends, and counts each one in tm.stats' 2xx (one transaction, three 200s: 2xx is 3,
rpl_sent 4 with the 100 Trying); a 200 after the callee's 486 is relayed as well and counted in
2xx (a proxy forwards every 2xx to INVITE, RFC 3261 16.7 step 5); a non-INVITE's transaction
relays its final once and absorbs the callee's retransmissions (2xx is 1).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from kemi_core.testing import (
    cfg_preamble,
    kamailio_available,
    request_text,
    side_by_side,
    wait_until,
)
from kemi_core.testing.kamailio import kamcmd

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("tm.so", "sl.so", "pv.so", "ctl.so"),
    reason="Kamailio 5.6 is not installed")]

ROUTES = """request_route {
  $du = "sip:127.0.0.1:CALLEE";
  t_relay();
  exit;
}
"""
REASONS = {"200": "OK", "486": "Busy Here"}


def relay_finals(port: int, caller: socket.socket, callee: socket.socket, method: str,
                 call_id: str, statuses: list[str]) -> list[str]:
    """``method`` through the server on ``port`` to the callee, which answers with each of
    ``statuses`` in turn, each once the caller got the one before or the wait for it ended;
    the status lines the caller got for them (a final the server absorbed: none). The caller
    ACKs a negative final, as a UAC does (no retransmission of it then)."""
    me = str(caller.getsockname()[1])
    text = request_text(method, ruri="sip:bob@127.0.0.1", call_id=call_id,
                        extra=f"Contact: <sip:alice@127.0.0.1:{me}>").replace("PORT", me)
    caller.sendto(text.encode(), ("127.0.0.1", port))
    callee.settimeout(5)
    for _ in range(10):  # the request itself (not an ACK the other server's run sent it)
        data, proxy = callee.recvfrom(65535)
        if data.startswith(method.encode()) and f"Call-ID: {call_id}\r\n".encode() in data:
            break
    else:
        raise AssertionError(f"the callee never got the {method} of {call_id}")
    head = data.decode().split("\r\n\r\n")[0].split("\r\n")[1:]
    keep = [h for h in head if h.split(":")[0].lower() in ("via", "from", "to", "call-id", "cseq")]
    keep = [h + ";tag=callee" if h.lower().startswith("to:") else h for h in keep]
    reply = ("SIP/2.0 {status} {reason}\r\n" + "\r\n".join(keep)
             + f"\r\nContact: <sip:bob@127.0.0.1:{callee.getsockname()[1]}>\r\n"
             + "Content-Length: 0\r\n\r\n")
    finals: list[str] = []
    for status in statuses:
        callee.sendto(reply.format(status=status, reason=REASONS[status]).encode(), proxy)
        deadline = time.monotonic() + 1.0  # a final absorbed: nothing comes
        while (left := deadline - time.monotonic()) > 0:
            caller.settimeout(left)
            try:
                got = caller.recv(65535).decode()
            except TimeoutError:
                break
            line = got.split("\r\n", 1)[0]
            if line.startswith("SIP/2.0 " + status):
                finals.append(line)
                if status >= "300" and method == "INVITE":
                    caller.sendto(ack_of(text, got).encode(), ("127.0.0.1", port))
                break
    return finals


def ack_of(invite: str, reply: str) -> str:
    """The ACK of a negative final to ``invite`` (RFC 3261 17.1.1.3): its Via, From, Call-ID,
    the reply's To, CSeq with ACK."""
    def header(text: str, name: str) -> str:
        return next(h for h in text.split("\r\n") if h.lower().startswith(name.lower() + ":"))
    first = invite.split("\r\n", 1)[0].replace("INVITE", "ACK", 1)
    lines = [first, header(invite, "Via"), header(invite, "From"), header(reply, "To"),
             header(invite, "Call-ID"), header(invite, "CSeq").replace("INVITE", "ACK"),
             "Max-Forwards: 70", "Content-Length: 0"]
    return "\r\n".join(lines) + "\r\n\r\n"


def kamailio_tm_stats(ctl: str) -> dict[str, int]:
    out = kamcmd(ctl, "tm.stats").stdout
    pairs = (line.split(":", 1) for line in out.splitlines() if ":" in line)
    return {k.strip(): int(v) for k, v in pairs}


@pytest.mark.parametrize(("method", "statuses"), [
    ("INVITE", ["200", "200", "200"]),
    ("OPTIONS", ["200", "200", "200"]),
    ("INVITE", ["486", "200"]),
], ids=["invite-200-again", "options-200-again", "invite-200-after-486"])
def test_finals_relayed_and_counted_as_kamailio(tmp_path: Path, method: str,
                                                statuses: list[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as caller, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as callee:
        caller.bind(("127.0.0.1", 0))
        callee.bind(("127.0.0.1", 0))
        cfg = cfg_preamble("tm", "sl", "pv") + ROUTES.replace(
            "CALLEE", str(callee.getsockname()[1]))
        with side_by_side(cfg, tmp_path) as pair:
            theirs = relay_finals(pair.kamailio_port, caller, callee, method, "k-1", statuses)
            ours = relay_finals(pair.kemi_port, caller, callee, method, "m-1", statuses)
            ktm = kamailio_tm_stats(f"unix:{tmp_path / 'kamailio' / 'ctl'}")
            shown = ("created", "2xx", "4xx", "rpl_sent", "current", "waiting")
            # kemi counts a relayed 2xx just after sending it: wait for the count to settle
            tm = wait_until(lambda: (t := pair.kemi.rpc("tm.stats"))["2xx"] >= ktm["2xx"] and t,
                            5, "kemi's tm.stats to count the relayed 2xx")
    expected = {"INVITE": statuses, "OPTIONS": statuses[:1]}[method]
    assert theirs == [f"SIP/2.0 {s} {REASONS[s]}" for s in expected]
    assert ours == theirs
    assert ktm["created"] == 1 and ktm["2xx"] == expected.count("200")
    assert {k: tm[k] for k in shown} == {k: ktm[k] for k in shown}
