"""A connection never crosses a fork: a child (a worker) opens its own at its first call and
the parent's session goes on undisturbed, on both backends."""

from __future__ import annotations

import os
import time

from kemi_core.db import Database, DbError, tables

LOC = tables.LOCATION


def _child(db: Database) -> int:
    try:
        db.insert(LOC, {"ruid": f"child-{os.getpid()}", "username": "bob", "contact": "sip:b@h",
                        "expires": int(time.time()) + 60})
        for read in (db.read_rows, db.raw_query):
            try:  # a temporary table lives in one session: the parent's
                read("SELECT count(*) FROM fork_marker")
                return 5  # the child talked through the parent's connection
            except DbError:
                pass
        return 0 if len(db.query(LOC, None, ("ruid",))) == 2 else 3
    except BaseException:
        return 4


def test_children_use_their_own_connections(db: Database) -> None:
    db.insert(LOC, {"ruid": "parent", "username": "alice", "contact": "sip:a@h"})
    db.raw_query("CREATE TEMPORARY TABLE fork_marker (x INTEGER)")  # in the parent's session
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        os._exit(_child(db))
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # the parent goes on: its session was not used (nor closed) by the child
    rows = db.query(LOC, None, ("ruid",), order_by="ruid")
    assert [r["ruid"] for r in rows] == [f"child-{pid}", "parent"]
    db.insert(LOC, {"ruid": "parent-2", "username": "alice", "contact": "sip:a2@h"})
