"""The DB API on every backend: the five operations, types, NULLs, transactions, the version
table, statement errors that leave the connection usable, and parameterised values."""

from __future__ import annotations

import datetime
import time

import pytest

from kemi_core.db import Database, DbError, DbVersionError, tables
from kemi_core.db.provision import create_tables

LOC = tables.LOCATION
NOW = int(time.time())


def contact(ruid: str, user: str = "alice", **extra: object) -> dict[str, object]:
    row: dict[str, object] = {"ruid": ruid, "username": user, "domain": "example.com",
                              "contact": f"sip:{user}@192.0.2.1:5060;ob", "expires": NOW + 3600,
                              "q": 0.5, "callid": f"call-{ruid}", "cseq": 7,
                              "last_modified": NOW, "user_agent": "SIPp"}
    row.update(extra)
    return row


def test_insert_then_query_round_trips_every_type(db: Database) -> None:
    db.insert(LOC, contact("r1", path="<sip:edge;lr>", methods=None))
    [row] = db.query(LOC, {"username": "alice", "domain": "example.com"})
    assert row["ruid"] == "r1" and row["contact"] == "sip:alice@192.0.2.1:5060;ob"
    assert row["expires"] == NOW + 3600 and row["last_modified"] == NOW
    assert row["q"] == pytest.approx(0.5) and row["cseq"] == 7
    assert row["path"] == "<sip:edge;lr>" and row["methods"] is None and row["received"] is None
    # defaults of the layout for what was not given
    assert row["flags"] == 0 and row["reg_id"] == 0 and row["instance"] is None


def test_where_null_operators_order_and_limit(db: Database) -> None:
    db.insert(LOC, contact("a", q=0.1, expires=NOW + 10))
    db.insert(LOC, contact("b", q=0.9, expires=NOW + 20, domain=None))
    db.insert(LOC, contact("c", q=0.5, expires=NOW - 5))
    assert [r["ruid"] for r in db.query(LOC, {"domain": None}, ("ruid",))] == ["b"]
    expired = db.query(LOC, [("expires", "<", NOW)], ("ruid", "expires"))
    assert expired == [{"ruid": "c", "expires": NOW - 5}]
    by_q = db.query(LOC, {"username": "alice"}, ("ruid",), order_by="-q")
    assert [r["ruid"] for r in by_q] == ["b", "c", "a"]
    assert len(db.query(LOC, None, ("ruid",), order_by="ruid", limit=2)) == 2
    assert db.query(LOC, [("domain", "!=", None), ("q", ">=", 0.5)], ("ruid",)) == [{"ruid": "c"}]


def test_update_delete_counts_and_replace(db: Database) -> None:
    db.insert_many(LOC, [contact("r1"), contact("r2"), contact("r3", user="bob")])
    assert db.update(LOC, {"cseq": 8, "expires": NOW + 60}, {"username": "alice"}) == 2
    assert {r["cseq"] for r in db.query(LOC, {"username": "alice"}, ("cseq",))} == {8}
    db.replace(LOC, contact("r3", user="bob", contact="sip:bob@198.51.100.7"), key=("ruid",))
    db.replace(LOC, contact("r4", user="carol"), key=("ruid",))
    assert db.query(LOC, {"ruid": "r3"}, ("contact",)) == [{"contact": "sip:bob@198.51.100.7"}]
    assert len(db.query(LOC, None, ("ruid",))) == 4
    assert db.delete(LOC, {"username": "alice"}) == 2
    assert db.delete(LOC, {"username": "nobody"}) == 0
    assert sorted(r["ruid"] for r in db.query(LOC, None, ("ruid",))) == ["r3", "r4"]


