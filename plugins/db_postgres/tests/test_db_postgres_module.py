"""db_postgres as a module uses it, on the suite's private PostgreSQL: its parameters reach the
session, postgresql:// is the same backend, and a refused login is an outage whose log never
shows the password."""

from __future__ import annotations

import logging

import pytest

import kemi_db_postgres
from kemi_core.api import Database, DbUnavailable, open_db
from kemi_core.testing import PostgresServer, offline_core


def _db(url: str, **params: object) -> Database:
    core, _ = offline_core(("db_postgres", kemi_db_postgres),
                           params={("db_postgres", k): v for k, v in params.items()})
    return open_db(core, url, user="acc")


def test_timeout_and_con_param_reach_the_session(postgres_server: PostgresServer) -> None:
    url = postgres_server.new_database()
    db = _db(url, timeout=2, con_param="application_name=kemi-test;client_encoding=UTF8")
    assert db.raw_query("SHOW statement_timeout") == [("2s",)]
    assert db.raw_query("SELECT current_setting('application_name')") == [("kemi-test",)]
    db.close()


def test_postgresql_scheme_is_the_same_backend(postgres_server: PostgresServer) -> None:
    url = postgres_server.new_database().replace("postgres://", "postgresql://")
    db = _db(url)
    assert db.raw_query(f"SELECT {db.placeholder}::int + 1", [41]) == [(42,)]
    db.close()


def test_refused_login_is_an_outage_logged_without_the_password(
        postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture) -> None:
    good = postgres_server.new_database()
    bad = good.replace(":kemi-test-pw@", ":Wr0ngSecret@")
    db = _db(bad, retry_interval=100)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DbUnavailable, match="password authentication failed") as info:
        db.raw_query("SELECT 1")
    assert "Wr0ngSecret" not in str(info.value)
    assert "Wr0ngSecret" not in caplog.text and "postgres://kemi:***@" in caplog.text
