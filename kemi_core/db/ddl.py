"""``CREATE`` statements for a :class:`~kemi_core.db.schema.Table`, per SQL dialect.

Type names are spelled as Kamailio's own schema files spell them, because Kamailio's db_sqlite
picks a value type from a column's declared type. Every statement is idempotent (``IF NOT
EXISTS``) so that ``kemi db init`` can run on a database that already has some tables.
"""

from __future__ import annotations

from typing import Any

from kemi_core.db.schema import NO_DEFAULT, Column, ColumnType, Table

DIALECTS = ("sqlite", "postgres")

_TYPES = {
    ColumnType.INT: "INTEGER",
    ColumnType.BIGINT: "BIGINT",
    ColumnType.SMALLINT: "SMALLINT",
    ColumnType.TEXT: "TEXT",
    ColumnType.FLOAT: "REAL",
    ColumnType.DOUBLE: "DOUBLE PRECISION",
    ColumnType.DATETIME: "TIMESTAMP WITHOUT TIME ZONE",
}


def quote_ident(name: str) -> str:
    """An identifier in double quotes (names are checked when a Table or Column is made)."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: Any) -> str:
    """A constant of a table definition as SQL (definitions only, never a runtime value)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def column_type(col: Column, dialect: str) -> str:
    if col.type is ColumnType.STRING:
        return f"VARCHAR({col.size})" if col.size else "VARCHAR"
    if col.type is ColumnType.BLOB:
        return "BYTEA" if dialect == "postgres" else "BLOB"
    return _TYPES[col.type]


def column_sql(col: Column, dialect: str) -> str:
    name = quote_ident(col.name)
    if col.autoincrement:
        kind = "SERIAL" if dialect == "postgres" else "INTEGER"
        return f"{name} {kind} PRIMARY KEY NOT NULL"
    parts = [name, column_type(col, dialect)]
    if col.default is not NO_DEFAULT:
        parts.append("DEFAULT " + sql_literal(col.default))
    if not col.nullable:
        parts.append("NOT NULL")
    return " ".join(parts)


def create_table_sql(table: Table, dialect: str) -> list[str]:
    """``CREATE TABLE`` (unique indexes as named constraints) and ``CREATE INDEX`` statements."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r} (known: {', '.join(DIALECTS)})")
    lines = [column_sql(col, dialect) for col in table.columns]
    for index in table.indexes:
        if index.unique:
            cols = ", ".join(quote_ident(c) for c in index.columns)
            lines.append(f"CONSTRAINT {quote_ident(index.name)} UNIQUE ({cols})")
    body = ",\n    ".join(lines)
    out = [f"CREATE TABLE IF NOT EXISTS {quote_ident(table.name)} (\n    {body}\n)"]
    for index in table.indexes:
        if not index.unique:
            cols = ", ".join(quote_ident(c) for c in index.columns)
            out.append(f"CREATE INDEX IF NOT EXISTS {quote_ident(index.name)} "
                       f"ON {quote_ident(table.name)} ({cols})")
    return out


def version_row_sql(table: Table) -> str:
    """The table's row in ``version``, added only when missing (definitions only)."""
    name = sql_literal(table.name)
    return ('INSERT INTO "version" ("table_name", "table_version") '
            f'SELECT {name}, {table.version} WHERE NOT EXISTS '
            f'(SELECT 1 FROM "version" WHERE "table_name" = {name})')


def schema_script(tables: list[Table], dialect: str) -> str:
    """All statements for ``tables`` (each followed by its version row) as one idempotent
    script: what ``kemi db init --sql`` prints. ``version`` must be among the first."""
    stmts = [s for t in tables for s in (*create_table_sql(t, dialect), version_row_sql(t))]
    return ";\n\n".join(stmts) + ";\n"
