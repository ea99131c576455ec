"""db_sqlite as a module uses it: WAL and busy timeout on each connection, bounded statements,
a missing file as an outage with back-off (one logged error), and recovery when it appears."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

import kemi_db_sqlite
from kemi_core.api import ConfigError, Database, DbError, DbUnavailable, db, open_db
from kemi_core.testing import offline_core


def _db(path: Path, **params: Any) -> Database:
    core, _ = offline_core(("db_sqlite", kemi_db_sqlite),
                           params={("db_sqlite", k): v for k, v in params.items()})
    return open_db(core, f"sqlite://{path}", user="usrloc")


def _init(database: Database) -> None:
    database.create_database()
    db.create_tables(database, db.tables.tables_for(["usrloc"]))


def test_each_connection_is_in_wal_mode(tmp_path: Path) -> None:
    database = _db(tmp_path / "k.db")
    _init(database)
    assert database.raw_query("PRAGMA journal_mode") == [("wal",)]
    assert database.raw_query("PRAGMA busy_timeout") == [(2000,)]


def test_journal_mode_from_kamailios_db_set(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    database = _db(path, db_set=f"{path};journal_mode=delete")
    _init(database)
    assert database.raw_query("PRAGMA journal_mode") == [("delete",)]


def test_a_url_whose_backend_is_not_loaded_is_a_config_error(tmp_path: Path) -> None:
    core, _ = offline_core(("db_sqlite", kemi_db_sqlite))
    with pytest.raises(ConfigError, match=r'usrloc: db_url postgres://u:\*\*\*@h:1/kam needs the '
                       r'database module db_postgres: add loadmodule "db_postgres.so"'):
        open_db(core, "postgres://u:pw@h:1/kam", user="usrloc")
    assert open_db(core, f"sqlite://{tmp_path}/a.db") is open_db(core, f"sqlite://{tmp_path}/a.db")


def test_a_writer_waits_for_the_lock_at_most_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    database = _db(path, busy_timeout=300)
    _init(database)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        start = time.monotonic()
        with pytest.raises(DbError, match="locked") as info:
            database.insert("location", {"ruid": "r", "username": "u", "contact": "sip:u@h"})
        assert not isinstance(info.value, DbUnavailable)  # a busy file is not an outage
        assert 0.25 < time.monotonic() - start < 3
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    database.insert("location", {"ruid": "r", "username": "u", "contact": "sip:u@h"})


def test_a_runaway_statement_is_interrupted_at_the_statement_timeout(tmp_path: Path) -> None:
    database = _db(tmp_path / "k.db", statement_timeout=200)
    _init(database)
    endless = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
               "SELECT count(*) FROM n")
    start = time.monotonic()
    with pytest.raises(DbError, match="interrupted"):
        database.raw_query(endless)
    assert time.monotonic() - start < 3
    assert database.raw_query("SELECT 1") == [(1,)]


def test_missing_file_is_an_outage_with_back_off_then_recovery(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "k.db"
    database = _db(path, retry_interval=100, retry_max_interval=200)
    caplog.set_level(logging.DEBUG, logger="kemi.db")
    failures = []
    for _ in range(20):
        with pytest.raises(DbUnavailable) as info:
            database.query("location", {"username": "u"}, ("contact",))
        failures.append(str(info.value))
    assert not path.exists()  # a worker never creates the file: that is `kemi db init`'s job
    assert any("next connection attempt" in f for f in failures)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "cannot connect" in errors[0].getMessage()
    _init(_db(path))
    deadline = time.monotonic() + 5
    while True:
        try:
            assert database.query("location", {"username": "u"}, ("contact",)) == []
            break
        except DbUnavailable:
            assert time.monotonic() < deadline, "no reconnection within 5 s"
            time.sleep(0.02)
    assert any("connected again" in r.getMessage() for r in caplog.records)
