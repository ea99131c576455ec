"""Create Kamailio's tables and their ``version`` rows (``kamdbctl create``), idempotently."""

from __future__ import annotations

import attrs

from kemi_core.db.database import Database
from kemi_core.db.ddl import create_table_sql
from kemi_core.db.errors import DbVersionError
from kemi_core.db.schema import Table
from kemi_core.db.tables import VERSION


@attrs.define
class InitReport:
    """What :func:`create_tables` did, table by table."""

    created: list[str] = attrs.Factory(list)  # version row added (the table was new to it)
    present: list[str] = attrs.Factory(list)  # version row already there and right


def create_tables(db: Database, tables: list[Table]) -> InitReport:
    """Create ``tables`` where missing and add their ``version`` rows. A table whose version
    row disagrees with kemi's layout is not touched: :class:`DbVersionError` names it."""
    report = InitReport()
    ordered = [VERSION, *[t for t in tables if t.name != VERSION.name]]
    mismatched: list[str] = []
    with db.transaction():
        for table in ordered:
            for stmt in create_table_sql(table, db.backend.dialect):
                db.raw_query(stmt)
            found = db.table_version(table.name)
            if found is None:
                db.insert(VERSION, {"table_name": table.name, "table_version": table.version})
                report.created.append(table.name)
            elif found == table.version:
                report.present.append(table.name)
            else:
                mismatched.append(f"{table.name} has version {found}, kemi expects {table.version}")
    if mismatched:
        raise DbVersionError(f"{db.url}: " + "; ".join(mismatched))
    return report
