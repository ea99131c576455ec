"""``kemi db init``: creates the database and the tables, says what it did, changes nothing the
second time, prints the SQL with --sql, and refuses bad input with a clear message."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from kemi_core.cli import app
from kemi_core.testing.postgres import PostgresServer

runner = CliRunner()


def test_init_creates_then_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "kamailio.db"
    out = runner.invoke(app, ["db", "init", f"sqlite://{path}", "usrloc", "auth_db"])
    assert out.exit_code == 0, out.output
    assert f"created database sqlite://{path}" in out.output
    assert "created: version, location, location_attrs, subscriber" in out.output
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT table_name, table_version FROM version ORDER BY id").fetchall() == [
            ("version", 1), ("location", 9), ("location_attrs", 1), ("subscriber", 7)]
    again = runner.invoke(app, ["db", "init", f"sqlite://{path}", "usrloc", "auth_db"])
    assert again.exit_code == 0 and "created" not in again.output
    assert "already there: version, location, location_attrs, subscriber" in again.output
    more = runner.invoke(app, ["db", "init", f"sqlite://{path}", "acc"])
    assert more.exit_code == 0 and "created: acc, acc_cdrs, missed_calls" in more.output


def test_sql_option_prints_an_idempotent_script(tmp_path: Path) -> None:
    out = runner.invoke(app, ["db", "init", "sqlite:///unused.db", "htable", "--sql"])
    assert out.exit_code == 0
    assert 'CREATE TABLE IF NOT EXISTS "htable" (' in out.output
    assert "SELECT 'htable', 2 WHERE NOT EXISTS" in out.output
    with sqlite3.connect(tmp_path / "x.db") as conn:
        conn.executescript(out.output)
        conn.executescript(out.output)
        assert conn.execute("SELECT count(*) FROM version").fetchone() == (2,)
    assert not Path("/unused.db").exists()


def test_bad_input_is_refused_clearly(tmp_path: Path) -> None:
    out = runner.invoke(app, ["db", "init", f"sqlite://{tmp_path}/k.db", "nosuch"])
    assert out.exit_code == 2 and "no tables known for module(s) nosuch" in out.output
    out = runner.invoke(app, ["db", "init", "/var/lib/k.db"])
    assert out.exit_code == 1 and "has no scheme" in out.output
    out = runner.invoke(app, ["db", "init", "mysql://u:pw@localhost/kamailio"])
    assert out.exit_code == 1 and "pip install kemi-db-mysql" in out.output and "pw" not in out.output
    out = runner.invoke(app, ["db", "init", f"sqlite://{tmp_path}/no/such/dir/k.db"])
    assert out.exit_code == 1 and "cannot create the database file" in out.output


def test_version_mismatch_is_reported_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "kamailio.db"
    assert runner.invoke(app, ["db", "init", f"sqlite://{path}", "usrloc"]).exit_code == 0
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE version SET table_version = 8 WHERE table_name = 'location'")
    out = runner.invoke(app, ["db", "init", f"sqlite://{path}", "usrloc"])
    assert out.exit_code == 1 and "location has version 8, kemi expects 9" in out.output
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT table_version FROM version WHERE table_name = 'location'"
                            ).fetchone() == (8,)


def test_init_creates_a_postgres_database(postgres_server: PostgresServer) -> None:
    url = postgres_server.url("made_by_kemi_db_init")
    out = runner.invoke(app, ["db", "init", url, "dispatcher"])
    assert out.exit_code == 0, out.output
    assert "created database postgres://kemi:***@" in out.output and "kemi-test-pw" not in out.output
    assert "created: version, dispatcher" in out.output
    assert postgres_server.psql("made_by_kemi_db_init",
                                "SELECT table_version FROM version WHERE table_name = 'dispatcher'"
                                ).strip() == "4"


def test_acc_extra_adds_the_official_examples_accounting_columns(tmp_path: Path) -> None:
    path = tmp_path / "kamailio.db"
    assert runner.invoke(app, ["db", "init", f"sqlite://{path}", "acc"]).exit_code == 0
    out = runner.invoke(app, ["db", "init", f"sqlite://{path}", "acc_extra"])
    assert out.exit_code == 0, out.output
    assert "columns added: acc.src_user, acc.src_domain, acc.src_ip" in out.output
    assert "missed_calls.dst_domain" in out.output
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO acc (method, time, src_user) VALUES ('INVITE', 0, 'alice')")
        assert conn.execute("SELECT src_user, dst_domain FROM acc").fetchall() == [("alice", "")]
    again = runner.invoke(app, ["db", "init", f"sqlite://{path}", "acc", "acc_extra"])
    assert again.exit_code == 0 and "columns added" not in again.output
