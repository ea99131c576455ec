"""What a database backend module (db_sqlite, db_postgres ...) provides, and how it is found.

A backend module registers a :class:`Backend` in its ``mod_register`` with
:func:`register_backend`; a module that takes a ``db_url`` gets its backend by the URL's scheme.
As in Kamailio, the backend is a module of its own: a URL whose backend module is not loaded is a
configuration error that names the ``loadmodule`` line to add.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from kemi_core.errors import ConfigError

if TYPE_CHECKING:
    from kemi_core.db.url import DbUrl
    from kemi_core.runtime.core import Core


@attrs.frozen
class DbLimits:
    """How long one call may block a worker, and how reconnecting backs off."""

    connect_timeout: float = 2.0  # seconds for one connection attempt
    statement_timeout: float = 3.0  # seconds for one statement (busy waits included)
    retry_min: float = 1.0  # first wait after a failed connection, doubled per failure...
    retry_max: float = 10.0  # ...up to this


class Connection(Protocol):
    """One open connection of a backend, used by one thread of one process."""

    def execute(self, sql: str, params: Sequence[Any]) -> tuple[list[tuple[Any, ...]], int]:
        """Run one statement; return its rows (empty when it has none) and its row count."""

    def executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> int:
        """Run one statement for each parameter set; return the total row count."""

    def begin(self) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...


class Backend(Protocol):
    """A database driver as kemi's DB layer uses it."""

    #: Module name (``db_sqlite``) and the URL schemes it serves (``("sqlite",)``).
    module: str
    schemes: tuple[str, ...]
    #: DDL dialect for :mod:`kemi_core.db.ddl` and the placeholder of its paramstyle.
    dialect: str
    placeholder: str
    #: The driver's base exception class(es): anything else is a bug, not a database error.
    errors: tuple[type[BaseException], ...]

    def limits(self) -> DbLimits:
        """Timeouts and back-off (read from the module's parameters when first connecting)."""

    def connect(self, url: DbUrl, limits: DbLimits) -> Connection:
        """Open a connection, within ``limits.connect_timeout``; raise one of ``errors``."""

    def create_database(self, url: DbUrl, limits: DbLimits) -> bool:
        """Make the database itself exist (a file; a PostgreSQL database); True when it was
        created now. ``kemi db init`` calls it before creating tables; raises DbError."""

    def is_connection_error(self, exc: BaseException) -> bool:
        """True when ``exc`` means the database is unreachable or the connection is gone
        (reconnect and back off), False for an error of the statement itself."""

    def encode_datetime(self, unix_time: float) -> Any:
        """A DATETIME parameter from a Unix time (local time, as Kamailio stores it)."""

    def decode_datetime(self, value: Any) -> int:
        """A DATETIME column's value as a Unix time."""


class SqlTransactions:
    """``begin``/``commit``/``rollback`` as SQL statements, for a Connection's ``execute``."""

    #: SQLite's backend takes the write lock at once (``BEGIN IMMEDIATE``).
    begin_sql = "BEGIN"

    def execute(self, sql: str, params: Sequence[Any]) -> tuple[list[tuple[Any, ...]], int]:
        raise NotImplementedError

    def begin(self) -> None:
        self.execute(self.begin_sql, ())

    def commit(self) -> None:
        self.execute("COMMIT", ())

    def rollback(self) -> None:
        self.execute("ROLLBACK", ())


class BackendModule:
    """What backend modules share: the core that loaded them, their parameters, and the
    reconnection back-off parameters (``retry_interval``/``retry_max_interval``, in ms)."""

    module = ""

    def __init__(self, core: Core) -> None:
        self.core = core

    @classmethod
    def declare_retry_params(cls, core: Core) -> None:
        core.declare_param(cls.module, "retry_interval", int, 1000,
                           doc="ms before the first reconnection attempt after a failure")
        core.declare_param(cls.module, "retry_max_interval", int, 10000,
                           doc="longest wait between reconnection attempts (ms)")

    def param(self, name: str) -> Any:
        return self.core.modparam(self.module, name)

    def retry_limits(self) -> dict[str, float]:
        return {"retry_min": max(self.param("retry_interval"), 10) / 1000,
                "retry_max": max(self.param("retry_max_interval"), 10) / 1000}


_SERVICE = "db.backends"

#: The backend module a URL scheme needs, for the error message and ``kemi db init``.
SCHEME_MODULES = {"sqlite": "db_sqlite", "postgres": "db_postgres", "mysql": "db_mysql"}


def register_backend(core: Core, backend: Backend) -> None:
    """Make ``backend`` serve its URL schemes in this server (called from ``mod_register``)."""
    table: dict[str, Backend] | None = core.service(_SERVICE, dict)
    if table is None:
        table = {}
        core.provide(_SERVICE, table)
    for scheme in backend.schemes:
        other = table.get(scheme)
        if other is not None and other.module != backend.module:
            raise ConfigError(f"db_url scheme {scheme}:// is served by both {other.module} "
                              f"and {backend.module}")
        table[scheme] = backend


def backend_for(core: Core, url: DbUrl, user: str = "") -> Backend:
    """The loaded backend for ``url``'s scheme; a clear :class:`ConfigError` when none is."""
    table: dict[str, Backend] = core.service(_SERVICE, dict) or {}
    backend = table.get(url.scheme)
    if backend is None:
        module = SCHEME_MODULES.get(url.scheme, f"db_{url.scheme}")
        who = f"{user}: " if user else ""
        raise ConfigError(f"{who}db_url {url} needs the database module {module}: "
                          f'add loadmodule "{module}.so" to the config')
    return backend
