"""Cost of one database call through kemi's DB layer (not a test; run it by hand or from
`make bench`): what a usrloc db_mode 3 lookup, a registration insert and a refresh cost a worker.

For each backend, on the `location` table holding N registrations:
  lookup  query(LOCATION, {"username", "domain"})  -> one row, every column (a usrloc lookup)
  insert  insert(LOCATION, row)                     (a new registration, autocommit)
  update  update(LOCATION, {expires, cseq, last_modified}, {"ruid"})  (a re-REGISTER)
and the same statements through the bare driver (sqlite3 / psycopg) for the layer's own cost.
Wall time and this process's CPU time per call (the database server's CPU is not counted).
SQLite: a file in /tmp, WAL, synchronous=NORMAL (kemi's defaults). PostgreSQL: a private server
on 127.0.0.1 over TCP with fsync and synchronous_commit ON (unlike the test suite's server).
The last line printed is one JSON object.
Usage: python bench/db_ops.py [calls-per-op [rows]]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kemi_core.db import Database, open_standalone, tables  # noqa: E402
from kemi_core.db.provision import create_tables  # noqa: E402
from kemi_core.testing.postgres import PostgresServer, unavailable_reason  # noqa: E402

LOC = tables.LOCATION


def _row(i: int, now: int) -> dict[str, Any]:
    return {"ruid": f"uloc-{i}", "username": f"user{i}", "domain": "example.com",
            "contact": f"sip:user{i}@192.0.2.{i % 250}:5060;transport=udp", "expires": now + 3600,
            "q": -1.0, "callid": f"call-{i}@host", "cseq": 1, "last_modified": now,
            "user_agent": "bench", "socket": "udp:127.0.0.1:5060", "methods": 8191,
            "connection_id": -1}


def _time(fn: Callable[[int], Any], calls: int) -> tuple[float, float]:
    """(wall us, CPU us) per call, best of 3 rounds."""
    best = (float("inf"), float("inf"))
    for _ in range(3):
        w0, c0 = time.perf_counter(), time.process_time()
        for i in range(calls):
            fn(i)
        wall = (time.perf_counter() - w0) / calls * 1e6
        cpu = (time.process_time() - c0) / calls * 1e6
        best = min(best, (wall, cpu))
    return best


def measure(db: Database, rows: int, calls: int) -> dict[str, dict[str, float]]:
    now = int(time.time())
    create_tables(db, tables.tables_for(["usrloc"]))
    db.delete(LOC)
    with db.transaction():
        db.insert_many(LOC, [_row(i, now) for i in range(rows)])
    out: dict[str, dict[str, float]] = {}
    lookup = _time(lambda i: db.query(LOC, {"username": f"user{i % rows}",
                                            "domain": "example.com"}), calls)
    base = [rows + 10**6]

    def insert(_: int) -> None:
        base[0] += 1
        db.insert(LOC, _row(base[0], now))

    ins = _time(insert, calls)
    upd = _time(lambda i: db.update(LOC, {"expires": now + 7200, "cseq": i, "last_modified": now},
                                    {"ruid": f"uloc-{i % rows}"}), calls)
    for name, (wall, cpu) in (("lookup", lookup), ("insert", ins), ("update", upd)):
        out[name] = {"wall_us": round(wall, 1), "cpu_us": round(cpu, 1)}
    out.update(_bare(db, rows, calls, now))
    return out


def _bare(db: Database, rows: int, calls: int, now: int) -> dict[str, dict[str, float]]:
    """The lookup and the update through the driver alone, same SQL, same connection kind."""
    from kemi_core.db import sql

    ph = db.placeholder
    cols = LOC.column_names
    select, _ = sql.select(ph, "location", cols, {"username": "x", "domain": "y"})
    update, _ = sql.update(ph, "location", ("expires", "cseq", "last_modified"), {"ruid": "x"})
    conn = db.backend.connect(db.url, db.link.limits)
    exp = db.backend.encode_datetime(now + 7200)
    mod = db.backend.encode_datetime(now)
    lookup = _time(lambda i: conn.execute(select, [f"user{i % rows}", "example.com"]), calls)
    upd = _time(lambda i: conn.execute(update, [exp, i, mod, f"uloc-{i % rows}"]), calls)
    conn.close()
    return {"lookup_driver": {"wall_us": round(lookup[0], 1), "cpu_us": round(lookup[1], 1)},
            "update_driver": {"wall_us": round(upd[0], 1), "cpu_us": round(upd[1], 1)}}


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    results: dict[str, Any] = {"calls": calls, "rows": rows}
    with tempfile.TemporaryDirectory() as tmp:
        db = open_standalone(f"sqlite://{tmp}/bench.db")
        db.create_database()
        results["sqlite"] = measure(db, rows, calls)
        db.close()
    reason = unavailable_reason()
    if reason is None:
        durable = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
        with PostgresServer(settings=durable) as pg:
            db = open_standalone(pg.new_database())
            results["postgres"] = measure(db, rows, calls)
            db.close()
    else:
        results["postgres"] = f"skipped: {reason}"
    for backend in ("sqlite", "postgres"):
        res = results[backend]
        if isinstance(res, str):
            print(f"{backend:9} {res}")
            continue
        for op, fig in res.items():
            print(f"{backend:9} {op:14} {fig['wall_us']:9.1f} us wall {fig['cpu_us']:9.1f} us CPU")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
