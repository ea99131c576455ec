"""kemi's tables are Kamailio's, both ways, on SQLite and PostgreSQL:

- Kamailio 5.6 (usrloc db_mode 2) runs on a database made by ``kemi db init``: no version
  complaint, it writes a registration that kemi reads, reads back a contact kemi wrote, and
  deletes an unregistered one;
- kemi reads and writes a database made from Kamailio's own schema files (Debian's package);
- both layouts are the same, column by column and index by index.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kemi_core.cli import app
from kemi_core.db import Database, open_standalone, tables
from kemi_core.db.provision import create_tables
from kemi_core.testing.kamailio import KamailioProcess, kamailio_available, kamcmd_available
from kemi_core.testing.postgres import PostgresServer
from kemi_core.testing.process import free_port
from kemi_core.testing.udp_client import UdpClient, request

SCHEMA_DIRS = {"sqlite": Path("/usr/share/kamailio/db_sqlite"),
               "postgres": Path("/usr/share/kamailio/postgres")}
#: kemi's module groups are named as Kamailio's schema files (``<module>-create.sql``).
SCHEMA_FILES = ["standard", *[m for m in tables.MODULE_TABLES if m != "standard"]]
KAMAILIO_MODULES = ("db_sqlite.so", "db_postgres.so", "usrloc.so", "registrar.so", "ctl.so",
                    "sl.so", "tm.so", "textops.so", "pv.so")

needs_schema = pytest.mark.skipif(not SCHEMA_DIRS["sqlite"].is_dir(),
                                  reason="Kamailio's schema files are not installed (Debian's kamailio)")
needs_kamailio = pytest.mark.skipif(
    not (kamailio_available(*KAMAILIO_MODULES) and kamcmd_available()),
    reason="Kamailio 5.6 with db_sqlite/db_postgres, usrloc, registrar and kamcmd is not installed")


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """``new_url(name)``: an empty database's URL on the backend under test."""
    server: PostgresServer | None = None
    if backend == "postgres":
        server = request.getfixturevalue("postgres_server")

    def make(name: str) -> str:
        if server is not None:
            return server.new_database()
        return f"sqlite://{tmp_path / (name + '.db')}"

    yield make


def _kamailio_schema(backend: str, url: str, request: pytest.FixtureRequest) -> None:
    """Create every table with Kamailio's own SQL files, as kamdbctl would."""
    script = "\n".join((SCHEMA_DIRS[backend] / f"{name}-create.sql").read_text()
                       for name in SCHEMA_FILES)
    if backend == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite://")) as conn:
            conn.executescript(script)
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        server.psql(url.rsplit("/", 1)[1], script)


def _open(url: str) -> Database:
    return open_standalone(url, {"retry_interval": 50})


# ---- Kamailio on kemi's database ---------------------------------------------------------------

KAMAILIO_CFG = """#!KAMAILIO
debug=2
log_stderror=yes
children=1
listen=udp:127.0.0.1:{port}
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "{db_module}"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "ctl.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("ctl", "binrpc", "{ctl}")
modparam("usrloc", "db_url", "{url}")
modparam("usrloc", "db_mode", 2)
modparam("usrloc", "timer_interval", 1)
request_route {{
    if (is_method("REGISTER")) {{ save("location"); exit; }}
    if (lookup("location")) {{ sl_send_reply("200", "Found $ru"); exit; }}
    sl_send_reply("404", "Not Found");
}}
"""


def _kamailio_url(url: str) -> str:
    # Kamailio reads sqlite:///x relative to its working directory: one more slash makes the
    # path absolute for it (kemi reads both forms as the same file).
    return url.replace("sqlite:///", "sqlite:////") if url.startswith("sqlite:") else url


def _ask(client: UdpClient, port: int, method: str, user: str, extra: str = "") -> str:
    client.send(request(method, f"sip:{user}@127.0.0.1", client.port, extra=extra), port)
    reply = client.recv_final(5)
    assert reply is not None, f"no reply to {method} {user}"
    return reply.split(b"\r\n", 1)[0].decode()


