"""acc's ``time_mode`` (``time_attr``, ``time_exten``, ``time_format``) and ``multi_leg_info`` on
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


def records(log: str) -> list[str]:
    return re.findall(r"ACC: (.*)$", log, re.M)


def check_time(mode: int, line: str) -> str:
    """Check the mode's value against the line's timestamp; the line with both blanked."""
    stamp = int(re.search(r"timestamp=(\d+)", line).group(1))  # type: ignore[union-attr]
    line = line.replace(f"timestamp={stamp}", "timestamp=T")
    if mode not in VALUE:
        return line
    m = re.search(VALUE[mode], line)
    assert m is not None, (mode, line)
    if mode == 2:
        assert int(m.group(1)) == stamp
    elif mode == 3:
        assert m.group(1) == time.strftime("%d/%m/%Y %H.%M.%S %Z", time.localtime(stamp))
    elif mode == 4:
        assert m.group(1) == time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stamp))
    return line.replace(m.group(0), m.group(0).split("=")[0] + "=V")


@pytest.mark.parametrize("mode", sorted(MODES))
def test_time_mode_and_legs_match_kamailio(tmp_path: Path, mode: int,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # UTC+05:30: local time is not UTC
    time.tzset()
    try:
        messages = [request_text("INVITE", extra="X-T: legs\r\nUser-Agent: ua1", call_id="ml-1"),
                    request_text("MESSAGE", extra="X-T: none", call_id="ml-2")]
        with side_by_side(CFG.replace("MODE", MODES[mode]), tmp_path) as pair:
            ours, theirs = pair.both(messages)
            for server in (pair.kemi, pair.kamailio):
                wait_until(lambda s=server: len(records(s.log())) >= 4, 10,  # type: ignore[misc]
                           lambda s=server: f"4 ACC lines in:\n{s.log()[-3000:]}")
            kemi_lines = [check_time(mode, x) for x in records(pair.kemi.log())]
            kam_lines = [check_time(mode, x) for x in records(pair.kamailio.log())]
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert [a.status for a in ours] == [a.status for a in theirs]
    kemi_lines = [re.sub(r"to_tag=[^;]+", "to_tag=X", x) for x in kemi_lines]
    kam_lines = [re.sub(r"to_tag=[^;]+", "to_tag=X", x) for x in kam_lines]
    assert kemi_lines == kam_lines, "\n".join(["kemi:", *kemi_lines, "kamailio:", *kam_lines])
    assert kemi_lines[0].endswith(";ua=ua1;src=carol;dst=carol;src=bob;dst=bob;src=alice;dst=")
