"""acc's database backend: one row per record in Kamailio's ``acc`` or ``missed_calls`` table.

The columns are Kamailio 5.6's (``method``, ``from_tag``, ``to_tag``, ``callid``, ``sip_code``,
``sip_reason``, ``time``; their names can be changed with the ``acc_*_column`` parameters),
then one column per ``db_extra`` item, named as the item. A failed insert is logged by the
database layer and the call goes on (the record is lost, as with Kamailio).
"""

from __future__ import annotations

import logging

import attrs

from kemi_acc.records import AccRecord
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
                 nullable_extra: bool = False) -> None:
        self.db = database
        self.columns = columns
        self.extra_names = extra_names
        self.nullable_extra = nullable_extra
        self._layouts: dict[str, db.Table] = {}

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
            cols += [db.Column(name, text, 255, True, None) for name in self.extra_names]
            found = self._layouts[table] = db.Table(table, 0, tuple(cols))
        return found

    def row(self, record: AccRecord) -> dict[str, object]:
        c = self.columns
        row: dict[str, object] = {
            c.method: record.method, c.from_tag: record.from_tag, c.to_tag: record.to_tag,
            c.callid: record.call_id, c.sip_code: record.code, c.sip_reason: record.reason,
            c.time: int(record.time)}
        for name, value in record.extra:
            row[name] = None if (self.nullable_extra and value == "") else value
        return row

    def write(self, record: AccRecord, table: str) -> bool:
        try:
            self.db.insert(self.layout(table), self.row(record))
        except DbError as exc:
            log.error("acc: cannot write to table %s: %s", table, exc)
            return False
        return True
