"""log_prefix is evaluated for each received message and printed after the level on every line
logged while handling it, as Kamailio 5.6 does (compared on the same config); lines logged
outside a message carry none."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from kemi_core.testing import kamailio_available, request_text, side_by_side

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("xlog.so"), reason="Kamailio 5.6 is not installed")]

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
children=1
auto_aliases=no
listen=udp:127.0.0.1:{port}
log_prefix="{$mt $hdr(CSeq) $ci} "
mpath="{mpath}"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "ctl.so"
modparam("ctl", "binrpc", "unix:{ctl}")
request_route {
  xlog("L_INFO", "marker in request route $rm\\n");
  sl_send_reply("404", "Not here");
}
"""

LINE = re.compile(r"INFO: (\{[^}]*\}) (?:<[^>]*>:? )+marker in request route (\w+)")


def prefixed(log: str) -> list[tuple[str, str]]:
    return LINE.findall(log)


def test_log_prefix_is_evaluated_per_message_like_kamailio(tmp_path: Path) -> None:
    msgs = [request_text("OPTIONS", call_id="lp-1", cseq="7 OPTIONS"),
            request_text("MESSAGE", call_id="lp-2", cseq="9 MESSAGE")]
    with side_by_side(CFG, tmp_path) as pair:
        ours, theirs = pair.both(msgs)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(prefixed(pair.kemi.log())) < 2:
            time.sleep(0.05)
        kemi_log, kam_log = pair.kemi.log(), pair.kamailio.log()
    assert ours == theirs
    assert prefixed(kemi_log) == prefixed(kam_log) == [
        ("{1 7 OPTIONS lp-1}", "OPTIONS"), ("{1 9 MESSAGE lp-2}", "MESSAGE")]
    startup = next(line for line in kemi_log.splitlines() if "control socket" in line)
    assert "{" not in startup  # no message, no prefix
