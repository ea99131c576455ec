"""Create Kamailio's tables and their ``version`` rows (``kamdbctl create``), idempotently.

A table that exists but lacks columns of kemi's layout (the official example's extra acc
columns, say) gets them added; nothing is ever dropped or changed."""

from __future__ import annotations

import attrs

from kemi_core.db.database import Database
from kemi_core.db.ddl import column_sql, create_table_sql, quote_ident
from kemi_core.db.errors import DbVersionError
from kemi_core.db.schema import Table
from kemi_core.db.tables import VERSION


@attrs.define
class InitReport:
    """What :func:`create_tables` did, table by table."""

    created: list[str] = attrs.Factory(list)  # version row added (the table was new to it)
    present: list[str] = attrs.Factory(list)  # version row already there and right
    added: list[str] = attrs.Factory(list)  # "table.column" added to an existing table


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
            have = set(existing_columns(db, table.name))
            for col in table.columns:
                if col.name not in have:
                    db.raw_query(f"ALTER TABLE {quote_ident(table.name)} "
                                 f"ADD COLUMN {column_sql(col, db.backend.dialect)}")
                    report.added.append(f"{table.name}.{col.name}")
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


def existing_columns(db: Database, table: str) -> list[str]:
    """The columns ``table`` has in the database, in order."""
    if db.backend.dialect == "sqlite":
        return [row[1] for row in db.raw_query(f"PRAGMA table_info({quote_ident(table)})")]
    rows = db.raw_query("SELECT column_name FROM information_schema.columns WHERE table_name = "
                        f"{db.placeholder} AND table_schema = current_schema() "
                        "ORDER BY ordinal_position", [table])
    return [row[0] for row in rows]
