"""sl_reply_error() on kemi and on Kamailio 5.6 with the same config: the status and the reason
text for the internal error behind it. Kamailio words a known error as "<text> (<code>/SL)"; a
From URI that does not parse (read through $fU) is "479 Regretfully, we were not able to process
the URI (479/SL)"; with no known error (nothing failed, a malformed Max-Forwards in
mf_process_maxfwd_header, has_totag on a To without a tag) it is "500 I'm terribly sorry, server
error occurred (1/SL)" whatever sl's default_code/default_reason say.

Kamailio keeps its last error across messages in a process (a later sl_reply_error with nothing
failed repeats it); kemi keeps it per message, so the cases run in an order where that does not
show: the generic ones first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, request_text, side_by_side

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("sl.so", "maxfwd.so", "siputils.so"),
    reason="Kamailio 5.6 is not installed")]

CFG = cfg_preamble("sl", "pv", "maxfwd", "siputils") + """
modparam("sl", "default_code", 599)
modparam("sl", "default_reason", "Not Used")
request_route {
  if ($hdr(X-T) == "maxfwd") { if (!mf_process_maxfwd_header("10")) { sl_reply_error(); } exit; }
  if ($hdr(X-T) == "totag") { if (!has_totag()) { sl_reply_error(); } exit; }
  if ($hdr(X-T) == "from") { if ($fU == "x") { exit; } sl_reply_error(); exit; }
  sl_reply_error();
}
"""

GENERIC = "SIP/2.0 500 I'm terribly sorry, server error occurred (1/SL)"
CASES = [
    ("nothing failed", request_text(), GENERIC),
    ("bad Max-Forwards", request_text(extra="X-T: maxfwd").replace(
        "Max-Forwards: 70", "Max-Forwards: abc"), GENERIC),
    ("no To-tag", request_text(extra="X-T: totag"), GENERIC),
    ("From URI", request_text(extra="X-T: from", frm="garbage"),
     "SIP/2.0 479 Regretfully, we were not able to process the URI (479/SL)"),
]


def test_sl_reply_error_words_as_kamailio(tmp_path: Path) -> None:
    with side_by_side(CFG, tmp_path) as pair:
        ours, theirs = pair.both([m for _, m, _ in CASES], timeout=3)
    assert [a.status for a in theirs] == [want for _, _, want in CASES]
    assert [a.status for a in ours] == [a.status for a in theirs]
