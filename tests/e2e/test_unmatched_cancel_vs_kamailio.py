"""t_relay() of a CANCEL whose INVITE transaction is not here, on kemi and on Kamailio 5.6 with
the same config (native routes and a Lua script calling ``KSR.tm.t_relay()``).

What Kamailio 5.6.3 does (tm's default ``unmatched_cancel``): it relays such a CANCEL
statefully, in a transaction of its own, as any non-INVITE request: its Via on top, the CANCEL
retransmitted over UDP until a reply comes, the downstream reply relayed back, a local 408 when
none comes within ``fr_timer``, and a retransmission of the CANCEL absorbed by the transaction.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, request_text, side_by_side
from kemi_core.testing.sidebyside import reduce_reply

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("tm.so", "app_lua.so"), reason="Kamailio 5.6 is not installed")]

HEAD = cfg_preamble("sl", "tm", "pv", "xlog") + 'modparam("tm", "fr_timer", 1500)\n'
NATIVE = HEAD + """request_route {
  if (!t_relay()) { sl_send_reply("500", "relay failed"); }
  exit;
}
"""
LUA = HEAD + """loadmodule "app_lua.so"
modparam("app_lua", "load", "{dir}/cancel.lua")
cfgengine "lua"
"""
SCRIPT = """
function ksr_request_route()
  if KSR.tm.t_relay() < 0 then KSR.sl.sl_send_reply(500, "relay failed") end
end
"""


def _recv(sock: socket.socket, until: float) -> bytes | None:
    sock.settimeout(max(until - time.monotonic(), 0.01))
    try:
        return sock.recv(65535)
    except TimeoutError:
        return None


def _flow(server_port: int, answer: bool, wait: float = 6.0) -> tuple[str, list[str], str]:
    """Send a CANCEL whose INVITE the server never saw, R-URI to our downstream socket, which
    answers 481 when ``answer``; a reply is awaited ``wait`` seconds at most. Returns (reply status, top Via branch of each copy the
    downstream got, status of the reply to a retransmission of the CANCEL)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as down, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
        down.bind(("127.0.0.1", 0))
        up.bind(("127.0.0.1", 0))
        text = request_text("CANCEL", ruri=f"sip:bob@127.0.0.1:{down.getsockname()[1]}")
        cancel = text.replace("PORT", str(up.getsockname()[1])).encode()
        up.sendto(cancel, ("127.0.0.1", server_port))
        branches: list[str] = []
        status = "(no reply)"
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            data = _recv(down, min(deadline, time.monotonic() + 0.05))
            if data is not None:
                lines = data.decode().split("\r\n")
                assert lines[0].startswith("CANCEL sip:bob@"), lines[0]
                branches.append(lines[1].split("branch=")[1].split(";")[0])
                if answer:
                    head = [x for x in lines[1:] if x.split(":")[0].lower()
                            in ("via", "from", "to", "call-id", "cseq")]
                    reply = "\r\n".join(["SIP/2.0 481 Call/Transaction Does Not Exist", *head,
                                         "Content-Length: 0", "", ""])
                    down.sendto(reply.encode(), ("127.0.0.1", server_port))
            got = _recv(up, time.monotonic() + 0.05)
            if got is not None:
                status = reduce_reply(got, ()).status
                break
        up.sendto(cancel, ("127.0.0.1", server_port))  # a retransmission of the CANCEL
        again = _recv(up, time.monotonic() + 1.0)
        return status, branches, reduce_reply(again, ()).status if again else "(no reply)"


@pytest.mark.parametrize("engine", ["native", "lua"])
def test_unmatched_cancel_relayed_statefully(tmp_path: Path, engine: str) -> None:
    cfg, files = (NATIVE, {}) if engine == "native" else (LUA, {"cancel.lua": SCRIPT})
    with side_by_side(cfg, tmp_path, files=files) as pair:
        for port in (pair.kemi_port, pair.kamailio_port):
            # answered downstream: the 481 comes back, one copy went out, the retransmission
            # of the CANCEL gets the 481 again from the transaction (not forwarded again)
            status, branches, again = _flow(port, answer=True)
            assert (status, len(branches), again) == (
                "SIP/2.0 481 Call/Transaction Does Not Exist", 1,
                "SIP/2.0 481 Call/Transaction Does Not Exist"), (port, pair.kemi.log())
            # silent downstream: retransmitted with one branch, then a local 408
            status, branches, again = _flow(port, answer=False)
            assert status == "SIP/2.0 408 Request Timeout", (port, pair.kemi.log())
            assert len(branches) >= 2 and len(set(branches)) == 1, branches
            assert again == "SIP/2.0 408 Request Timeout"


MODES = HEAD + """modparam("tm", "unmatched_cancel", MODE)
request_route {
  if (!t_relay()) { sl_send_reply("500", "relay failed"); exit; }
  sl_send_reply("299", "went on");
}
"""


@pytest.mark.parametrize(("mode", "expected"), [
    # forwarded statelessly: one copy, no retransmission, no 408; t_relay ends the script
    (1, ("(no reply)", 1)),
    # dropped: nothing goes out, t_relay is true and the script goes on
    (2, ("SIP/2.0 299 went on", 0)),
])
def test_unmatched_cancel_modparam(tmp_path: Path, mode: int, expected: tuple[str, int]) -> None:
    with side_by_side(MODES.replace("MODE", str(mode)), tmp_path) as pair:
        for port in (pair.kemi_port, pair.kamailio_port):
            # long enough for the 408 (fr_timer 1.5 s) a transaction would send
            status, branches, _ = _flow(port, answer=False, wait=2.5)
            assert (status, len(branches)) == expected, (port, pair.kemi.log())
