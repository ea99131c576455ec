"""The database goes away under a series of calls and comes back: calls fail with DbUnavailable
(one logged error, no exception of another kind, each call bounded), then work again once the
server is back. PostgreSQL here is a private server of this module, stopped and started by PID."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from kemi_core.db import Database, DbError, DbUnavailable, open_standalone, tables
from kemi_core.db.provision import create_tables
from kemi_core.testing.postgres import PostgresServer, unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None,
                                reason=unavailable_reason() or "")

LOC = tables.LOCATION


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    with PostgresServer() as pg:
        yield pg


def _open(url: str, **params: int) -> Database:
    db = open_standalone(url, {"retry_interval": 100, "retry_max_interval": 400, **params})
    create_tables(db, tables.tables_for(["usrloc"]))
    return db


def _row(ruid: str) -> dict[str, object]:
    return {"ruid": ruid, "username": "alice", "domain": "example.com",
            "contact": f"sip:alice@192.0.2.1;x={ruid}", "expires": int(time.time()) + 60}


def test_postgres_stopped_and_started_under_calls(server: PostgresServer,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    db = _open(server.new_database())
    db.insert(LOC, _row("before"))
    caplog.set_level(logging.DEBUG, logger="kemi.db")

    server.stop()
    outcomes: list[str] = []
    slowest = 0.0
    end = time.monotonic() + 1.5
    while time.monotonic() < end:  # a series of calls while the server is down
        start = time.monotonic()
        try:
            db.query(LOC, {"username": "alice"}, ("ruid",))
            outcomes.append("ok")
        except DbUnavailable:
            outcomes.append("down")
        slowest = max(slowest, time.monotonic() - start)
        time.sleep(0.01)
    assert set(outcomes) == {"down"} and len(outcomes) > 20
    assert slowest < 3.0  # bounded by the connect timeout at worst; most fail at once
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors  # one logged error for the whole outage
    attempts = [r for r in caplog.records if "still down" in r.getMessage()]
    assert len(attempts) < len(outcomes) / 4  # backed off: not a connection attempt per call

    server.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            rows = db.query(LOC, {"username": "alice"}, ("ruid",))
            break
        except DbUnavailable:
            assert time.monotonic() < deadline, "no reconnection within 10 s"
            time.sleep(0.02)
    assert rows == [{"ruid": "before"}]
    db.insert(LOC, _row("after"))
    assert len(db.query(LOC, None, ("ruid",))) == 2
    assert any("connected again" in r.getMessage() for r in caplog.records)
    db.close()


def test_a_restart_between_calls_costs_no_failed_call(server: PostgresServer) -> None:
    db = _open(server.new_database())
    db.insert(LOC, _row("a"))
    server.stop()
    server.start()
    # the old connection is dead; a read reconnects once at once and succeeds
    assert db.query(LOC, None, ("ruid",)) == [{"ruid": "a"}]
    db.close()


def test_statement_timeout_is_a_statement_error_not_an_outage(server: PostgresServer) -> None:
    db = _open(server.new_database(), timeout=1)
    start = time.monotonic()
    with pytest.raises(DbError, match="statement timeout") as info:
        db.raw_query("SELECT pg_sleep(5)")
    assert not isinstance(info.value, DbUnavailable)
    assert time.monotonic() - start < 3
    assert db.raw_query("SELECT 1") == [(1,)] and db.available
    db.close()


def test_nothing_listening_fails_fast(server: PostgresServer) -> None:
    from kemi_core.testing.process import free_port

    db = open_standalone(f"postgres://kemi:x@127.0.0.1:{free_port()}/nothing",
                         {"retry_interval": 100})
    start = time.monotonic()
    with pytest.raises(DbUnavailable, match="cannot connect"):
        db.query(LOC, None, ("ruid",))
    with pytest.raises(DbUnavailable, match="next connection attempt"):
        db.query(LOC, None, ("ruid",))
    assert time.monotonic() - start < 3 and not db.available
