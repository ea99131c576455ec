"""``Database``: Kamailio's DB API (query, insert, update, delete, replace) for one ``db_url``.

Every call is synchronous and bounded (the backend's connect and statement timeouts), as a KEMI
call is in Kamailio; :meth:`Database.submit` runs a job in a background thread of this process
(with its own connection) for work that must not hold up the event loop, such as a usrloc
write-back flush.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from kemi_core.db import sql
from kemi_core.db.backend import Backend, Connection
from kemi_core.db.errors import DbError, DbUnavailable, DbVersionError
from kemi_core.db.link import DbLink, _one_line
from kemi_core.db.schema import ColumnType, Table
from kemi_core.db.sql import Where
from kemi_core.db.tables import KNOWN_TABLES, VERSION
from kemi_core.db.url import DbUrl
from kemi_core.transport.outbox import about_to_wait

log = logging.getLogger("kemi.db")

T = TypeVar("T")
Row = dict[str, Any]
TableRef = Table | str

#: A statement slower than this is logged as a warning (Kamailio's latency_limit_db).
SLOW_STATEMENT = 0.2
#: update statements kept per Database (table, columns set, where column)
UPDATE_PLANS = 256
#: The types of the values _encode leaves as they are, but in a DATETIME column.
_AS_IS = frozenset((int, float, str, type(None)))
#: A kept update statement: its text, the operation's name, the column types it was made for
#: (its layout's), and the positions of its DATETIME parameters.
_UpdatePlan = tuple[str, str, "dict[str, ColumnType] | None", tuple[int, ...]]


class Database:
    """One ``db_url`` in this process. Get it with :func:`kemi_core.db.open_db` in
    ``mod_init``; no connection is opened until the first call in each process."""

    def __init__(self, url: DbUrl, backend: Backend) -> None:
        self.url = url
        self.backend = backend
        self.link = DbLink(url, backend)
        self._decoders: dict[tuple[str, tuple[str, ...]], list[tuple[int, str]]] = {}
        #: (table, SET columns, WHERE column) -> (statement, what it is called in logs)
        self._updates: dict[tuple[str, tuple[str, ...], str], _UpdatePlan] = {}
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._executor_pid = 0

    def __repr__(self) -> str:
        return f"<Database {self.url}>"

    @property
    def placeholder(self) -> str:
        """The backend's parameter placeholder (``?`` or ``%s``), for :meth:`raw_query`."""
        return self.backend.placeholder

    @property
    def available(self) -> bool:
        """False while the database is down and no reconnection attempt is due yet."""
        return self.link.available

    # ---- the five operations ------------------------------------------------------------
    def query(self, table: TableRef, where: Where = None, columns: Sequence[str] | None = None,
              order_by: str | Sequence[str] | None = None, limit: int | None = None) -> list[Row]:
        """Rows matching ``where`` (all rows when None) as dicts of ``columns`` (the layout's
        columns when None). DATETIME columns come back as int Unix times."""
        layout, name = _resolve(table)
        if columns is None:
            if layout is None:
                raise ValueError(f"query on table {name!r} (no known layout) needs columns")
            columns = layout.column_names
        cols = tuple(columns)
        text, params = sql.select(self.placeholder, name, cols, self._encode_where(layout, where),
                                  order_by, limit)
        rows, _ = self._run(f"query {name}", lambda c: c.execute(text, params), retry=True)
        decoders = self._row_decoders(layout, name, cols)
        out = []
        for row in rows:
            item = dict(zip(cols, row, strict=True))
            for _, col in decoders:
                value = item[col]
                if value is not None:
                    item[col] = self.backend.decode_datetime(value)
            out.append(item)
        return out

    def insert(self, table: TableRef, values: Mapping[str, Any]) -> None:
        """Insert one row."""
        layout, name = _resolve(table)
        cols = tuple(values)
        text = sql.insert(self.placeholder, name, cols)
        params = self._encode_values(layout, values)
        self._run(f"insert into {name}", lambda c: c.execute(text, params), retry=False)

    def insert_many(self, table: TableRef, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert rows that all have the same columns, in one round of statements."""
        if not rows:
            return 0
        layout, name = _resolve(table)
        cols = tuple(rows[0])
        text = sql.insert(self.placeholder, name, cols)
        seq = [self._encode_values(layout, {c: r[c] for c in cols}) for r in rows]
        return self._run(f"insert into {name}", lambda c: c.executemany(text, seq), retry=False)

    def write_many(self, table: TableRef, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                   key: Sequence[str] = (), how: str = "replace") -> int:
        """One statement for many rows of the same shape, run by one executemany (a batch's
        writes without the per-call work of insert, update and delete). ``rows`` hold the
        values of ``columns`` in order; DATETIME columns take Unix times. ``how``:
        ``"replace"`` (insert or update by the unique ``key`` columns, which must be among
        ``columns``), ``"update"`` (set the other columns of the rows whose ``key`` columns
        match; none may be NULL) or ``"delete"`` (the rows whose ``columns`` match). Several
        rows belong in a :meth:`transaction`. Returns the driver's row count."""
        if not rows:
            return 0
        layout, name = _resolve(table)
        cols = tuple(columns)
        ph = self.placeholder
        if how == "replace":
            text = sql.upsert(ph, name, cols, tuple(key))
        elif how == "update":
            sets = tuple(c for c in cols if c not in key)
            text, _ = sql.update(ph, name, sets, [(k, "=", "") for k in key])
            order = [cols.index(c) for c in (*sets, *key)]
            rows = [[row[i] for i in order] for row in rows]
            cols = (*sets, *key)
        elif how == "delete":
            text, _ = sql.delete(ph, name, [(c, "=", "") for c in cols])
        else:
            raise ValueError(f"write_many: how must be replace, update or delete, not {how!r}")
        seq = self._encode_rows(layout, cols, rows)
        # (retry: each statement may run again, as update, replace and delete may)
        return self._run(f"{how} {name}", lambda c: c.executemany(text, seq), retry=True)

    def _encode_rows(self, layout: Table | None, cols: tuple[str, ...],
                     rows: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
        """Rows as the backend stores them (_encode's work: the usual values need it only in
        the DATETIME columns)."""
        types = layout.types if layout is not None else {}
        stamps = [i for i, col in enumerate(cols) if types.get(col) is ColumnType.DATETIME]
        encode, to_day = self._encode, self.backend.encode_datetime
        out: list[Sequence[Any]] = []
        for row in rows:
            if {*map(type, row)} <= _AS_IS:
                if stamps:
                    row = list(row)
                    for i in stamps:
                        val = row[i]
                        if val is not None and type(val) is not str:
                            row[i] = to_day(val)
            else:
                row = [encode(layout, col, val) for col, val in zip(cols, row, strict=True)]
            out.append(row)
        return out

    def update(self, table: TableRef, values: Mapping[str, Any], where: Where = None) -> int:
        """Set ``values`` in the rows matching ``where``; returns how many rows matched."""
        layout, name = _resolve(table)
        cols = tuple(values)
        if type(where) is dict and len(where) == 1:
            # one column equal to a value (usrloc's write-through by ruid): the statement is
            # kept per (table, columns, where column), without rebuilding the conditions
            ((wcol, wval),) = where.items()
            if wval is not None:
                key = (name, cols, wcol)
                plan = self._updates.get(key)
                types = layout.types if layout is not None else None
                # (a layout made again, e.g. renamed, has other but equal column types)
                if plan is None or (plan[2] is not types and plan[2] != types):
                    plan = self._update_plan(key, types)
                text, what, _, stamps = plan
                params = [*values.values(), wval]
                if {*map(type, params)} <= _AS_IS:  # _encode's work: the DATETIMEs' only
                    for i in stamps:
                        val = params[i]
                        if val is not None and type(val) is not str:
                            params[i] = self.backend.encode_datetime(val)
                else:
                    encode = self._encode
                    params = [encode(layout, col, val) for col, val in values.items()]
                    params.append(encode(layout, wcol, wval))
                _, count = self._run(what, lambda c: c.execute(text, params), retry=True)
                return count
        text, wparams = sql.update(self.placeholder, name, cols, self._encode_where(layout, where))
        params = self._encode_values(layout, values) + wparams
        _, count = self._run(f"update {name}", lambda c: c.execute(text, params), retry=True)
        return count

    def _update_plan(self, key: tuple[str, tuple[str, ...], str],
                     types: dict[str, ColumnType] | None) -> _UpdatePlan:
        """What update() built for this key (sql.update checks the names), kept (bounded)."""
        name, cols, wcol = key
        text, _ = sql.update(self.placeholder, name, cols, [(wcol, "=", "")])
        if len(self._updates) >= UPDATE_PLANS:
            self._updates.clear()
        stamps = tuple(i for i, col in enumerate((*cols, wcol))
                       if types is not None and types.get(col) is ColumnType.DATETIME)
        plan = self._updates[key] = (text, f"update {name}", types, stamps)
        return plan

    def delete(self, table: TableRef, where: Where = None) -> int:
        """Delete the rows matching ``where`` (every row when None); returns how many."""
        layout, name = _resolve(table)
        text, params = sql.delete(self.placeholder, name, self._encode_where(layout, where))
        _, count = self._run(f"delete from {name}", lambda c: c.execute(text, params), retry=True)
        return count

    def replace(self, table: TableRef, values: Mapping[str, Any], key: Sequence[str]) -> None:
        """Insert the row, or update the one whose unique ``key`` columns match (Kamailio's
        replace / insert_update; ``key`` must have a unique index)."""
        layout, name = _resolve(table)
        cols = tuple(values)
        text = sql.upsert(self.placeholder, name, cols, tuple(key))
        params = self._encode_values(layout, values)
        self._run(f"replace into {name}", lambda c: c.execute(text, params), retry=True)

    def raw_query(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A statement of your own, with :attr:`placeholder` for every value (never format
        values into ``text``). Rows come back as the driver gives them."""
        rows, _ = self._run("raw query", lambda c: c.execute(text, list(params)), retry=False)
        return rows

    def read_rows(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """raw_query for a statement that only reads (it may run twice): the usual call (this
        thread's connection open, no transaction, no error) in one frame and the
        connection's; anything else goes through raw_query, which decides and logs as ever."""
        conn = self.link.ready()
        if conn is None:
            return self.raw_query(text, params)
        about_to_wait()
        start = time.monotonic()
        try:
            rows = conn.execute(text, params)[0]
        except self.backend.errors:  # (raw_query runs it again: the same error, handled there)
            return self.raw_query(text, params)
        if time.monotonic() - start > SLOW_STATEMENT:
            log.warning("db %s: raw query took %.0f ms", self.url,
                        (time.monotonic() - start) * 1000)
        return rows

    # ---- transactions -------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """``with db.transaction():`` the calls inside commit together or not at all (per
        thread; nested blocks join the outer one)."""
        slot = self.link.slot
        if slot.tx_depth:
            slot.tx_depth += 1
            try:
                yield
            finally:
                slot.tx_depth -= 1
            return
        def begin(c: Connection) -> Connection:
            c.begin()
            return c

        conn = self._run("begin", begin, retry=True)
        slot.tx_depth, slot.tx_conn = 1, conn
        try:
            yield
        except BaseException:
            slot.tx_depth, slot.tx_conn = 0, None
            if self.link.slot.conn is conn:
                with contextlib.suppress(*self.backend.errors):
                    conn.rollback()
            raise
        slot.tx_depth, slot.tx_conn = 0, None
        self._run("commit", lambda c: c.commit(), retry=False, conn_required=conn)

    # ---- Kamailio's version table -------------------------------------------------------
    def table_version(self, table_name: str) -> int | None:
        """The ``version`` row of ``table_name``, None when there is none."""
        rows = self.query(VERSION, {"table_name": table_name}, ("table_version",))
        return int(rows[0]["table_version"]) if rows else None

    def check_version(self, table: TableRef, expected: int | None = None, user: str = "") -> None:
        """Kamailio's ``db_check_table_version``: the table's ``version`` row must hold the
        version the module was written for. Raises :class:`DbVersionError` otherwise."""
        layout, name = _resolve(table)
        if expected is None:
            if layout is None:
                raise ValueError(f"check_version of {name!r} needs the expected version")
            expected = layout.version
        who = f"{user}: " if user else ""
        try:
            found = self.table_version(name)
        except DbError as exc:
            raise DbVersionError(f"{who}cannot read the version of table {name!r}: {exc} "
                                 f"(are the tables created? kemi db init {self.url} ...)")
        if found != expected:  # Kamailio's words; a missing row reads as version 0 there too
            hint = (f"; it has no row there: kemi db init {self.url} creates the tables"
                    if found is None else "")
            raise DbVersionError(f"{who}invalid version {found or 0} for table {name} found, "
                                 f"expected {expected} (check table structure and table "
                                 f"\"version\"){hint}")

    def create_database(self) -> bool:
        """Make the database itself exist (the SQLite file; the PostgreSQL database, when
        the user may create it); True when it was created now."""
        return self.backend.create_database(self.url, self.link.limits)

    # ---- off the event loop -------------------------------------------------------------
    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """Run ``fn(*args)`` in this process's background thread for this database (one
        thread, so jobs run in order); ``fn`` calls this Database as usual and gets that
        thread's own connection."""
        import os

        if self._executor is None or self._executor_pid != os.getpid():
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"kemi-db-{self.url.scheme}")
            self._executor_pid = os.getpid()
        return self._executor.submit(fn, *args)

    async def run_in_background(self, fn: Callable[..., T], *args: Any) -> T:
        """``await`` a :meth:`submit` job from the event loop without blocking it."""
        return await asyncio.wrap_future(self.submit(fn, *args))

    def close(self) -> None:
        """Finish background jobs and close this process's connections (a later call
        opens a new one)."""
        import os

        executor = self._executor
        if executor is not None and self._executor_pid == os.getpid():
            executor.submit(self.link.close_thread_connection)
            executor.shutdown(wait=True)
        self._executor = None
        self.link.close_thread_connection()

    # ---- internals ----------------------------------------------------------------------
    def _run(self, what: str, fn: Callable[[Connection], T], retry: bool,
             conn_required: Connection | None = None) -> T:
        about_to_wait()  # a statement may wait (a lock, the network): held replies go first
        link = self.link
        slot = link.slot
        for attempt in (0, 1):
            conn = link.connection()
            in_tx = slot.tx_depth > 0 and slot.tx_conn is not None
            if (in_tx and conn is not slot.tx_conn) or (conn_required and conn is not conn_required):
                raise DbUnavailable(f"{self.url}: {what}: the connection of this transaction was lost")
            start = time.monotonic()
            try:
                result = fn(conn)
            except self.backend.errors as exc:
                if not self.backend.is_connection_error(exc):
                    log.error("db %s: %s failed: %s", self.url, what, _one_line(exc))
                    raise DbError(f"{self.url}: {what}: {_one_line(exc)}") from exc
                link.drop(conn)
                if attempt == 0 and retry and not in_tx and link.down_since is None:
                    log.warning("db %s: connection lost (%s); reconnecting once", self.url,
                                _one_line(exc))
                    continue
                link.mark_down(exc, f"{what} failed")
                raise DbUnavailable(f"{self.url}: {what}: {_one_line(exc)}") from exc
            elapsed = time.monotonic() - start
            if elapsed > SLOW_STATEMENT:
                log.warning("db %s: %s took %.0f ms", self.url, what, elapsed * 1000)
            return result
        raise AssertionError("unreachable")

    def _encode_values(self, layout: Table | None, values: Mapping[str, Any]) -> list[Any]:
        return [self._encode(layout, col, val) for col, val in values.items()]

    def _encode_where(self, layout: Table | None, where: Where) -> list[tuple[str, str, Any]]:
        return [(col, op, self._encode(layout, col, val)) for col, op, val in sql.conditions(where)]

    def _encode(self, layout: Table | None, col: str, val: Any) -> Any:
        """A value as the backend stores it: DATETIME columns from Unix times or datetimes."""
        if val is None or isinstance(val, str):
            return val
        if isinstance(val, datetime.datetime):
            return self.backend.encode_datetime(val.timestamp())
        if isinstance(val, bool):
            return int(val)
        if layout is not None and layout.types.get(col) is ColumnType.DATETIME:
            return self.backend.encode_datetime(val)
        return val

    def _row_decoders(self, layout: Table | None, name: str,
                      cols: tuple[str, ...]) -> list[tuple[int, str]]:
        if layout is None:
            return []
        key = (name, cols)
        found = self._decoders.get(key)
        if found is None:
            types = layout.types
            found = [(i, col) for i, col in enumerate(cols) if types.get(col) is ColumnType.DATETIME]
            self._decoders[key] = found
        return found


def _resolve(table: TableRef) -> tuple[Table | None, str]:
    """A layout and the table name: a Table is its own layout; a name uses kemi's layout of
    that name when there is one (so ``"location"`` converts its DATETIME columns)."""
    if isinstance(table, Table):
        return table, table.name
    return KNOWN_TABLES.get(table), table
