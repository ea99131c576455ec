"""The PostgreSQL backend (psycopg 3): connections, timeouts, error kinds, DATETIME."""

from __future__ import annotations

import datetime
import weakref
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql as pg_sql

from kemi_core.api import Core, DbError, db

MODULE = "db_postgres"

_cores: weakref.WeakSet[Core] = weakref.WeakSet()


def registered_cores() -> list[Core]:
    return list(_cores)


class PgConnection(db.SqlTransactions):
    """One psycopg connection in autocommit mode."""

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any]) -> tuple[list[tuple[Any, ...]], int]:
        cur = self.raw.execute(sql, params or None)  # type: ignore[arg-type]
        rows = cur.fetchall() if cur.description is not None else []
        return rows, cur.rowcount

    def executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> int:
        with self.raw.cursor() as cur:
            cur.executemany(sql, seq)  # type: ignore[arg-type]
            return cur.rowcount

    def close(self) -> None:
        self.raw.close()


class PostgresBackend(db.BackendModule):
    """``postgres://`` and ``postgresql://`` URLs; registered by ``loadmodule "db_postgres.so"``."""

    module = MODULE
    schemes: tuple[str, ...] = ("postgres",)
    dialect = "postgres"
    placeholder = "%s"
    errors: tuple[type[BaseException], ...] = (psycopg.Error,)

    def __init__(self, core: Core) -> None:
        super().__init__(core)
        _cores.add(core)

    def limits(self) -> db.DbLimits:
        return db.DbLimits(connect_timeout=max(int(self.param("connect_timeout")), 2),
                           statement_timeout=max(int(self.param("timeout")), 0),
                           **self.retry_limits())

    def connect_args(self, url: db.DbUrl, limits: db.DbLimits, database: str | None = None) -> dict[str, Any]:
        """libpq settings for ``url``: timeouts first, then ``con_param`` may override them."""
        args: dict[str, Any] = {
            "dbname": database or url.database,
            "connect_timeout": int(limits.connect_timeout),
            "application_name": "kemi",
        }
        for key, value in (("host", url.host), ("port", url.port), ("user", url.user),
                           ("password", url.password)):
            if value is not None:
                args[key] = value
        if limits.statement_timeout > 0:
            ms = int(limits.statement_timeout * 1000)
            args["options"] = f"-c statement_timeout={ms}"
            if url.host and not url.host.startswith("/"):
                args["tcp_user_timeout"] = ms
        for pair in str(self.param("con_param") or "").split(";"):
            key, sep, value = pair.partition("=")
            if sep and key.strip():
                args[key.strip()] = value.strip()
        return args

    def connect(self, url: db.DbUrl, limits: db.DbLimits) -> PgConnection:
        raw = psycopg.connect(autocommit=True, **self.connect_args(url, limits))
        return PgConnection(raw)

    def create_database(self, url: db.DbUrl, limits: db.DbLimits) -> bool:
        """CREATE DATABASE when it does not exist (the user needs the CREATEDB right)."""
        try:
            with psycopg.connect(autocommit=True,
                                 **self.connect_args(url, limits, database="postgres")) as conn:
                found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                     (url.database,)).fetchone()
                if found:
                    return False
                conn.execute(pg_sql.SQL("CREATE DATABASE {}").format(pg_sql.Identifier(url.database)))
                return True
        except psycopg.Error as exc:
            raise DbError(f"{url}: cannot create the database: {' '.join(str(exc).split())}") from exc

    def is_connection_error(self, exc: BaseException) -> bool:
        if isinstance(exc, pg_errors.QueryCanceled):  # the statement timeout: the link is fine
            return False
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return True
        sqlstate = getattr(exc, "sqlstate", None) or ""
        return sqlstate.startswith(("08", "57P"))

    def encode_datetime(self, unix_time: float) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(unix_time)

    def decode_datetime(self, value: Any) -> int:
        if isinstance(value, datetime.datetime):
            return int(value.timestamp())
        if isinstance(value, int | float):
            return int(value)
        return int(datetime.datetime.fromisoformat(str(value)).timestamp())