def test_injection_attempts_are_stored_and_matched_as_plain_text(db: Database) -> None:
    evil_user = "x' OR '1'='1"
    evil_domain = "example.com'; DROP TABLE subscriber; --"
    db.insert(tables.SUBSCRIBER, {"username": evil_user, "domain": evil_domain, "password": "pw"})
    db.insert(tables.SUBSCRIBER, {"username": "alice", "domain": "example.com", "password": "a"})
    rows = db.query(tables.SUBSCRIBER, {"username": evil_user, "domain": evil_domain},
                    ("username", "domain", "password"))
    assert rows == [{"username": evil_user, "domain": evil_domain, "password": "pw"}]
    assert db.query(tables.SUBSCRIBER, {"username": "x"}, ("id",)) == []
    assert len(db.query(tables.SUBSCRIBER, None, ("id",))) == 2


def test_statement_error_is_a_db_error_and_the_connection_stays_usable(db: Database) -> None:
    db.insert(LOC, contact("dup"))
    with pytest.raises(DbError):
        db.insert(LOC, contact("dup"))  # location_ruid_idx is unique
    with pytest.raises(DbError):
        db.query("no_such_table", None, ("x",))
    assert db.query(LOC, {"ruid": "dup"}, ("ruid",)) == [{"ruid": "dup"}]


def test_transactions_commit_together_or_not_at_all(db: Database) -> None:
    with db.transaction():
        db.insert(LOC, contact("t1"))
        with db.transaction():  # nested: joins the outer one
            db.insert(LOC, contact("t2"))
    with pytest.raises(DbError), db.transaction():
        db.insert(LOC, contact("t3"))
        db.insert(LOC, contact("t1"))  # duplicate: the whole block is rolled back
    assert sorted(r["ruid"] for r in db.query(LOC, None, ("ruid",))) == ["t1", "t2"]


def test_version_table_checks(db: Database) -> None:
    db.check_version(LOC)
    db.check_version("subscriber", 7)
    assert db.table_version("location") == 9
    with pytest.raises(DbVersionError, match=r"invalid version 9 for table location found, expected 8"):
        db.check_version(LOC, 8, user="usrloc")
    db.update(tables.VERSION, {"table_version": 8}, {"table_name": "location"})
    with pytest.raises(DbVersionError, match="expected 9"):
        db.check_version(LOC)
    with pytest.raises(DbVersionError, match="has version 8, kemi expects 9"):
        create_tables(db, tables.tables_for(["usrloc"]))
    db.delete(tables.VERSION, {"table_name": "location"})
    with pytest.raises(DbVersionError, match="invalid version 0 for table location found, "
                       "expected 9 .* it has no row there: kemi db init"):
        db.check_version(LOC)


def test_renamed_table_keeps_its_layout(db: Database) -> None:
    other = LOC.renamed("location_b")
    create_tables(db, [other])
    db.insert(other, contact("x"))
    assert db.query(other, None, ("expires",)) == [{"expires": NOW + 3600}]
    db.check_version(other)


def test_background_jobs_run_off_the_calling_thread(db: Database) -> None:
    import threading

    def flush(rows: list[dict[str, object]]) -> tuple[str, int]:
        with db.transaction():
            db.insert_many(LOC, rows)
        return threading.current_thread().name, len(db.query(LOC, None, ("id",)))

    name, count = db.submit(flush, [contact(f"bg{i}") for i in range(50)]).result(timeout=10)
    assert name != threading.current_thread().name and count == 50
    assert len(db.query(LOC, None, ("id",))) == 50


def test_background_job_awaited_from_an_event_loop(db: Database) -> None:
    import asyncio

    async def main() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.ensure_future(ticker())
        rows = await db.run_in_background(db.query, LOC, None, ("id",))
        task.cancel()
        return len(rows) + (1 if ticks > 0 else 0)

    db.insert(LOC, contact("z"))
    assert asyncio.run(main()) == 2


