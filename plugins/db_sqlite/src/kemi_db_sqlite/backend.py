"""The SQLite backend: connections, timeouts, DATETIME as Kamailio's db_sqlite stores it (a
Julian day number, REAL; the layouts' text defaults are read as local time, as Kamailio does)."""

from __future__ import annotations

import datetime
import sqlite3
import time
import weakref
from collections.abc import Sequence
from typing import Any

from kemi_core.api import Core, DbError, db

MODULE = "db_sqlite"
#: Error codes that mean the file cannot be reached (retry later), not a bad statement.
_CONNECTION_ERRORS = ("SQLITE_CANTOPEN", "SQLITE_IOERR")
_PRAGMA_WORDS = frozenset("""delete truncate persist memory wal off
                             0 1 2 3 normal full extra""".split())

#: The Julian day of 1970-01-01 00:00 UTC.
JULIAN_UNIX_EPOCH = 2440587.5

_cores: weakref.WeakSet[Core] = weakref.WeakSet()


def registered_cores() -> list[Core]:
    return list(_cores)


class SqliteConnection(db.SqlTransactions):
    """One sqlite3 connection in autocommit mode, each statement under a deadline."""

    # IMMEDIATE: take the write lock now (waiting busy_timeout) rather than fail on upgrade.
    begin_sql = "BEGIN IMMEDIATE"

    def __init__(self, raw: sqlite3.Connection, statement_timeout: float) -> None:
        self.raw = raw
        self.timeout = statement_timeout
        self.deadline = 0.0
        # Called every N virtual-machine steps: a runaway statement is interrupted.
        raw.set_progress_handler(self._past_deadline, 20000)

    def _past_deadline(self) -> int:
        return 1 if time.monotonic() > self.deadline else 0

    def execute(self, sql: str, params: Sequence[Any]) -> tuple[list[tuple[Any, ...]], int]:
        self.deadline = time.monotonic() + self.timeout
        cur = self.raw.execute(sql, params)
        rows = cur.fetchall() if cur.description is not None else []
        return rows, cur.rowcount

    def executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> int:
        self.deadline = time.monotonic() + self.timeout
        return self.raw.executemany(sql, seq).rowcount

    def close(self) -> None:
        self.raw.close()


class SqliteBackend(db.BackendModule):
    """``sqlite://`` URLs; registered by ``loadmodule "db_sqlite.so"``."""

    module = MODULE
    schemes: tuple[str, ...] = ("sqlite",)
    dialect = "sqlite"
    placeholder = "?"
    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)

    def __init__(self, core: Core) -> None:
        super().__init__(core)
        _cores.add(core)

    def limits(self) -> db.DbLimits:
        return db.DbLimits(connect_timeout=max(self.param("busy_timeout"), 0) / 1000,
                           statement_timeout=max(self.param("statement_timeout"), 1) / 1000,
                           **self.retry_limits())

    def file_settings(self, path: str) -> dict[str, str]:
        """journal_mode / synchronous / readonly for ``path`` (``db_set`` overrides defaults)."""
        out = {"journal_mode": str(self.param("journal_mode")),
               "synchronous": str(self.param("synchronous")), "readonly": "0"}
        for item in self.param("db_set") or []:
            fpath, *pairs = str(item).split(";")
            if fpath.strip() != path:
                continue
            for pair in pairs:
                key, _, value = pair.partition("=")
                out[key.strip().lower()] = value.strip()
        return out

    def connect(self, url: db.DbUrl, limits: db.DbLimits, create: bool = False) -> SqliteConnection:
        settings = self.file_settings(url.database)
        readonly = settings.get("readonly", "0") not in ("0", "", "no", "false")
        mode = "ro" if readonly else ("rwc" if create else "rw")
        target = "file:" + url.database.replace("%", "%25").replace("?", "%3f").replace("#", "%23") + f"?mode={mode}"
        raw = sqlite3.connect(target, uri=True, timeout=limits.connect_timeout,
                              isolation_level=None, check_same_thread=False,
                              cached_statements=256)
        try:
            raw.execute(f"PRAGMA busy_timeout = {int(limits.connect_timeout * 1000)}")
            if not readonly:
                for pragma in ("journal_mode", "synchronous"):
                    value = settings.get(pragma, "").lower()
                    if value in _PRAGMA_WORDS:  # a word from a fixed list: safe in SQL text
                        raw.execute(f"PRAGMA {pragma} = {value}").fetchall()
        except sqlite3.Error:
            raw.close()
            raise
        return SqliteConnection(raw, limits.statement_timeout)

    def create_database(self, url: db.DbUrl, limits: db.DbLimits) -> bool:
        """Create the database file when missing (what ``kemi db init`` needs first)."""
        import os

        existed = os.path.exists(url.database)
        try:
            self.connect(url, limits, create=True).close()
        except sqlite3.Error as exc:
            raise DbError(f"{url}: cannot create the database file: {exc}") from exc
        return not existed

    def is_connection_error(self, exc: BaseException) -> bool:
        name = getattr(exc, "sqlite_errorname", "") or ""
        return any(name.startswith(prefix) for prefix in _CONNECTION_ERRORS)

    def encode_datetime(self, unix_time: float) -> float:
        """A Julian day number, as Kamailio's db_sqlite writes DATETIME values."""
        return unix_time / 86400.0 + JULIAN_UNIX_EPOCH

    def decode_datetime(self, value: Any) -> int:
        """Kamailio's db_sqlite reads a REAL as a Julian day and text as local time."""
        if isinstance(value, float) or (isinstance(value, int) and value < 10_000_000):
            return round((value - JULIAN_UNIX_EPOCH) * 86400.0)
        if isinstance(value, int):
            return value  # a Unix time written by some other tool
        text = str(value)
        try:  # the usual 'YYYY-MM-DD HH:MM:SS', without strptime's cost
            return int(time.mktime((int(text[0:4]), int(text[5:7]), int(text[8:10]),
                                    int(text[11:13]), int(text[14:16]), int(text[17:19]),
                                    0, 0, -1)))
        except (ValueError, OverflowError):
            return int(datetime.datetime.fromisoformat(text).timestamp())
