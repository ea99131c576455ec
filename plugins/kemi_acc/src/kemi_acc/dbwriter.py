"""acc's database backend: one row per record in Kamailio's ``acc`` or ``missed_calls`` table.

The columns are Kamailio 5.6's (``method``, ``from_tag``, ``to_tag``, ``callid``, ``sip_code``,
``sip_reason``, ``time``; their names can be changed with the ``acc_*_column`` parameters),
then the ``time_mode`` columns (``timemode``), one column per ``db_extra`` item and one per
``multi_leg_info`` item, named as the items; a record with legs is one row per leg. A failed
insert is logged by the database layer and the call goes on (the record is lost, as with
Kamailio).

``db_insert_mode``: 0 and 1 insert at once (1 is MySQL's INSERT DELAYED in Kamailio, which
SQLite and PostgreSQL do not have: a plain insert there too); 2 hands the insert to the
process's database thread (``Database.submit``) so the event loop never waits for the
database; the rows still queued count as work in progress, which a stopping worker waits for
(at most ``exit_timeout``), so they land before it exits.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future

import attrs

from kemi_acc.records import AccRecord
from kemi_acc.timemode import TimeMode
from kemi_core.api import Database, DbError, db

log = logging.getLogger("kemi.acc")

#: (parameter, default column name) of the core fields, in Kamailio's order.
CORE_COLUMNS = (
    ("acc_method_column", "method"),
    ("acc_from_tag_column", "from_tag"),
    ("acc_to_tag_column", "to_tag"),
    ("acc_callid_column", "callid"),
    ("acc_sip_code_column", "sip_code"),
    ("acc_sip_reason_column", "sip_reason"),
    ("acc_time_column", "time"),
)


@attrs.frozen
class Columns:
    """The column names of the core fields (after the acc_*_column parameters)."""

    method: str = "method"
    from_tag: str = "from_tag"
    to_tag: str = "to_tag"
    callid: str = "callid"
    sip_code: str = "sip_code"
    sip_reason: str = "sip_reason"
    time: str = "time"


class DbWriter:
    """Inserts records into the acc and missed_calls tables of one database."""

    def __init__(self, database: Database, columns: Columns, extra_names: list[str],
                 nullable_extra: bool = False, time_mode: TimeMode | None = None,
                 leg_names: list[str] | None = None, insert_mode: int = 0) -> None:
        self.db = database
        self.columns = columns
        self.extra_names = extra_names
        self.nullable_extra = nullable_extra
        self.time_mode = time_mode or TimeMode()
        self.leg_names = leg_names or []
        self.background = insert_mode == 2
        self._layouts: dict[str, db.Table] = {}
        self._queued: set[Future[bool]] = set()  # background inserts not done yet

    def work_in_progress(self) -> int:
        """Rows handed to the database thread and not written yet (a draining worker waits)."""
        return len(self._queued)

    def layout(self, table: str) -> db.Table:
        """The layout written to ``table``: the core columns (DATETIME ``time``) and the extra
        ones as strings."""
        found = self._layouts.get(table)
        if found is None:
            c = self.columns
            text = db.ColumnType.STRING
            cols = [db.Column(name, text, size) for name, size in (
                (c.method, 16), (c.from_tag, 128), (c.to_tag, 128), (c.callid, 255),
                (c.sip_code, 3), (c.sip_reason, 128))]
            cols.append(db.Column(c.time, db.ColumnType.DATETIME))
            cols += self.time_mode.db_columns()
            cols += [db.Column(name, text, 255, True, None) for name in self.extra_names]
            cols += [db.Column(name, text, 255, True, None) for name in self.leg_names]
            found = self._layouts[table] = db.Table(table, 0, tuple(cols))
        return found

    def rows(self, record: AccRecord) -> list[dict[str, object]]:
        """The rows of a record: one per leg (multi_leg_info), else one."""
        c = self.columns
        row: dict[str, object] = {
            c.method: record.method, c.from_tag: record.from_tag, c.to_tag: record.to_tag,
            c.callid: record.call_id, c.sip_code: record.code, c.sip_reason: record.reason,
            c.time: int(record.time)}
        row.update(self.time_mode.db_values(record.time))
        for name, value in record.extra:
            row[name] = None if (self.nullable_extra and value == "") else value
        if not record.legs:
            return [row]
        return [{**row, **dict(leg)} for leg in record.legs]

    def write(self, record: AccRecord, table: str) -> bool:
        """Insert the record's rows (queued for the database thread in db_insert_mode 2)."""
        layout, rows = self.layout(table), self.rows(record)
        if self.background:
            job = self.db.submit(self._insert, layout, rows)
            self._queued.add(job)
            job.add_done_callback(self._queued.discard)
            return True
        return self._insert(layout, rows)

    def _insert(self, layout: db.Table, rows: list[dict[str, object]]) -> bool:
        try:
            for row in rows:
                self.db.insert(layout, row)
        except DbError as exc:
            log.error("acc: cannot write to table %s: %s", layout.name, exc)
            return False
        return True
