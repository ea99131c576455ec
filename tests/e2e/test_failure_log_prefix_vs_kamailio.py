"""log_prefix on the lines of a branch-failure route and of a failure route, side by side with
Kamailio 5.6: after a callee's 486, and after tm's fr_timer / fr_inv_timer ran out with no reply
at all (1 s here). Kamailio gives a failure route the request's prefix ("{1 ...}", the reply's
"{2 ...}" in the branch-failure route of a reply, none in one run by the timer); kemi's lines
must carry the same prefixes."""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Callable, Iterator
from functools import partial

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, side_by_side, wait_until
from kemi_core.testing.udp_client import pending_datagrams

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("sl.so", "pv.so", "tm.so", "tmx.so", "xlog.so", "ctl.so"),
    reason="Kamailio 5.6 is not installed")]

CFG = r'''log_prefix="{$mt $cs $rm $ci} "
modparam("tm", "fr_timer", 1000)
modparam("tm", "fr_inv_timer", 1000)
request_route {
  $du = "sip:127.0.0.1:" + $hdr(X-Up);
  t_on_failure("F");
  t_on_branch_failure("BF");
  xlog("L_INFO", "REQ $rm\n");
  t_relay();
  exit;
}
failure_route[F] {
  xlog("L_INFO", "FAIL $rm $T_rpl($rs)\n");
}
event_route[tm:branch-failure:BF] {
  xlog("L_INFO", "BFAIL $rm $T_rpl($rs)\n");
}
'''
#: (method, what the callee answers: a 486, or nothing)
FLOWS = [("INVITE", True), ("OPTIONS", False), ("INVITE", False)]


def script_lines(log: str) -> list[str]:
    """The script's lines, from the prefix on (or from "INFO" when there is none)."""
    out = []
    for line in log.splitlines():
        m = re.search(r"\{.*(REQ|FAIL) .*", line) or re.search(r"INFO: .*(REQ|FAIL) .*", line)
        if m:
            out.append(re.sub(r"<kemi\.script> ", "", m.group(0)))
    return out


def nine_lines(log: Callable[[], str]) -> list[str]:
    """The script's lines once all nine are logged (the timer's come a second later), else []."""
    lines = script_lines(log())
    return lines if len(lines) >= 9 else []


def run(port: int, who: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as caller, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as callee:
        for s in (caller, callee):
            s.bind(("127.0.0.1", 0))
            s.settimeout(5)
        me, up = caller.getsockname()[1], callee.getsockname()[1]
        for n, (method, busy) in enumerate(FLOWS):
            caller.sendto((
                f"{method} sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};rport;"
                f"branch=z9hG4bK{uuid.uuid4().hex}\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\n"
                f"To: <sip:x@127.0.0.1>\r\nCall-ID: lp-{who}-{n}\r\nCSeq: {10 + n} {method}\r\n"
                f"Max-Forwards: 70\r\nX-Up: {up}\r\nContent-Length: 0\r\n\r\n").encode(),
                ("127.0.0.1", port))
            request, server = callee.recvfrom(65535)
            if busy:
                head = request.decode().split("\r\n")
                keep = [x + ";tag=b" if x.startswith("To:") else x for x in head
                        if x.split(":")[0] in ("Via", "From", "To", "Call-ID", "CSeq")]
                callee.sendto(("SIP/2.0 486 Busy Here\r\n" + "\r\n".join(keep)
                               + "\r\nContent-Length: 0\r\n\r\n").encode(), server)
            while caller.recv(65535).startswith(b"SIP/2.0 1"):  # the final reply ends it
                pass
            pending_datagrams(callee)


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[str], list[str]]]:
    with side_by_side(cfg_preamble("sl", "pv", "tm", "tmx", "xlog") + CFG,
                      tmp_path_factory.mktemp("fail-prefix")) as pair:
        got: list[list[str]] = []
        for server, port, who in ((pair.kemi, pair.kemi_port, "k"),
                                  (pair.kamailio, pair.kamailio_port, "m")):
            run(port, who)
            got.append(wait_until(partial(nine_lines, server.log), 5, "the script's nine lines"))
        yield got[0], got[1]


def test_failure_routes_log_with_kamailio_prefixes(logs: tuple[list[str], list[str]]) -> None:
    kemi, kamailio = logs

    def named(lines: list[str]) -> list[str]:
        return [re.sub(r"lp-[km]-", "lp-", re.sub(r"INFO: .*?<script>", "INFO: <script>", x))
                for x in lines]

    assert named(kemi) == named(kamailio)
    assert named(kamailio)[:3] == ["{1 10 INVITE lp-0} <script>: REQ INVITE",
                                   "{2 10 INVITE lp-0} <script>: BFAIL INVITE 486",
                                   "{1 10 INVITE lp-0} <script>: FAIL INVITE 486"]
