"""kemi's database layer: Kamailio's DB API for modules that take a ``db_url``.

This package is a public namespace (as :mod:`kemi_core.api`, which re-exports it): plugins
import from ``kemi_core.db`` or ``kemi_core.api``. Names listed in ``__all__`` are stable.

Configuration, as in Kamailio::

    loadmodule "db_sqlite.so"      # or db_postgres.so: the backend is a module of its own
    loadmodule "usrloc.so"
    modparam("usrloc", "db_url", "sqlite:///var/lib/kemi/kamailio.db")
    # postgres://user:pass@host:5432/kamailio (postgresql:// too)

A module uses it like this::

    from kemi_core.db import DbError, open_db, tables

    def mod_init(core):                      # main process, before the workers fork
        db = open_db(core, core.modparam("usrloc", "db_url"), user="usrloc")
        db.check_version(tables.LOCATION)    # Kamailio's version table; DbVersionError stops start-up
        state.db = db                        # no connection stays open: each process opens its own

    def lookup(ctx, aor):                    # in a worker: the first call connects
        try:
            rows = state.db.query(tables.LOCATION, {"username": user, "domain": domain},
                                  order_by="-q")
        except DbError:
            return -1                         # already logged by the layer; Kamailio's return code
        ...

Operations (all synchronous, bounded by the backend's connect and statement timeouts):

- ``query(table, where=None, columns=None, order_by=None, limit=None) -> list[dict]``
- ``insert(table, values)``, ``insert_many(table, rows) -> int``
- ``update(table, values, where=None) -> int`` (rows matched)
- ``delete(table, where=None) -> int``
- ``replace(table, values, key=("ruid",))`` (insert or update on a unique key)
- ``raw_query(sql, params)`` with ``db.placeholder`` for each value; ``read_rows(sql, params)``
  the same for a statement that only reads, in fewer layers (a lookup per request)
- ``with db.transaction(): ...``; ``table_version(name)``; ``check_version(table)``
- ``create_database()`` and :func:`create_tables` (``kemi db init``: Kamailio's tables and
  their ``version`` rows, idempotent)
- ``submit(fn, *args) -> Future`` / ``await run_in_background(fn, *args)``: a job in this
  process's background thread for the database (e.g. a write-back flush), off the event loop.

``table`` is a :class:`Table` layout from :mod:`kemi_core.db.tables` (``LOCATION.renamed(x)``
when a modparam renames it) or a table name (kemi's layout of that name is used when there is
one). ``where`` is ``{"col": value}`` (equality, ``None`` = IS NULL) or a list of
``(col, op, value)`` with op in ``= != < <= > >=``. Values are always sent as parameters,
never put into the SQL text. DATETIME columns are int Unix times in Python (stored as
local-time timestamps, as Kamailio stores them).

Errors: every failing call raises :class:`DbError` (:class:`DbUnavailable` when the database
cannot be reached); the layer logs statement errors, and an outage once when it starts and once
when it ends. While the database is down, calls fail at once and a reconnection is tried after
1 s, then with a doubling back-off up to 10 s; a worker never dies of it.

Backends register themselves with :func:`register_backend` from their ``mod_register``.
Outside a server (scripts, tests, ``kemi db init``), :func:`open_standalone` loads the URL's
backend module itself. Plugins reach all of this as ``kemi_core.api.db``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kemi_core.db import tables
from kemi_core.db.backend import (
    Backend,
    BackendModule,
    Connection,
    DbLimits,
    SqlTransactions,
    backend_for,
    register_backend,
)
from kemi_core.db.database import Database, Row
from kemi_core.db.errors import DbError, DbUnavailable, DbVersionError
from kemi_core.db.provision import InitReport, create_tables
from kemi_core.db.schema import NO_DEFAULT, Column, ColumnType, Index, Table
from kemi_core.db.sql import Where
from kemi_core.db.standalone import open_standalone
from kemi_core.db.url import DbUrl, parse_db_url

if TYPE_CHECKING:
    from kemi_core.runtime.core import Core

_HANDLES = "db.handles"


def open_db(core: Core, url: str, user: str = "") -> Database:
    """The :class:`Database` for ``url`` in this server (one per URL, shared by the modules
    that name it). ``user`` names the calling module in error messages. A malformed URL or one
    whose backend module is not loaded raises :class:`kemi_core.errors.ConfigError`."""
    from kemi_core.errors import ConfigError

    try:
        parsed = parse_db_url(url)
    except ConfigError as exc:
        if user:
            raise ConfigError(f"{user}: {exc.reason}") from None
        raise
    handles: dict[str, Database] | None = core.service(_HANDLES, dict)
    if handles is None:
        handles = {}
        core.provide(_HANDLES, handles)
    db = handles.get(parsed.raw)
    if db is None:
        db = handles[parsed.raw] = Database(parsed, backend_for(core, parsed, user))
    return db


def close_all(core: Core) -> None:
    """Close every Database of this server in this process (a backend's ``mod_destroy``)."""
    handles: dict[str, Database] = core.service(_HANDLES, dict) or {}
    for db in handles.values():
        db.close()


__all__ = [
    "NO_DEFAULT",
    "Backend",
    "BackendModule",
    "Column",
    "ColumnType",
    "Connection",
    "Database",
    "DbError",
    "DbLimits",
    "DbUnavailable",
    "DbUrl",
    "DbVersionError",
    "Index",
    "InitReport",
    "Row",
    "SqlTransactions",
    "Table",
    "Where",
    "backend_for",
    "close_all",
    "create_tables",
    "open_db",
    "open_standalone",
    "parse_db_url",
    "register_backend",
    "tables",
]
