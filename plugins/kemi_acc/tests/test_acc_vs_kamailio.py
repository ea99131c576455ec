"""acc's log records on kemi and on Kamailio 5.6: acc_log_request and a stateless-replied
transaction-less request give the same ``ACC:`` lines (the timestamp aside).

acc's ``time_mode`` (``time_attr``, ``time_exten``, ``time_format``) and ``multi_leg_info`` on
kemi and on Kamailio 5.6, log backend: the same ``ACC:`` lines, the clock's values checked
against each line's own timestamp (both servers run in a time zone that is not UTC, so mode 3,
local time, and mode 4, UTC, differ). Legs: the N-th value of each AVP, newest first, as many
legs as the longest AVP has values, an empty value where an AVP has none.
"""

from __future__ import annotations

import re
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


TIME_LEGS_CFG = cfg_preamble("tm", "sl", "pv", "acc") + """modparam("acc", "log_flag", 1)
modparam("acc", "log_extra", "ua=$ua")
modparam("acc", "multi_leg_info", "src=$avp(src);dst=$avp(dst)")
MODE
request_route {
  setflag(1);
  if ($hdr(X-T) == "legs") {
    $avp(src) = "alice"; $avp(dst) = "bob";
    $avp(src) = "bob"; $avp(dst) = "carol";
    $avp(src) = "carol";
  }
  acc_log_request("200 now");
  t_newtran();
  t_reply("200", "Fine");
}
"""

MODES = {
    1: 'modparam("acc", "time_mode", 1)\nmodparam("acc", "time_exten", "usec")',
    2: 'modparam("acc", "time_mode", 2)',
    3: 'modparam("acc", "time_mode", 3)\nmodparam("acc", "time_attr", "when")\n'
       'modparam("acc", "time_format", "%d/%m/%Y %H.%M.%S %Z")',
    4: 'modparam("acc", "time_mode", 4)\nmodparam("acc", "time_attr", "when")',
    7: 'modparam("acc", "time_mode", 7)',  # unknown: as 0
}

#: the time_mode field of each mode, by its value's shape
VALUE = {1: r"usec=(\d{1,6})", 2: r"time_attr=(\d+)\.(\d{3})",
         3: r"when=(\d\d/\d\d/\d{4} \d\d\.\d\d\.\d\d [^;]+)",
         4: r"when=(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)"}


def check_time(mode: int, line: str, slack: int = 0) -> str:
    """Check the mode's value against the line's timestamp; the line with both blanked.

    slack: how many seconds the value may run ahead of the timestamp. Kamailio reads
    the clock twice (time(), on the kernel's coarse clock, then gettimeofday), so
    near a second's edge its value can be the next second; kemi reads it once.
    """
    stamp = int(re.search(r"timestamp=(\d+)", line).group(1))  # type: ignore[union-attr]
    line = line.replace(f"timestamp={stamp}", "timestamp=T")
    if mode not in VALUE:
        return line
    m = re.search(VALUE[mode], line)
    assert m is not None, (mode, line)
    seconds = range(stamp, stamp + slack + 1)
    if mode == 2:
        assert int(m.group(1)) in seconds, (mode, line)
    elif mode == 3:
        assert m.group(1) in [time.strftime("%d/%m/%Y %H.%M.%S %Z", time.localtime(s))
                              for s in seconds], (mode, line)
    elif mode == 4:
        assert m.group(1) in [time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(s))
                              for s in seconds], (mode, line)
    return line.replace(m.group(0), m.group(0).split("=")[0] + "=V")


@pytest.mark.parametrize("mode", sorted(MODES))
def test_time_mode_and_legs_match_kamailio(tmp_path: Path, mode: int,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # UTC+05:30: local time is not UTC
    time.tzset()
    try:
        messages = [request_text("INVITE", extra="X-T: legs\r\nUser-Agent: ua1", call_id="ml-1"),
                    request_text("MESSAGE", extra="X-T: none", call_id="ml-2")]
        with side_by_side(TIME_LEGS_CFG.replace("MODE", MODES[mode]), tmp_path) as pair:
            ours, theirs = pair.both(messages)
            for log in (pair.kemi.log, pair.kamailio.log):  # 4 records each
                wait_until(lambda: len(ACC.findall(log())) >= 4, 10, log)  # noqa: B023
            kemi_lines = [check_time(mode, x) for x in ACC.findall(pair.kemi.log())]
            kam_lines = [check_time(mode, x, slack=1)
                         for x in ACC.findall(pair.kamailio.log())]
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert [a.status for a in ours] == [a.status for a in theirs]
    kemi_lines = [re.sub(r"to_tag=[^;]+", "to_tag=X", x) for x in kemi_lines]
    kam_lines = [re.sub(r"to_tag=[^;]+", "to_tag=X", x) for x in kam_lines]
    assert kemi_lines == kam_lines, "\n".join(["kemi:", *kemi_lines, "kamailio:", *kam_lines])
    assert kemi_lines[0].endswith(";ua=ua1;src=carol;dst=carol;src=bob;dst=bob;src=alice;dst=")