def test_missing_columns_of_an_existing_table_are_added(db: Database) -> None:
    db.insert(tables.ACC, {"method": "INVITE", "callid": "c1", "time": NOW})
    [acc, missed] = tables.OPTIONAL_TABLES["acc_extra"]
    report = create_tables(db, [acc, missed])
    assert report.added[:2] == ["acc.src_user", "acc.src_domain"] and len(report.added) == 12
    db.insert(acc, {"method": "BYE", "callid": "c2", "time": NOW, "src_user": "alice"})
    rows = db.query(acc, None, ("callid", "src_user", "dst_domain", "time"), order_by="callid")
    assert rows == [{"callid": "c1", "src_user": "", "dst_domain": "", "time": NOW},
                    {"callid": "c2", "src_user": "alice", "dst_domain": "", "time": NOW}]
    assert create_tables(db, [acc, missed]).added == []


def test_update_by_one_column_keeps_its_statement_and_encodes_as_the_general_path(
        db: Database) -> None:
    db.insert_many(LOC, [contact("r1"), contact("r2"), contact("r3", user="bob", domain=None)])
    for cseq in (5, 6):  # the second time from the kept statement
        assert db.update(LOC, {"cseq": cseq, "expires": NOW + cseq}, {"ruid": "r2"}) == 1
        assert db.query(LOC, {"ruid": "r2"}, ("cseq", "expires")) == [
            {"cseq": cseq, "expires": NOW + cseq}]
    assert db.query(LOC, {"ruid": "r1"}, ("cseq",)) == [{"cseq": 7}]
    # a None to match is IS NULL (the general path), not a statement kept with "= ?"
    assert db.update(LOC, {"cseq": 9}, {"domain": None}) == 1
    assert db.query(LOC, {"ruid": "r3"}, ("cseq",)) == [{"cseq": 9}]
    assert db.update(LOC, {"cseq": 9}, {"ruid": "nobody"}) == 0
    with pytest.raises(ValueError):
        db.update(LOC, {"cseq": 1}, {"ruid; DROP TABLE location": "x"})


def test_update_by_one_column_encodes_every_type_as_the_general_path(db: Database) -> None:
    """The kept statement's parameters (DATETIMEs converted, the rest as they are) are what the
    general path's _encode makes of each value: bools, datetimes, floats, None, text."""
    db.insert_many(LOC, [contact("k1"), contact("k2")])
    stamp = datetime.datetime.fromtimestamp(NOW + 99)
    for values in ({"expires": NOW + 5, "q": 0.25, "flags": True, "received": "sip:x"},
                   {"expires": stamp, "cseq": False, "path": None, "last_modified": NOW + 2},
                   {"expires": float(NOW + 7), "last_modified": NOW + 1, "user_agent": "ua"}):
        assert db.update(LOC, values, {"ruid": "k1"}) == 1  # the kept statement
        assert db.update(LOC, values, {"ruid": "k2", "username": "alice"}) == 1  # general
        first, second = (db.query(LOC, {"ruid": ruid})[0] for ruid in ("k1", "k2"))
        assert {k: v for k, v in first.items() if k not in ("id", "ruid", "callid")} == \
            {k: v for k, v in second.items() if k not in ("id", "ruid", "callid")}
    # a DATETIME column to match is converted as well
    assert db.update(LOC, {"cseq": 3}, {"expires": NOW + 7}) == 2


def test_read_rows_answers_as_raw_query(db: Database) -> None:
    text = f"SELECT ruid, cseq FROM location WHERE username = {db.placeholder} ORDER BY ruid"
    assert db.read_rows(text, ("alice",)) == []  # (the first call: no connection yet)
    db.insert_many(LOC, [contact("r1"), contact("r2", cseq=9)])
    assert db.read_rows(text, ("alice",)) == db.raw_query(text, ("alice",)) == [("r1", 7), ("r2", 9)]
    with db.transaction():  # in a transaction: on its connection, seeing its rows
        db.insert(LOC, contact("r3"))
        assert len(db.read_rows(text, ("alice",))) == 3
    with pytest.raises(DbError) as raw:
        db.raw_query("SELECT nothing FROM no_such_table")
    with pytest.raises(DbError) as read:
        db.read_rows("SELECT nothing FROM no_such_table")
    assert str(read.value) == str(raw.value)
    assert db.read_rows(text, ("alice",))[2] == ("r3", 7)  # (the connection still serves)
