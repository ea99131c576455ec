"""The table model: columns, types, defaults, indexes and version of one table.

A :class:`Table` describes a layout once; :mod:`kemi_core.db.ddl` turns it into ``CREATE``
statements for each SQL dialect, and :class:`kemi_core.db.database.Database` uses the column
types to convert values (``DATETIME`` columns are Unix times in Python, local-time timestamps in
the database, as Kamailio's database layer keeps them).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from typing import Any

import attrs

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def check_identifier(name: str, what: str = "name") -> str:
    """A table or column name as SQL may hold it unquoted-safe; anything else is refused
    (names are never taken from SIP messages, but modparams set them)."""
    if not _IDENT.match(name) or len(name) > 63:
        raise ValueError(f"invalid SQL {what} {name!r}: letters, digits and _ only")
    return name


class ColumnType(enum.Enum):
    """Kamailio's DB value types (``DB1_INT``, ``DB1_STRING`` ...), as SQL column types."""

    INT = "int"
    BIGINT = "bigint"
    SMALLINT = "smallint"
    STRING = "string"  # VARCHAR(size)
    TEXT = "text"
    FLOAT = "float"  # REAL
    DOUBLE = "double"
    DATETIME = "datetime"  # TIMESTAMP WITHOUT TIME ZONE, local time; int Unix time in Python
    BLOB = "blob"


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


#: Marks a column without a DEFAULT clause.
NO_DEFAULT: Any = _NoDefault()


@attrs.frozen
class Column:
    """One column. ``default`` is a Python value (``None`` means ``DEFAULT NULL``)."""

    name: str = attrs.field(validator=lambda _i, _a, v: check_identifier(v, "column name"))
    type: ColumnType
    size: int | None = None  # for STRING
    nullable: bool = False
    default: Any = NO_DEFAULT
    autoincrement: bool = False  # the integer primary key "id"


@attrs.frozen
class Index:
    """An index; ``unique`` ones are table constraints, as Kamailio declares them."""

    name: str
    columns: tuple[str, ...]
    unique: bool = False


@attrs.frozen
class Table:
    """A table layout and its version (the row Kamailio keeps in table ``version``)."""

    name: str = attrs.field(validator=lambda _i, _a, v: check_identifier(v, "table name"))
    version: int
    columns: tuple[Column, ...]
    indexes: tuple[Index, ...] = ()
    #: Derived once: the column names in order, and each column's type by name.
    column_names: tuple[str, ...] = attrs.field(init=False, eq=False, repr=False)
    types: dict[str, ColumnType] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        names = [c.name for c in self.columns]
        object.__setattr__(self, "column_names", tuple(names))
        object.__setattr__(self, "types", {c.name: c.type for c in self.columns})
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name}: a column is declared twice")
        for index in self.indexes:
            for col in index.columns:
                if col not in names:
                    raise ValueError(f"table {self.name}: index {index.name} names unknown column {col}")

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"table {self.name} has no column {name!r}")

    def renamed(self, name: str) -> Table:
        """The same layout under another name (a ``modparam`` may rename a module's table).
        Index names follow (``location_expires_idx`` -> ``<name>_expires_idx``): PostgreSQL
        wants them unique in the schema."""
        prefix = self.name + "_"
        indexes = tuple(attrs.evolve(ix, name=name + "_" + ix.name[len(prefix):])
                        if ix.name.startswith(prefix) else attrs.evolve(ix, name=f"{name}_{ix.name}")
                        for ix in self.indexes)
        return attrs.evolve(self, name=name, indexes=indexes)

    def with_columns(self, extra: Iterable[Column]) -> Table:
        """The layout with columns added (acc's ``db_extra`` columns, for instance)."""
        return attrs.evolve(self, columns=self.columns + tuple(extra))


# ---- short constructors for the table definitions -------------------------------------------

def id_column() -> Column:
    """Kamailio's ``id`` column: an auto-incremented integer primary key."""
    return Column("id", ColumnType.INT, autoincrement=True)


def string(name: str, size: int, default: Any = "", nullable: bool = False) -> Column:
    return Column(name, ColumnType.STRING, size, nullable or default is None, default)


def integer(name: str, default: Any = 0, nullable: bool = False) -> Column:
    return Column(name, ColumnType.INT, None, nullable or default is None, default)


def datetime_col(name: str, default: Any = NO_DEFAULT, nullable: bool = False) -> Column:
    return Column(name, ColumnType.DATETIME, None, nullable or default is None, default)
