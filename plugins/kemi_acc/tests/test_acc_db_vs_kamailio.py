"""acc's database backend on kemi and on Kamailio 5.6: the same requests give the same rows in
the ``acc`` and ``missed_calls`` tables (SQLite files made by ``kemi db init ... acc acc_extra``,
the official example's ``db_extra`` columns), the row ids, times and the random To-tags aside.
The log and the database have their own flags (log_flag/db_flag ...), as Kamailio documents.

Two differences are kept on purpose, where Kamailio 5.6.3 loses a record: it writes an empty
To-tag (a request accounted before any reply, a transaction answered by the server itself) as
NULL, which the table's NOT NULL constraint refuses; and its acc_request() fails to build the
database statement ("unrecognized token"). kemi writes those rows (with an empty To-tag).

acc's ``time_mode`` and ``multi_leg_info`` on kemi and on Kamailio 5.6, database backend
(SQLite made by ``kemi db init``, with the ``time_attr``/``time_exten`` and leg columns added as
Kamailio's documentation asks): the same rows, the same column types (mode 1: two integers,
seconds and microseconds; mode 2: a double; 3/4: text), one row per leg with NULL where an AVP
has no value for that leg, one row with NULL legs when no AVP is set.
"""

from __future__ import annotations

import calendar
import sqlite3
import time
from pathlib import Path

import pytest

from kemi_core.testing import (
    cfg_preamble,
    db_init,
    kamailio_available,
    request_text,
    side_by_side,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("acc.so", "tm.so", "db_sqlite.so"),
    reason="Kamailio 5.6 with acc and db_sqlite is not installed")]

CFG = cfg_preamble("db_sqlite", "tm", "sl", "pv", "acc") + """modparam("acc", "log_flag", 1)
modparam("acc", "db_flag", 1)
modparam("acc", "db_missed_flag", 2)
modparam("acc", "failed_transaction_flag", 3)
modparam("acc", "db_url", "sqlite:///{dir}/acc.db")
modparam("acc", "db_extra",
    "src_user=$fU;src_domain=$fd;src_ip=$si;dst_ouser=$tU;dst_user=$rU;dst_domain=$rd")
request_route {
  if ($hdr(X-T) == "req") {
    acc_db_request("403 Forbidden here", "acc");
    sl_send_reply("403", "Forbidden here");
    exit;
  }
  if ($hdr(X-T) == "both") {
    acc_request("404 Not Here", "missed_calls");
    sl_send_reply("404", "Not Here");
    exit;
  }
  if ($hdr(X-T) != "dbmissed-only") { setflag(1); }
  if ($hdr(X-T) == "missed" || $hdr(X-T) == "dbmissed-only") { setflag(2); }
  if ($hdr(X-T) == "failed") { setflag(3); }
  t_newtran();
  if ($hdr(X-T) == "ok") { t_reply("200", "Fine"); exit; }
  t_reply("486", "Busy Here");
}
"""

COLUMNS = ("method", "from_tag", "callid", "sip_code", "sip_reason", "src_user", "src_domain",
           "src_ip", "dst_ouser", "dst_user", "dst_domain")


def make_db(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    db_init(f"sqlite:///{path}", "acc", "acc_extra")


def rows(path: Path, table: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT {', '.join(COLUMNS)}, typeof(time), to_tag != '' "  # noqa: S608
                            f"FROM {table} ORDER BY id").fetchall()


def julian_times(path: Path, table: str) -> list[float]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute(f"SELECT time FROM {table}")]  # noqa: S608


