"""acc's log records on kemi and on Kamailio 5.6: acc_log_request and a stateless-replied
transaction-less request give the same ``ACC:`` lines (the timestamp aside)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, request_text, side_by_side

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("acc.so", "tm.so"), reason="Kamailio 5.6 is not installed")]

CFG = cfg_preamble("tm", "sl", "pv", "acc") + """modparam("acc", "log_flag", 1)
modparam("acc", "log_missed_flag", 2)
modparam("acc", "failed_transaction_flag", 3)
modparam("acc", "log_extra", "src_user=$fU;src_domain=$fd;dst_ouser=$tU;dst_user=$rU;dst_domain=$rd;ua=$ua")
request_route {
  if ($hdr(X-T) == "req") {
    acc_log_request("403 Forbidden here");
    sl_send_reply("403", "Forbidden here");
    exit;
  }
  if ($hdr(X-T) == "plain") {
    acc_log_request("just a comment");
    sl_send_reply("200", "OK");
    exit;
  }
  setflag(1);
  if ($hdr(X-T) == "missed") { setflag(2); }
  if ($hdr(X-T) == "failed") { setflag(3); }
  t_newtran();
  if ($hdr(X-T) == "ok") { t_reply("200", "Fine"); exit; }
  t_reply("486", "Busy Here");
}
"""

ACC = re.compile(r"ACC: (.*)$", re.M)


def acc_lines(log: str) -> list[str]:
    """The records, with what differs by nature (time, the random To-tags) blanked."""
    lines = [re.sub(r"timestamp=\d+", "timestamp=T", m) for m in ACC.findall(log)]
    return [re.sub(r"to_tag=[^;]+", "to_tag=X", m) for m in lines]


def test_acc_log_lines_match_kamailio(tmp_path: Path) -> None:
    messages = [request_text("INVITE", extra="X-T: req\r\nUser-Agent: ua1", call_id="acc-1"),
                request_text("INVITE", extra="X-T: plain", call_id="acc-2"),
                request_text("MESSAGE", extra="X-T: ok", call_id="acc-3"),
                request_text("INVITE", extra="X-T: busy", call_id="acc-4"),
                request_text("INVITE", extra="X-T: missed", call_id="acc-5"),
                request_text("INVITE", extra="X-T: failed", call_id="acc-6")]
    with side_by_side(CFG, tmp_path) as pair:
        ours, theirs = pair.both(messages)
        deadline = time.monotonic() + 10  # 5 records each: 2 requests, 3 transactions
        while time.monotonic() < deadline and min(
                len(acc_lines(pair.kemi.log())), len(acc_lines(pair.kamailio.log()))) < 5:
            time.sleep(0.05)
        kemi_lines, kam_lines = acc_lines(pair.kemi.log()), acc_lines(pair.kamailio.log())
    assert [a.status for a in ours] == [a.status for a in theirs]
    assert kemi_lines == kam_lines, "\n".join(["kemi:", *kemi_lines, "kamailio:", *kam_lines])
