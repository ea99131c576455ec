"""Loading the address and trusted tables and sharing them with every worker.

The main process reads the rows (at start, and on ``permissions.addressReload`` /
``trustedReload``) and puts them in the shared store with a new generation number. Each
worker compiles them once per generation: a check costs one shared-store read of that number.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import attrs

from kemi_core.api import Core, Database, DbError, KemiError, SharedTable, open_db
from kemi_permissions.addresses import AddressRow, AddressTable, InvalidRecord, make_row
from kemi_permissions.trusted import TrustedRow, TrustedTable, make_trusted

log = logging.getLogger("kemi.permissions")

MODULE = "permissions"
STORE_TABLE = "permissions:tables"

T = TypeVar("T")


@attrs.frozen
class Columns:
    address_table: str = "address"
    grp: str = "grp"
    ip_addr: str = "ip_addr"
    mask: str = "mask"
    port: str = "port"
    tag: str = "tag"
    trusted_table: str = "trusted"
    source: str = "src_ip"
    proto: str = "proto"
    from_: str = "from_pattern"
    ruri: str = "ruri_pattern"
    priority: str = "priority"

    @classmethod
    def from_core(cls, core: Core) -> Columns:
        def p(name: str) -> str:
            return str(core.modparam(MODULE, name))

        return cls(p("address_table"), p("grp_col"), p("ip_addr_col"), p("mask_col"),
                   p("port_col"), p("tag_col"), p("trusted_table"), p("source_col"),
                   p("proto_col"), p("from_col"), p("ruri_col"), p("priority_col"))


class Shared(Generic[T]):
    """One table's rows in the shared store, compiled per process per generation."""

    def __init__(self, store: SharedTable, name: str, compile_rows: Callable[[list[Any]], T],
                 empty: T) -> None:
        self.store = store
        self.name = name
        self.compile = compile_rows
        self._gen = -1
        self._compiled = empty

    def publish(self, rows: list[Any]) -> None:
        self.compile(rows)  # refuse what cannot be compiled before anyone sees it
        with self.store.store.transaction() as tx:
            gen = int(tx.get(self.store, f"{self.name}:gen", 0)) + 1
            tx.put(self.store, f"{self.name}:rows", rows)
            tx.put(self.store, f"{self.name}:gen", gen)

    def current(self) -> T:
        gen = self.store.get(f"{self.name}:gen", 0)
        if gen != self._gen:
            rows = self.store.get(f"{self.name}:rows", [])
            self._compiled = self.compile(rows)
            self._gen = gen
        return self._compiled

    def rows(self) -> list[Any]:
        return list(self.store.get(f"{self.name}:rows", []))


class Loader:
    """Reads the tables from the database (or the address file) in the main process."""

    def __init__(self, core: Core, store: SharedTable) -> None:
        self.core = core
        self.cols = Columns.from_core(core)
        url = str(core.modparam(MODULE, "db_url") or "")
        self.db: Database | None = open_db(core, url, user=MODULE) if url else None
        self.address_file = str(core.modparam(MODULE, "address_file") or "")
        self.reload_delta = int(core.modparam(MODULE, "reload_delta"))
        self.last_reload: dict[str, float] = {}
        self.addresses: Shared[AddressTable] = Shared(
            store, "address", lambda rows: AddressTable(AddressRow(*r) for r in rows),
            AddressTable(()))
        self.trusted: Shared[TrustedTable] = Shared(
            store, "trusted", lambda rows: TrustedTable(TrustedRow(*r) for r in rows),
            TrustedTable(()))

    # ---- reading -------------------------------------------------------------------------
    def read_addresses(self) -> list[tuple[Any, ...]]:
        if self.address_file:
            rows = read_address_file(self.core.resolve_path(self.address_file))
        else:
            if self.db is None:
                return []
            c = self.cols
            raw = self.db.query(c.address_table, None, [c.grp, c.ip_addr, c.mask, c.port, c.tag])
            rows = [make_row({"grp": r[c.grp], "ip_addr": r[c.ip_addr], "mask": r[c.mask],
                              "port": r[c.port], "tag": r[c.tag]}) for r in raw]
        return [attrs.astuple(r) for r in rows]

    def read_trusted(self) -> list[tuple[Any, ...]]:
        if self.db is None:
            return []
        c = self.cols
        cols = [c.source, c.proto, c.from_, c.ruri, c.tag, c.priority]
        raw = self.db.query(c.trusted_table, None, cols)
        return [attrs.astuple(make_trusted({"src_ip": r[c.source], "proto": r[c.proto],
                                            "from_pattern": r[c.from_],
                                            "ruri_pattern": r[c.ruri], "tag": r[c.tag],
                                            "priority": r[c.priority]})) for r in raw]

    # ---- loading and reloading -----------------------------------------------------------
    def load_all(self, backends: int) -> None:
        if backends & 1 and (self.db is not None or self.address_file):
            self.addresses.publish(self.read_addresses())
        if backends & 2 and self.db is not None:
            try:
                self.trusted.publish(self.read_trusted())
            except DbError as exc:  # Kamailio goes on without the trusted cache
                log.error("permissions: trusted table not loaded: %s", exc)

    def reload(self, which: str) -> str:
        now = time.monotonic()
        last = self.last_reload.get(which)
        if self.reload_delta and last is not None and now - last < self.reload_delta:
            raise KemiError("ongoing reload")
        if which == "address" and self.db is None and not self.address_file:
            raise KemiError("Reload failed: no db_url or address_file")
        self.last_reload[which] = now
        try:
            if which == "address":
                self.addresses.publish(self.read_addresses())
            else:
                self.trusted.publish(self.read_trusted())
        except (DbError, InvalidRecord, OSError) as exc:
            log.error("permissions: %s reload failed (the old rows stay): %s", which, exc)
            raise KemiError("Reload failed")
        return "Reload OK"


def read_address_file(path: str) -> list[AddressRow]:
    """Kamailio's address file: ``grp address [mask [port [tag]]]`` per line, # comments."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            if len(fields) < 2:
                raise InvalidRecord(f"{path}:{number}: a group and an address are needed")
            values: dict[str, Any] = {"grp": fields[0], "ip_addr": fields[1]}
            for name, value in zip(("mask", "port", "tag"), fields[2:], strict=False):
                values[name] = value
            rows.append(make_row(values))
    return rows