def test_acc_rows_match_kamailio(tmp_path: Path) -> None:
    dbs = {who: tmp_path / who / "acc.db" for who in ("kemi", "kamailio")}
    for path in dbs.values():
        make_db(path)
    messages = [request_text("INVITE", extra="X-T: req", call_id="accdb-1"),
                request_text("MESSAGE", extra="X-T: ok", call_id="accdb-2"),
                request_text("INVITE", extra="X-T: busy", call_id="accdb-3"),
                request_text("INVITE", extra="X-T: missed", call_id="accdb-4"),
                request_text("INVITE", extra="X-T: failed", call_id="accdb-5"),
                request_text("INVITE", extra="X-T: dbmissed-only", call_id="accdb-6"),
                request_text("OPTIONS", extra="X-T: both", call_id="accdb-7")]
    with side_by_side(CFG, tmp_path) as pair:
        ours, theirs = pair.both(messages)

        def settled() -> bool:  # what each server writes (see above)
            return (len(rows(dbs["kamailio"], "acc")) >= 1
                    and len(rows(dbs["kamailio"], "missed_calls")) >= 2
                    and len(rows(dbs["kemi"], "acc")) >= 3
                    and len(rows(dbs["kemi"], "missed_calls")) >= 3)

        wait_until(settled, 10, lambda: f"acc rows: { {w: rows(p, 'acc') for w, p in dbs.items()} }")
    assert [a.status for a in ours] == [a.status for a in theirs]
    for table in ("acc", "missed_calls"):  # the rows both write are the same
        theirs_rows = rows(dbs["kamailio"], table)
        ours_rows = [r for r in rows(dbs["kemi"], table) if r[-1]]
        if table == "missed_calls":
            ours_rows = [r for r in ours_rows if r[2] != "accdb-7"]
        assert ours_rows == theirs_rows, table
    got = rows(dbs["kemi"], "acc")
    assert [(r[0], r[2], r[3], r[-1]) for r in got] == [
        ("INVITE", "accdb-1", "403", 0), ("MESSAGE", "accdb-2", "200", 0),
        ("INVITE", "accdb-5", "486", 1)]
    assert [r[2] for r in rows(dbs["kemi"], "missed_calls")] == ["accdb-4", "accdb-6", "accdb-7"]
    assert [r[9:11] for r in got][0] == ("u", "127.0.0.1")  # db_extra: $rU, $rd
    now_julian = time.time() / 86400 + 2440587.5
    for t in julian_times(dbs["kemi"], "acc"):
        assert abs(t - now_julian) < 0.01  # Kamailio's DATETIME in SQLite: a Julian day


TIME_LEGS_CFG = cfg_preamble("db_sqlite", "tm", "sl", "pv", "acc") + """modparam("acc", "db_flag", 1)
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


def make_leg_db(path: Path) -> None:
    make_db(path)
    with sqlite3.connect(path) as conn:
        for column in ("tattr", "texten", "leg_src", "leg_dst"):  # no declared type: kept as bound
            conn.execute(f"ALTER TABLE acc ADD COLUMN {column}")


def leg_rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT callid, sip_code, leg_src, leg_dst, typeof(tattr), typeof(texten), tattr, "
            "texten, (time - 2440587.5) * 86400 FROM acc ORDER BY id").fetchall()


@pytest.mark.parametrize("mode", [1, 2, 4])
def test_db_time_mode_and_legs_match_kamailio(tmp_path: Path, mode: int) -> None:
    dbs = {who: tmp_path / who / "acc.db" for who in ("kemi", "kamailio")}
    for path in dbs.values():
        make_leg_db(path)
    messages = [request_text("INVITE", extra="X-T: legs", call_id="dl-1", to=TO),
                request_text("MESSAGE", call_id="dl-2", to=TO)]
    with side_by_side(TIME_LEGS_CFG.replace("MODE", str(mode)), tmp_path) as pair:
        ours, theirs = pair.both(messages)
        for path in dbs.values():  # 3 legs x 2 records + 1 x 2 records
            wait_until(lambda: len(leg_rows(path)) >= 8, 10,  # noqa: B023
                       lambda: f"8 rows in {path}: {leg_rows(path)}")  # noqa: B023
    assert [a.status for a in ours] == [a.status for a in theirs]
    got = {who: leg_rows(path) for who, path in dbs.items()}
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
