"""A fresh database per test, on each backend: SQLite in a temp file and PostgreSQL on the
suite's private server (skipped, with the reason, where PostgreSQL is not installed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kemi_core.db import Database, tables
from kemi_core.db.provision import create_tables
from kemi_core.db.standalone import open_standalone

#: Back-off short enough for tests that wait for a reconnection.
FAST_RETRY = {"retry_interval": 50, "retry_max_interval": 400}


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'kamailio.db'}"
    server = request.getfixturevalue("postgres_server")
    return str(server.new_database())


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_standalone(db_url, FAST_RETRY)
    database.create_database()
    create_tables(database, tables.tables_for())
    yield database
    database.close()
