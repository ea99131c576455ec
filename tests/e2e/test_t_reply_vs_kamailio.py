"""t_reply() with and without a transaction, on kemi and on Kamailio 5.6 with the same config.

What Kamailio 5.6.3 does (run): t_reply does not make the transaction; without t_newtran (or
t_relay) before it, it fails ("no T-state has been established") and nothing is sent; after
t_newtran the stateful reply goes out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, request_text, side_by_side

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("tm.so"), reason="Kamailio 5.6 is not installed")]

CFG = cfg_preamble("tm", "sl", "pv") + """
request_route {
  if ($hdr(X-T) == "newtran") { t_newtran(); }
  if (!t_reply("503", "Busy Now")) { exit; }
  exit;
}
"""


def test_t_reply_needs_a_transaction_like_kamailio(tmp_path: Path) -> None:
    msgs = [request_text("INVITE", call_id="t-reply-1"),
            request_text("INVITE", call_id="t-reply-2", extra="X-T: newtran")]
    with side_by_side(CFG, tmp_path) as pair:
        ours, theirs = pair.both(msgs, timeout=1.5)
        log = pair.kemi.log()
    assert [a.status for a in theirs] == ["(no reply)", "SIP/2.0 503 Busy Now"]
    assert [a.status for a in ours] == [a.status for a in theirs], log[-2000:]
