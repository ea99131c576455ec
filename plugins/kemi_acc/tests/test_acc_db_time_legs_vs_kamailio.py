"""acc's ``time_mode`` and ``multi_leg_info`` on kemi and on Kamailio 5.6, database backend
(SQLite made by ``kemi db init``, with the ``time_attr``/``time_exten`` and leg columns added as
Kamailio's documentation asks): the same rows, the same column types (mode 1: two integers,
seconds and microseconds; mode 2: a double; 3/4: text), one row per leg with NULL where an AVP
has no value for that leg, one row with NULL legs when no AVP is set.
"""

from __future__ import annotations

import calendar
import sqlite3
import subprocess
import sys
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
    not kamailio_available("acc.so", "tm.so", "db_sqlite.so"),
    reason="Kamailio 5.6 with acc and db_sqlite is not installed")]

CFG = cfg_preamble("db_sqlite", "tm", "sl", "pv", "acc") + """modparam("acc", "db_flag", 1)
modparam("acc", "db_url", "sqlite:///{dir}/acc.db")
modparam("acc", "multi_leg_info", "leg_src=$avp(src);leg_dst=$avp(dst)")
modparam("acc", "time_attr", "tattr")
modparam("acc", "time_exten", "texten")
modparam("acc", "time_mode", MODE)
request_route {
  setflag(1);
  if ($hdr(X-T) == "legs") {
    $avp(src) = "alice"; $avp(dst) = "bob";
    $avp(src) = "bob"; $avp(dst) = "carol";
    $avp(src) = "carol";
  }
  acc_db_request("299 now", "acc");
  t_newtran();
  t_reply("200", "Fine");
}
"""

TO = "<sip:u@127.0.0.1>;tag=callee"  # Kamailio writes an empty To-tag as NULL (refused)


def make_db(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "kemi_core.cli", "db", "init", f"sqlite:///{path}",
                    "acc"], check=True, capture_output=True, timeout=60)
    with sqlite3.connect(path) as conn:
        for column in ("tattr", "texten", "leg_src", "leg_dst"):  # no declared type: kept as bound
            conn.execute(f"ALTER TABLE acc ADD COLUMN {column}")


def rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT callid, sip_code, leg_src, leg_dst, typeof(tattr), typeof(texten), tattr, "
            "texten, (time - 2440587.5) * 86400 FROM acc ORDER BY id").fetchall()


@pytest.mark.parametrize("mode", [1, 2, 4])
def test_db_time_mode_and_legs_match_kamailio(tmp_path: Path, mode: int) -> None:
    dbs = {who: tmp_path / who / "acc.db" for who in ("kemi", "kamailio")}
    for path in dbs.values():
        make_db(path)
    messages = [request_text("INVITE", extra="X-T: legs", call_id="dl-1", to=TO),
                request_text("MESSAGE", call_id="dl-2", to=TO)]
    with side_by_side(CFG.replace("MODE", str(mode)), tmp_path) as pair:
        ours, theirs = pair.both(messages)
        for path in dbs.values():  # 3 legs x 2 records + 1 x 2 records
            wait_until(lambda p=path: len(rows(p)) >= 8, 10,  # type: ignore[misc]
                       lambda p=path: f"8 rows in {p}: {rows(p)}")
    assert [a.status for a in ours] == [a.status for a in theirs]
    got = {who: rows(path) for who, path in dbs.items()}
    same = {who: [r[:6] for r in found] for who, found in got.items()}
    assert same["kemi"] == same["kamailio"]
    assert [r[:4] for r in got["kemi"][:3]] == [
        ("dl-1", "299", "carol", "carol"), ("dl-1", "299", "bob", "bob"),
        ("dl-1", "299", "alice", None)]
    assert got["kemi"][6][:4] == ("dl-2", "299", None, None)
    for found in got.values():
        for r in found:
            tattr, texten, when = r[6], r[7], r[8]
            if mode == 1:
                assert abs(tattr - when) < 2 and 0 <= texten < 1_000_000  # type: ignore[operator]
            elif mode == 2:
                assert abs(tattr - when) < 2  # type: ignore[operator]
            else:  # UTC, as formatted by time_format's default
                utc = calendar.timegm(time.strptime(tattr, "%Y-%m-%d %H:%M:%S"))  # type: ignore[arg-type]
                assert abs(utc - when) < 2  # type: ignore[operator]
