"""htable's RPC commands, answering as Kamailio does (kamcmd shows the same fields)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kemi_core.api import Core, DbError, KemiError
from kemi_htable.registry import TABLES
from kemi_htable.table import HTable, Value

if TYPE_CHECKING:
    from kemi_htable.dbsync import DbSync


def _table(params: list[Any], n: int) -> HTable:
    if len(params) < n:
        raise KemiError("Too few parameters")
    t = TABLES.get(str(params[0]))
    if t is None:
        raise KemiError("No such htable")
    return t


def _item(name: str, value: Value) -> dict[str, Any]:
    return {"name": name, "value": value, "type": "int" if isinstance(value, int) else "str"}


def dump(core: Core, params: list[Any]) -> list[dict[str, Any]]:
    """Every item of a table: [{entry, size, slot: [{name, value, type}]}]."""
    t = _table(params, 1)
    return [{"entry": i, "size": 1, "slot": [_item(k, v)]} for i, (k, v) in enumerate(t.snapshot())]


def get(core: Core, params: list[Any]) -> dict[str, Any]:
    t = _table(params, 2)
    key = str(params[1])
    value = t.items.get(key) if t.has(key) else None
    if value is None:
        raise KemiError("Key name doesn't exist in htable.")
    at = t.items.expires_at(key)
    expire = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at else 0
    return {"item": {"name": key, "value": value, "flags": 0, "expire": expire}}


def sets(core: Core, params: list[Any]) -> str:
    t = _table(params, 3)
    if not t.set(str(params[1]), str(params[2])):
        raise KemiError("Unable to set the value.")
    return "Ok. Key set to new value."


def seti(core: Core, params: list[Any]) -> str:
    t = _table(params, 3)
    try:
        value = int(params[2])
    except (TypeError, ValueError):
        raise KemiError("Value is not an integer")
    if not t.set(str(params[1]), value):
        raise KemiError("Unable to set the value.")
    return "Ok. Key set to new value."


def delete(core: Core, params: list[Any]) -> str:
    t = _table(params, 2)
    if not t.delete(str(params[1])):
        raise KemiError("Key not found in htable.")
    return "Ok. Key deleted."


def flush(core: Core, params: list[Any]) -> str:
    _table(params, 1).clear()
    return "Ok. Htable flushed."


def reload(sync: DbSync | None, core: Core, params: list[Any]) -> str:
    t = _table(params, 1)
    if sync is None or sync.db is None:
        raise KemiError("No htable db_url")
    if not t.spec.dbtable:
        raise KemiError("No database table for htable")
    try:
        sync.load(t, replace=True)
    except (DbError, ValueError) as exc:
        raise KemiError(f"Htable reload failed: {exc}")
    return "Reload OK"


def store(sync: DbSync | None, core: Core, params: list[Any]) -> str:
    """Write the table to its dbtable now (what dbmode=1 does at shutdown): how nodes sharing
    one database hand a table over (``htable.store`` on one, ``htable.reload`` on another)."""
    t = _table(params, 1)
    if sync is None or sync.db is None:
        raise KemiError("No htable db_url")
    if not t.spec.dbtable:
        raise KemiError("No database table for htable")
    try:
        sync.save(t)
    except DbError as exc:
        raise KemiError(f"Htable store failed: {exc}")
    return "Ok. Htable successfully stored to DB."


def list_tables(core: Core, params: list[Any]) -> list[dict[str, Any]]:
    return [{"name": t.name, "dbtable": t.spec.dbtable, "dbmode": t.spec.dbmode,
             "expire": t.spec.autoexpire, "updateexpire": int(t.spec.updateexpire),
             "size": t.spec.slots, "dmqreplicate": t.spec.dmqreplicate}
            for t in TABLES.values()]


def stats(core: Core, params: list[Any]) -> list[dict[str, Any]]:
    out = []
    for t in TABLES.values():
        n = t.items.count()
        out.append({"name": t.name, "slots": t.spec.slots, "all": n, "min": 0,
                    "max": min(n, 1)})
    return out


def register(core: Core, sync: Callable[[], DbSync | None]) -> None:
    core.add_rpc("htable.dump", dump, "every item of a hash table: htable.dump NAME")
    core.add_rpc("htable.get", get, "one item: htable.get NAME KEY")
    core.add_rpc("htable.sets", sets, "set a string item: htable.sets NAME KEY VALUE")
    core.add_rpc("htable.seti", seti, "set an integer item: htable.seti NAME KEY VALUE")
    core.add_rpc("htable.delete", delete, "remove an item: htable.delete NAME KEY")
    core.add_rpc("htable.flush", flush, "remove every item: htable.flush NAME")
    core.add_rpc("htable.reload", lambda c, p: reload(sync(), c, p),
                 "reload a table from its dbtable: htable.reload NAME")
    core.add_rpc("htable.store", lambda c, p: store(sync(), c, p),
                 "write a table to its dbtable now: htable.store NAME")
    core.add_rpc("htable.listTables", list_tables, "the tables and their attributes")
    core.add_rpc("htable.stats", stats, "items per table")
