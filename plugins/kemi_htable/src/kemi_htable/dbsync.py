"""Loading tables from the database (``dbtable``) and writing them back (``dbmode=1``).

Kamailio's ``htable`` table: key_name, key_type (0 plain, 1 array: key_name[n] and
key_name::size), value_type (0 string, 1 integer), key_value, expires (a Unix time; used with
``db_expires=1`` on tables with autoexpire). With ``cols='k,v1,v2'`` the values of several
columns are packed as ``v1,v2`` and the table is never written back.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import attrs

from kemi_core.api import Core, Database, DbError, open_db
from kemi_htable.table import HTable, Value

log = logging.getLogger("kemi.htable")

MODULE = "htable"


@attrs.frozen
class DbSettings:
    url: str = ""
    key_name: str = "key_name"
    key_type: str = "key_type"
    value_type: str = "value_type"
    key_value: str = "key_value"
    expires: str = "expires"
    array_size_suffix: str = "::size"
    db_expires: bool = False

    @classmethod
    def from_core(cls, core: Core) -> DbSettings:
        def p(name: str) -> Any:
            return core.modparam(MODULE, name)

        return cls(p("db_url"), p("key_name_column"), p("key_type_column"),
                   p("value_type_column"), p("key_value_column"), p("expires_column"),
                   p("array_size_suffix"), bool(p("db_expires")))


class DbSync:
    def __init__(self, core: Core, settings: DbSettings) -> None:
        self.s = settings
        self.db: Database | None = open_db(core, settings.url, user=MODULE) if settings.url else None

    def load(self, t: HTable, replace: bool = False) -> int:
        """Read ``t``'s dbtable into it; raises DbError when the database fails."""
        if self.db is None:
            raise DbError("No htable db_url")
        s, spec = self.s, t.spec
        if spec.cols:
            columns = list(spec.cols)
            packed: list[tuple[str, Value, float | None]] = [
                (str(r[columns[0]]), ",".join("" if r[c] is None else str(r[c])
                                              for c in columns[1:]), None)
                for r in self.db.query(spec.dbtable, None, columns)]
            return t.load(packed, replace)
        columns = [s.key_name, s.key_type, s.value_type, s.key_value]
        if s.db_expires:
            columns.append(s.expires)
        rows = self.db.query(spec.dbtable, None, columns)
        now = time.time()
        items: list[tuple[str, Value, float | None]] = []
        arrays: dict[str, int] = {}
        for r in rows:
            name = str(r[s.key_name])
            raw = "" if r[s.key_value] is None else str(r[s.key_value])
            value: Value = raw
            if int(r[s.value_type] or 0) == 1:
                try:
                    value = int(raw)
                except ValueError:
                    log.error("htable %s: %r is not an integer (key %s)", spec.name, raw, name)
                    continue
            ttl = None
            if s.db_expires and spec.autoexpire:
                expires = int(r[s.expires] or 0)
                if expires:
                    if expires <= now:
                        continue
                    ttl = expires - now
            if int(r[s.key_type] or 0) == 1:
                n = arrays.get(name, 0)
                arrays[name] = n + 1
                items.append((f"{name}[{n}]", value, ttl))
            else:
                items.append((name, value, ttl))
        items += [(f"{name}{s.array_size_suffix}", n, None) for name, n in arrays.items()]
        return t.load(items, replace)

    def save(self, t: HTable) -> int:
        """Write ``t`` back to its dbtable (dbmode=1, at shutdown): the table's rows are
        replaced by the current items."""
        if self.db is None or t.spec.cols:
            return 0
        s, spec = self.s, t.spec
        rows = []
        for key, value in t.snapshot():
            row = {s.key_name: key, s.key_type: 0, s.value_type: 1 if isinstance(value, int) else 0,
                   s.key_value: str(value)}
            if s.db_expires:
                at = t.items.expires_at(key)
                row[s.expires] = int(at) if at else 0
            rows.append(row)
        with self.db.transaction():
            self.db.delete(spec.dbtable)
            if rows:
                self.db.insert_many(spec.dbtable, rows)
        return len(rows)
