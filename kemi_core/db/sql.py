"""Parameterised SQL for the five operations of Kamailio's DB API.

Values never enter the SQL text: every statement has placeholders (``?`` or ``%s``, the
backend's style) and the values travel beside it. Identifiers are checked names in double
quotes. Statements depend only on a call's *shape* (table, columns, operators, which values are
NULL), so they are built once per shape and cached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kemi_core.db.ddl import quote_ident
from kemi_core.db.schema import check_identifier

#: ``where``: ``{"col": value}`` (equality; ``None`` tests IS NULL), or a sequence of
#: ``(col, op, value)`` with op one of :data:`OPERATORS` (one column may appear twice).
Where = Mapping[str, Any] | Sequence[tuple[str, str, Any]] | None

OPERATORS = frozenset({"=", "!=", "<>", "<", "<=", ">", ">="})

_CACHE_LIMIT = 1024
_cache: dict[tuple[Any, ...], str] = {}


def conditions(where: Where) -> list[tuple[str, str, Any]]:
    """``where`` as a list of ``(column, operator, value)``."""
    if not where:
        return []
    if isinstance(where, Mapping):
        return [(col, "=", val) for col, val in where.items()]
    return [(col, op, val) for col, op, val in where]


def _where_sql(conds: list[tuple[str, str, Any]], ph: str) -> tuple[str, list[Any]]:
    parts: list[str] = []
    params: list[Any] = []
    for col, op, val in conds:
        if op not in OPERATORS:
            raise ValueError(f"unsupported operator {op!r} in a condition on {col!r}")
        name = quote_ident(check_identifier(col, "column name"))
        if val is None:
            if op == "=":
                parts.append(f"{name} IS NULL")
            elif op in ("!=", "<>"):
                parts.append(f"{name} IS NOT NULL")
            else:
                raise ValueError(f"NULL cannot be compared with {op!r} (column {col!r})")
            continue
        parts.append(f"{name} {op} {ph}")
        params.append(val)
    return (" WHERE " + " AND ".join(parts)) if parts else "", params


def _shape(conds: list[tuple[str, str, Any]]) -> tuple[Any, ...]:
    return tuple((c, op, v is None) for c, op, v in conds)


def _cached(key: tuple[Any, ...], build: Any) -> str:
    sql = _cache.get(key)
    if sql is None:
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        sql = _cache[key] = build()
    return sql


def _cols(columns: Sequence[str]) -> str:
    return ", ".join(quote_ident(check_identifier(c, "column name")) for c in columns)


def _order(order_by: str | Sequence[str] | None) -> str:
    """``"q"`` or ``("-q", "id")``: a leading ``-`` sorts descending."""
    if not order_by:
        return ""
    items = [order_by] if isinstance(order_by, str) else list(order_by)
    parts = []
    for item in items:
        desc = item.startswith("-")
        name = quote_ident(check_identifier(item.lstrip("-"), "column name"))
        parts.append(name + (" DESC" if desc else ""))
    return " ORDER BY " + ", ".join(parts)


def select(ph: str, table: str, columns: Sequence[str], where: Where,
           order_by: str | Sequence[str] | None = None,
           limit: int | None = None) -> tuple[str, list[Any]]:
    conds = conditions(where)
    order_key = order_by if isinstance(order_by, str | None) else tuple(order_by)
    key = ("select", ph, table, tuple(columns), _shape(conds), order_key, limit is not None)

    def build() -> str:
        sql = f"SELECT {_cols(columns)} FROM {quote_ident(check_identifier(table, 'table name'))}"
        sql += _where_sql(conds, ph)[0] + _order(order_by)
        return sql + (f" LIMIT {ph}" if limit is not None else "")

    sql = _cached(key, build)
    params = [v for _, _, v in conds if v is not None]
    if limit is not None:
        params.append(int(limit))
    return sql, params


def insert(ph: str, table: str, columns: Sequence[str]) -> str:
    key = ("insert", ph, table, tuple(columns))
    return _cached(key, lambda: (
        f"INSERT INTO {quote_ident(check_identifier(table, 'table name'))} ({_cols(columns)}) "
        f"VALUES ({', '.join([ph] * len(columns))})"))


def update(ph: str, table: str, columns: Sequence[str], where: Where) -> tuple[str, list[Any]]:
    if not columns:
        raise ValueError("update with no values to set")
    conds = conditions(where)
    key = ("update", ph, table, tuple(columns), _shape(conds))

    def build() -> str:
        sets = ", ".join(f"{quote_ident(check_identifier(c, 'column name'))} = {ph}" for c in columns)
        return (f"UPDATE {quote_ident(check_identifier(table, 'table name'))} SET {sets}"
                + _where_sql(conds, ph)[0])

    return _cached(key, build), [v for _, _, v in conds if v is not None]


def delete(ph: str, table: str, where: Where) -> tuple[str, list[Any]]:
    conds = conditions(where)
    key = ("delete", ph, table, _shape(conds))
    sql = _cached(key, lambda: f"DELETE FROM {quote_ident(check_identifier(table, 'table name'))}"
                  + _where_sql(conds, ph)[0])
    return sql, [v for _, _, v in conds if v is not None]


def upsert(ph: str, table: str, columns: Sequence[str], key_columns: Sequence[str]) -> str:
    """Insert, or update the row whose unique ``key_columns`` match (Kamailio's replace /
    insert_update). The key columns need a unique index, as Kamailio's layouts have."""
    missing = [k for k in key_columns if k not in columns]
    if not key_columns or missing:
        raise ValueError(f"replace needs its key columns among the values (missing: {missing})")
    cache_key = ("upsert", ph, table, tuple(columns), tuple(key_columns))

    def build() -> str:
        others = [c for c in columns if c not in key_columns]
        action = ("DO UPDATE SET " + ", ".join(
            f"{quote_ident(c)} = excluded.{quote_ident(c)}" for c in others)) if others else "DO NOTHING"
        return insert(ph, table, columns) + f" ON CONFLICT ({_cols(key_columns)}) {action}"

    return _cached(cache_key, build)