def _wait_rows(db: Database, where: dict[str, Any], count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15  # usrloc db_mode 2 writes on its 1 s timer
    while True:
        rows = db.query(tables.LOCATION, where)
        if len(rows) == count:
            return rows
        assert time.monotonic() < deadline, f"location rows for {where}: {rows}"
        time.sleep(0.05)


@needs_kamailio
def test_kamailio_runs_usrloc_db_mode_2_on_a_database_made_by_kemi(
        backend: str, new_url: Any, tmp_path: Path) -> None:
    url = new_url("kemi_made")
    result = CliRunner().invoke(app, ["db", "init", url, "usrloc"])
    assert result.exit_code == 0, result.output
    port, ctl = free_port(), f"unix:{tmp_path / 'kamailio_ctl'}"
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(KAMAILIO_CFG.format(port=port, ctl=ctl, url=_kamailio_url(url),
                                       db_module=f"db_{backend}.so"))
    db = _open(url)
    with UdpClient() as client:
        with KamailioProcess(cfg, tmp_path, ctl) as kam:
            before = time.time()
            assert _ask(client, port, "REGISTER", "alice",
                        "Expires: 3600\r\nUser-Agent: compat-test") == "SIP/2.0 200 OK"
            [row] = _wait_rows(db, {"username": "alice"}, 1)
            assert row["contact"] == f"sip:tester@127.0.0.1:{client.port}"
            assert row["user_agent"] == "compat-test" and row["cseq"] == 1
            assert before + 3600 - 2 <= row["expires"] <= time.time() + 3600 + 2
            assert row["socket"] == f"udp:127.0.0.1:{port}"
            # kemi writes a contact the way usrloc does; Kamailio loads it at its next start
            now = int(time.time())
            db.insert(tables.LOCATION, {
                "ruid": "kemi-bob-1", "username": "bob", "domain": None,
                "contact": "sip:bob@127.0.0.1:5999", "expires": now + 600, "q": -1.0,
                "callid": "kemi-call-1", "cseq": 3, "last_modified": now, "flags": 0,
                "cflags": 0, "user_agent": "kemi", "socket": f"udp:127.0.0.1:{port}",
                "methods": -1, "reg_id": 0, "server_id": 0, "connection_id": -1})
        log = kam.log()
        assert "version" not in _errors(log), _errors(log)
        with KamailioProcess(cfg, tmp_path, ctl) as kam:
            assert _ask(client, port, "OPTIONS", "alice") == \
                f"SIP/2.0 200 Found sip:tester@127.0.0.1:{client.port}"
            assert _ask(client, port, "OPTIONS", "bob") == "SIP/2.0 200 Found sip:bob@127.0.0.1:5999"
            assert _ask(client, port, "OPTIONS", "carol") == "SIP/2.0 404 Not Found"
            assert _ask(client, port, "REGISTER", "alice", "Expires: 0") == "SIP/2.0 200 OK"
            _wait_rows(db, {"username": "alice"}, 0)  # the unregistration reaches the table
        assert not _errors(kam.log()), _errors(kam.log())
    [bob] = db.query(tables.LOCATION, {"username": "bob"})
    assert bob["expires"] == now + 600 and bob["callid"] == "kemi-call-1"
    db.close()


def _errors(log: str) -> list[str]:
    """Kamailio's errors about the database and the modules that use it (its TCP main process
    logs unrelated noise at shutdown)."""
    return [line for line in log.splitlines() if re.search(r"\b(ERROR|CRITICAL)\b", line)
            and re.search(r"db_|db\.c|usrloc|registrar|version", line)]


# ---- kemi on Kamailio's database ---------------------------------------------------------------

def _sample_row(table: tables.Table, now: int) -> dict[str, Any]:
    """A value for every column but the id, of the column's type and size."""
    samples = {tables.ColumnType.INT: 7, tables.ColumnType.SMALLINT: 5060,
               tables.ColumnType.FLOAT: 0.5, tables.ColumnType.DATETIME: now}
    row: dict[str, Any] = {}
    for col in table.columns:
        if not col.autoincrement:
            row[col.name] = samples.get(col.type, f"{col.name}'x"[:col.size or 40])
    return row


@needs_schema
def test_kemi_uses_a_database_made_by_kamailios_schema_files(
        backend: str, new_url: Any, request: pytest.FixtureRequest) -> None:
    url = new_url("kamailio_made")
    _kamailio_schema(backend, url, request)
    db = _open(url)
    now = int(time.time())
    for table in tables.KNOWN_TABLES.values():
        db.check_version(table)
        if table.name == "version":
            continue
        row = _sample_row(table, now)
        db.insert(table, row)
        [back] = db.query(table, None)
        assert {k: back[k] for k in row} == row, table.name
    report = create_tables(db, tables.tables_for())
    assert report.created == [] and set(report.present) == set(tables.KNOWN_TABLES)
    db.close()


# ---- the layouts, compared -----------------------------------------------------------------------

def _describe(db: Database, table: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Columns (name, type, not null, default, pk) and indexes (unique, columns) of ``table``."""
    if db.backend.dialect == "sqlite":
        cols = [tuple(r[1:]) for r in db.raw_query(f'PRAGMA table_info("{table}")')]
        indexes = []
        for _, name, unique, *_ in db.raw_query(f'PRAGMA index_list("{table}")'):
            info = db.raw_query(f'PRAGMA index_info("{name}")')
            indexes.append((unique, tuple(r[2] for r in info)))
        return cols, sorted(indexes)
    ph = db.placeholder
    cols = db.raw_query(
        "SELECT column_name, data_type, character_maximum_length, is_nullable, column_default "
        f"FROM information_schema.columns WHERE table_name = {ph} ORDER BY ordinal_position",
        [table])
    indexes = db.raw_query(f"SELECT indexname, indexdef FROM pg_indexes WHERE tablename = {ph} "
                           "ORDER BY indexname", [table])
    constraints = db.raw_query(
        f"SELECT conname, contype FROM pg_constraint WHERE conrelid = {ph}::regclass "
        "ORDER BY conname", [table])
    return cols, indexes + constraints


@needs_schema
def test_kemi_layouts_are_kamailios_column_by_column(
        backend: str, new_url: Any, request: pytest.FixtureRequest) -> None:
    theirs_url, ours_url = new_url("theirs"), new_url("ours")
    _kamailio_schema(backend, theirs_url, request)
    theirs, ours = _open(theirs_url), _open(ours_url)
    ours.create_database()
    create_tables(ours, tables.tables_for())
    for name in tables.KNOWN_TABLES:
        assert _describe(ours, name) == _describe(theirs, name), name
        assert ours.table_version(name) == theirs.table_version(name), name
    theirs.close()
    ours.close()
