"""A location table (Kamailio's "domain", e.g. ``location``): the records of every AOR.

``MemDomain`` keeps the records in the server's shared store (db_mode 0, 1, 2): one entry per
AOR holding its contact list, changed atomically under the store's writer lock, so a save in
one worker is what the next lookup in any worker reads. ``DbDomain`` (db_mode 3) keeps nothing
in memory: every operation is a query on the database, so several servers can share it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from kemi_core.api import DbError, SharedTable
from kemi_usrloc.contact import CS_DIRTY, CS_NEW, CS_SYNC, FL_MEM, Contact, from_row, to_row

if TYPE_CHECKING:
    from kemi_usrloc.service import Usrloc

log = logging.getLogger("kemi.usrloc")

R = TypeVar("R")
#: ``fn(contacts) -> (new contacts or None for unchanged, result)``: the change save() makes.
Change = Callable[[list[Contact]], tuple[list[Contact] | None, R]]

NO_DB, WRITE_THROUGH, WRITE_BACK, DB_ONLY = 0, 1, 2, 3


class UsrlocDbError(Exception):
    """A database operation of a write-through or DB-only change failed (already logged)."""


def _pack(contacts: list[Contact]) -> list[tuple[Any, ...]]:
    return [tuple(c) for c in contacts]


def _unpack(raw: list[tuple[Any, ...]] | None) -> list[Contact]:
    return [Contact._make(t) for t in raw] if raw else []


class Domain:
    """What every mode offers registrar and the RPCs."""

    def __init__(self, ul: Usrloc, name: str) -> None:
        self.ul = ul
        self.name = name

    def get(self, aor: str) -> list[Contact]:
        """Every contact of ``aor`` (expired ones not yet removed included)."""
        raise NotImplementedError

    def update(self, aor: str, fn: Change[R], db: bool = True) -> R:
        """Apply ``fn`` to the record of ``aor`` atomically; ``db=False``: memory only."""
        raise NotImplementedError

    def records(self) -> Iterator[tuple[str, list[Contact]]]:
        """Every AOR and its contacts."""
        raise NotImplementedError

    def delete(self, aor: str) -> bool:
        return bool(self.update(aor, lambda old: ([], bool(old))))

    def timer(self, now: float) -> None:
        """Remove expired contacts (and synchronise with the database)."""

    def flush(self) -> None:
        """Write every pending change to the database (write-back)."""

    # ---- database rows ---------------------------------------------------------------------
    def _where(self, aor: str) -> dict[str, Any]:
        username, domain = self.ul.split_aor(aor)
        where: dict[str, Any] = {"username": username}
        if self.ul.use_domain:
            where["domain"] = domain
        return where

    def _row(self, c: Contact) -> dict[str, Any]:
        username, domain = self.ul.split_aor(c.aor)
        return to_row(c, username, domain if self.ul.use_domain else None)

    def _write_diff(self, old: list[Contact], new: list[Contact]) -> None:
        """Make the table's rows for one AOR go from ``old`` to ``new`` (by ruid)."""
        db, layout = self.ul.db, self.ul.layout(self.name)
        assert db is not None
        before = {c.ruid: c for c in old}
        after = {c.ruid: c for c in new}
        for ruid, c in after.items():
            if c.flags & FL_MEM:
                continue
            prev = before.get(ruid)
            if prev is None:
                db.insert(layout, self._row(c))
            elif not prev.same_data(c):
                db.update(layout, self._row(c), {"ruid": ruid})
        for ruid, c in before.items():
            if ruid not in after and not c.flags & FL_MEM:
                db.delete(layout, {"ruid": ruid})


