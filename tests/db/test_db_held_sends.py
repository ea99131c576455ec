"""kemi's database layer sends what the worker holds before a statement (about_to_wait): a
reply routed before an insert that waits for SQLite's lock is on the wire during the wait."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from kemi_core.db import DbError, tables
from kemi_core.db.provision import create_tables
from kemi_core.db.standalone import open_standalone
from kemi_core.testing import one_send_held


def test_a_held_send_goes_out_before_a_statement_waits(tmp_path: Path) -> None:
    path = tmp_path / "kamailio.db"
    db = open_standalone(f"sqlite://{path}", {"busy_timeout": 300})
    db.create_database()
    create_tables(db, [tables.ACC])
    lock = sqlite3.connect(path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        with one_send_held() as senders:
            with pytest.raises(DbError):  # waited busy_timeout, then "database is locked"
                db.insert(tables.ACC, {"method": "MESSAGE"})
            assert senders == [threading.get_ident()]  # sent before, by the caller
    finally:
        lock.execute("ROLLBACK")
        lock.close()
        db.close()
