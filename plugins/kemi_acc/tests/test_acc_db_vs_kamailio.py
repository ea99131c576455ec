"""acc's database backend on kemi and on Kamailio 5.6: the same requests give the same rows in
the ``acc`` and ``missed_calls`` tables (SQLite files made by ``kemi db init ... acc acc_extra``,
the official example's ``db_extra`` columns), the row ids, times and the random To-tags aside.
The log and the database have their own flags (log_flag/db_flag ...), as Kamailio documents.

Two differences are kept on purpose, where Kamailio 5.6.3 loses a record: it writes an empty
To-tag (a request accounted before any reply, a transaction answered by the server itself) as
NULL, which the table's NOT NULL constraint refuses; and its acc_request() fails to build the
database statement ("unrecognized token"). kemi writes those rows (with an empty To-tag)."""

from __future__ import annotations

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
    subprocess.run([sys.executable, "-m", "kemi_core.cli", "db", "init", f"sqlite:///{path}",
                    "acc", "acc_extra"], check=True, capture_output=True, timeout=60)


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