class MemDomain(Domain):
    """Records in the shared store (db_mode 0, 1, 2)."""

    def __init__(self, ul: Usrloc, name: str, table: SharedTable, deleted: SharedTable) -> None:
        super().__init__(ul, name)
        self.table = table
        #: write-back: ruids of synced contacts removed since the last flush, to delete in the DB.
        self.deleted = deleted

    def get(self, aor: str) -> list[Contact]:
        return _unpack(self.table.get(aor))

    def records(self) -> Iterator[tuple[str, list[Contact]]]:
        for aor, raw in self.table.items():
            yield aor, _unpack(raw)

    def update(self, aor: str, fn: Change[R], db: bool = True) -> R:
        mode = self.ul.db_mode
        out: list[Any] = []

        def body(tx: Any) -> None:
            old = _unpack(tx.get(self.table, aor))
            new, result = fn(old)
            out[:] = [old, new, result]
            if new is None:
                return
            if mode == WRITE_BACK:
                new = self._mark(old, new, tx)
                out[1] = new
            if new:
                tx.put(self.table, aor, _pack(new))
            else:
                tx.delete(self.table, aor)

        with self.table.store.transaction() as tx:
            body(tx)
        old, new, result = out
        if new is not None and mode == WRITE_THROUGH and db:
            try:
                self._write_diff(old, new)
            except DbError as exc:
                raise UsrlocDbError(str(exc)) from exc
        return result  # type: ignore[no-any-return]

    def _mark(self, old: list[Contact], new: list[Contact], tx: Any) -> list[Contact]:
        """Write-back: new contacts are CS_NEW, changed synced ones CS_DIRTY; removed synced
        ones are remembered for the next flush."""
        before = {c.ruid: c for c in old}
        marked = []
        for c in new:
            prev = before.get(c.ruid)
            if prev is None:
                c = c._replace(state=CS_NEW)
            elif not prev.same_data(c):
                c = c._replace(state=CS_NEW if prev.state == CS_NEW else CS_DIRTY)
            else:
                c = c._replace(state=prev.state)
            marked.append(c)
        kept = {c.ruid for c in new}
        for c in old:
            if c.ruid not in kept and c.state != CS_NEW and not c.flags & FL_MEM:
                tx.put(self.deleted, c.ruid, c.aor)
        return marked

    # ---- timer -----------------------------------------------------------------------------
    def timer(self, now: float) -> None:
        expired_any = False
        for aor, contacts in list(self.records()):
            if any(not c.alive(now) for c in contacts):
                expired_any = True
                self._expire(aor, now)
        if self.ul.db_mode == WRITE_BACK:
            self.flush()
        elif expired_any:
            log.debug("usrloc %s: expired contacts removed", self.name)

    def _expire(self, aor: str, now: float) -> None:
        def drop(old: list[Contact]) -> tuple[list[Contact] | None, list[Contact]]:
            gone = [c for c in old if not c.alive(now)]
            return ([c for c in old if c.alive(now)] if gone else None), gone

        try:
            gone = self.update(aor, drop)
        except UsrlocDbError:
            return  # logged by the DB layer; tried again at the next run
        for c in gone:
            self.ul.expired(self.name, c)

    def flush(self) -> None:
        """Write-back: insert/update what changed, delete what was removed (main process)."""
        db, layout = self.ul.db, self.ul.layout(self.name)
        if db is None:
            return
        try:
            for ruid, _aor in self.deleted.items():
                db.delete(layout, {"ruid": ruid})
                self.deleted.delete(ruid)
            for aor, contacts in list(self.records()):
                pending = [c for c in contacts
                           if c.state != CS_SYNC and not c.flags & FL_MEM]
                if not pending:
                    continue
                for c in pending:
                    if c.state == CS_NEW:
                        db.replace(layout, self._row(c), ("ruid",))
                    else:
                        db.update(layout, self._row(c), {"ruid": c.ruid})
                self._mark_synced(aor, pending)
        except DbError:
            log.error("usrloc %s: write-back flush failed; tried again at the next timer",
                      self.name)

    def _mark_synced(self, aor: str, written: list[Contact]) -> None:
        done = {c.ruid: c for c in written}

        def sync(old: list[Contact]) -> tuple[list[Contact], None]:
            new = []
            for c in old:
                w = done.get(c.ruid)
                # Changed again since it was written: stays pending for the next flush.
                new.append(c._replace(state=CS_SYNC) if w is not None and w.same_data(c) else c)
            return new, None

        with self.table.store.transaction() as tx:
            raw = tx.get(self.table, aor)
            if raw:
                new, _ = sync(_unpack(raw))
                tx.put(self.table, aor, _pack(new))


class DbDomain(Domain):
    """No memory cache: every operation goes to the database (db_mode 3)."""

    def get(self, aor: str) -> list[Contact]:
        assert self.ul.db is not None
        try:
            rows = self.ul.db.query(self.ul.layout(self.name), self._where(aor), order_by="id")
        except DbError as exc:
            raise UsrlocDbError(str(exc)) from exc
        return self.ul.ordered([from_row(r, aor) for r in rows])

    def records(self) -> Iterator[tuple[str, list[Contact]]]:
        assert self.ul.db is not None
        by_aor: dict[str, list[Contact]] = {}
        try:
            rows = self.ul.db.query(self.ul.layout(self.name), order_by="id")
        except DbError as exc:
            raise UsrlocDbError(str(exc)) from exc
        for row in rows:
            aor = self.ul.aor_of_row(row)
            by_aor.setdefault(aor, []).append(from_row(row, aor))
        for aor, contacts in by_aor.items():
            yield aor, self.ul.ordered(contacts)

    def update(self, aor: str, fn: Change[R], db: bool = True) -> R:
        database = self.ul.db
        assert database is not None
        try:
            with database.transaction():
                old = self.get(aor)
                new, result = fn(old)
                if new is not None:
                    self._write_diff(old, new)
        except DbError as exc:
            raise UsrlocDbError(str(exc)) from exc
        return result

    def timer(self, now: float) -> None:
        """Delete expired rows (once per server, from the main process)."""
        assert self.ul.db is not None
        limit = int(now) - self.ul.rm_expired_delay
        try:
            self.ul.db.delete(self.ul.layout(self.name),
                              [("expires", "<", limit), ("expires", "!=", 0)])
        except DbError:
            pass  # logged by the DB layer

