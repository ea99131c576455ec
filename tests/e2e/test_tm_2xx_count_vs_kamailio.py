"""tm.stats' 2xx count on kemi and on Kamailio 5.6 with the same config, when the callee sends
its 200 again (as it does until the ACK comes: on a loaded machine the ACK is late).

What Kamailio 5.6 does, learnt by running it: an INVITE's transaction relays each 2xx the
callee sends, and counts each one in tm.stats' 2xx (one transaction, three 200s: 2xx is 3,
rpl_sent 4 with the 100 Trying); a non-INVITE's transaction relays its final once and absorbs
the callee's retransmissions (2xx is 1).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, request_text, side_by_side
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
SENDS = 3  # the callee's 200, then twice again


def relay_200s(port: int, caller: socket.socket, callee: socket.socket, method: str,
               call_id: str) -> list[str]:
    """``method`` through the server on ``port`` to the callee, which answers 200 ``SENDS``
    times, each once the caller got the one before or the wait for it ended; the final
    replies' status lines the caller got."""
    me = str(caller.getsockname()[1])
    text = request_text(method, ruri="sip:bob@127.0.0.1", call_id=call_id,
                        extra=f"Contact: <sip:alice@127.0.0.1:{me}>")
    caller.sendto(text.replace("PORT", me).encode(), ("127.0.0.1", port))
    callee.settimeout(5)
    data, proxy = callee.recvfrom(65535)
    head = data.decode().split("\r\n\r\n")[0].split("\r\n")[1:]
    keep = [h for h in head if h.split(":")[0].lower() in ("via", "from", "to", "call-id", "cseq")]
    keep = [h + ";tag=callee" if h.lower().startswith("to:") else h for h in keep]
    ok = ("SIP/2.0 200 OK\r\n" + "\r\n".join(keep)
          + f"\r\nContact: <sip:bob@127.0.0.1:{callee.getsockname()[1]}>\r\n"
          + "Content-Length: 0\r\n\r\n").encode()
    finals: list[str] = []
    for _ in range(SENDS):
        callee.sendto(ok, proxy)
        deadline = time.monotonic() + 1.0  # a retransmission absorbed: nothing comes
        while (left := deadline - time.monotonic()) > 0:
            caller.settimeout(left)
            try:
                line = caller.recv(65535).split(b"\r\n", 1)[0].decode()
            except TimeoutError:
                break
            if not line.startswith("SIP/2.0 1"):
                finals.append(line)
                break
    return finals


def kamailio_tm_stats(ctl: str) -> dict[str, int]:
    out = kamcmd(ctl, "tm.stats").stdout
    pairs = (line.split(":", 1) for line in out.splitlines() if ":" in line)
    return {k.strip(): int(v) for k, v in pairs}


@pytest.mark.parametrize(("method", "counted"), [("INVITE", SENDS), ("OPTIONS", 1)])
def test_2xx_counted_as_kamailio_when_the_callee_sends_its_200_again(
        tmp_path: Path, method: str, counted: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as caller, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as callee:
        caller.bind(("127.0.0.1", 0))
        callee.bind(("127.0.0.1", 0))
        cfg = cfg_preamble("tm", "sl", "pv") + ROUTES.replace(
            "CALLEE", str(callee.getsockname()[1]))
        with side_by_side(cfg, tmp_path) as pair:
            theirs = relay_200s(pair.kamailio_port, caller, callee, method, "k-1")
            ours = relay_200s(pair.kemi_port, caller, callee, method, "m-1")
            ktm = kamailio_tm_stats(f"unix:{tmp_path / 'kamailio' / 'ctl'}")
            tm = pair.kemi.rpc("tm.stats")
    relayed = SENDS if method == "INVITE" else 1
    assert theirs == ["SIP/2.0 200 OK"] * relayed
    assert ours == theirs
    assert (ktm["created"], ktm["2xx"]) == (1, counted)
    shown = ("created", "2xx", "rpl_sent", "current", "waiting")
    assert {k: tm[k] for k in shown} == {k: ktm[k] for k in shown}
