"""db_sqlite.so: SQLite for ``db_url`` ``sqlite:///path/file.db`` (Python's sqlite3).

The embedded default: nothing to start. Each process opens its own connection to the file;
WAL journal mode lets readers and one writer work at once, and a busy timeout makes a writer
wait for another (bounded) instead of failing at once.

Parameters: ``busy_timeout`` (ms a statement waits for a lock, default 2000),
``statement_timeout`` (ms one statement may run, default 3000), ``journal_mode`` (default
``WAL``), ``synchronous`` (default ``NORMAL``), ``retry_interval`` / ``retry_max_interval`` (ms
before reconnecting after a failure, doubling; defaults 1000 / 10000), and Kamailio's
``db_set`` (``"/path/file.db;journal_mode=delete;readonly=1"``: per-file settings).
"""

from __future__ import annotations

from kemi_core.api import Core, db, hookimpl
from kemi_db_sqlite.backend import MODULE, SqliteBackend

__all__ = ["MODULE", "SqliteBackend"]


@hookimpl
def mod_register(core: Core) -> None:
    core.declare_param(MODULE, "busy_timeout", int, 2000,
                       doc="ms a statement waits for another connection's lock")
    core.declare_param(MODULE, "statement_timeout", int, 3000,
                       doc="ms one statement may run before it is interrupted")
    core.declare_param(MODULE, "journal_mode", str, "WAL", doc="SQLite journal mode")
    core.declare_param(MODULE, "synchronous", str, "NORMAL", doc="SQLite synchronous setting")
    core.declare_param(MODULE, "db_set", str, multi=True,
                       doc="per-file settings: path;journal_mode=X;readonly=0|1")
    SqliteBackend.declare_retry_params(core)
    db.register_backend(core, SqliteBackend(core))


@hookimpl
def mod_destroy() -> None:
    from kemi_db_sqlite.backend import registered_cores

    for core in registered_cores():
        db.close_all(core)
