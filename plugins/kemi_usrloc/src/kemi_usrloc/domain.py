"""A location table (Kamailio's "domain", e.g. ``location``): the records of every AOR.

``MemDomain`` keeps the records in shared memory (db_mode 0, 1, 2): one entry per AOR holding
its contact list, changed atomically under its bucket's lock in the store's C table (a
``ShmTable``; an LMDB table of the store, under its writer lock, when the C module was not
built), so a save in one worker is what the next lookup in any worker reads. ``DbDomain`` (db_mode 3) keeps nothing
in memory: every operation is a query on the database, so several servers can share it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from kemi_core.api import DELETE, UNCHANGED, DbError, SharedTable
from kemi_core.sip import ul_change_one
from kemi_usrloc.contact import (
    CS_DIRTY,
    CS_NEW,
    CS_SYNC,
    FL_MEM,
    Contact,
    changed_row,
    from_row,
    row_values,
    to_row,
)
from kemi_usrloc.stats import DomainStats
from kemi_usrloc.sync import Batch

if TYPE_CHECKING:
    from kemi_usrloc.service import Usrloc

log = logging.getLogger("kemi.usrloc")

R = TypeVar("R")
A = TypeVar("A")
#: ``fn(contacts) -> (new contacts or None for unchanged, result)``: the change save() makes.
Change = Callable[[list[Contact]], tuple[list[Contact] | None, R]]
#: ``fn(the record's only contact or None, arg) -> its one contact after, or None``: save()'s
#: usual change (update_one).
ChangeOne = Callable[[Contact | None, A], Contact | None]

NO_DB, WRITE_THROUGH, WRITE_BACK, DB_ONLY = 0, 1, 2, 3
#: write-back: records marked synced per store transaction after a flush (LMDB table)
MARK_CHUNK = 100
#: The fields of a stored contact tuple the C table reads for its due and dirty marks.
EXPIRES_FIELD = Contact._fields.index("expires")
STATE_FIELD = Contact._fields.index("state")


def _row_kept(c: Contact, unregistered: Mapping[str, bool] | None) -> bool:
    """Whether removing ``c`` leaves its database row: memory-only contacts' rows stay, and a
    contact unregistered by save() follows that save's memory-only flag."""
    if unregistered:
        mem_only = unregistered.get(c.ruid)
        if mem_only is not None:
            return mem_only
    return bool(c.flags & FL_MEM)


class UsrlocDbError(Exception):
    """A database operation of a write-through or DB-only change failed (already logged)."""


_tuple_new = tuple.__new__


#: tuple.__new__(Contact, t) as Contact._make does it, without its length check (the store
#: holds what _pack wrote)
_as_contact = partial(_tuple_new, Contact)


#: The store key of the empty AOR (a REGISTER whose To has no user, use_domain off: Kamailio
#: keeps its bindings under ""), which the shared store cannot take as a key. No AOR the
#: registrar forms holds a NUL.
EMPTY_AOR_KEY = "\x00"


def store_key(aor: str) -> str:
    """The shared store's key of an AOR."""
    return aor or EMPTY_AOR_KEY


def _pack(contacts: list[Contact]) -> list[tuple[Any, ...]]:
    """Contacts as plain tuples: they pickle smaller and faster than named tuples."""
    return list(map(tuple, contacts))  # (C-level loops, here and in _unpack)


def _unpack(raw: list[tuple[Any, ...]] | None) -> list[Contact]:
    return list(map(_as_contact, raw)) if raw else []


def _change_one(raw: list[tuple[Any, ...]] | None,
                fn_arg: tuple[ChangeOne[Any], Any]) -> tuple[Any, Any]:
    """update_one's change of the stored record (SharedTable.update_never's ``fn``)."""
    if raw is not None and len(raw) != 1:
        return UNCHANGED, None
    fn, arg = fn_arg
    old = _as_contact(raw[0]) if raw else None
    new = fn(old, arg)
    if new is None:
        return UNCHANGED, None
    return [tuple(new)], (old, new)


def _change_one_back(raw: list[tuple[Any, ...]] | None,
                     fn_arg: tuple[ChangeOne[Any], Any]) -> tuple[Any, Any]:
    """_change_one with write-back: the new contact's sync state as MemDomain._mark sets it.
    A change that replaces a written contact by another (its row must go: a tombstone) is
    left to update()."""
    if raw is not None and len(raw) != 1:
        return UNCHANGED, None
    fn, arg = fn_arg
    old = _as_contact(raw[0]) if raw else None
    new = fn(old, arg)
    if new is None:
        return UNCHANGED, None
    if old is None:
        state = CS_NEW
    elif old.ruid != new.ruid:
        if old.state != CS_NEW and not old.flags & FL_MEM:
            return UNCHANGED, None
        state = CS_NEW
    elif old.same_data(new):
        state = old.state
    else:
        state = CS_NEW if old.state == CS_NEW else CS_DIRTY
    if new.state != state:
        new = new._replace(state=state)
    return [tuple(new)], (old, new)


#: update_one's change as update_never runs it: _change_one's compiled form when built
_CHANGE_ONE: Callable[[list[tuple[Any, ...]] | None, tuple[ChangeOne[Any], Any]],
                      tuple[Any, Any]] = (
    _change_one if ul_change_one is None else partial(ul_change_one, UNCHANGED, Contact))


class Domain:
    """What every mode offers registrar and the RPCs."""

    def __init__(self, ul: Usrloc, name: str) -> None:
        self.ul = ul
        self.name = name
        self.stats = DomainStats(ul.core, name, ul.registered_users)

    def get(self, aor: str) -> list[Contact]:
        """Every contact of ``aor`` (expired ones not yet removed included)."""
        raise NotImplementedError

    def update(self, aor: str, fn: Change[R], db: bool = True,
               unregistered: Mapping[str, bool] | None = None) -> R:
        """Apply ``fn`` to the record of ``aor`` atomically; ``db=False``: memory only.
        ``unregistered``: ruid -> memory only, for the contacts ``fn`` removed on request
        (filled by ``fn``): their rows follow that, not the contact's own FL_MEM (Kamailio's
        registrar sets or clears FL_MEM by save()'s flag before it unregisters a contact)."""
        raise NotImplementedError

    def update_one(self, aor: str, fn: ChangeOne[A], arg: A,
                   db: bool = True) -> tuple[Contact | None, Contact] | None:
        """save()'s usual change in one step: when the record of ``aor`` holds one contact or
        none and ``fn(it or None, arg)`` returns a contact, the record becomes that one contact
        and ``(old or None, new)`` is returned, as update() with a function doing the same
        would leave it. None: nothing changed (``fn`` returned None, the record holds several
        contacts, or this mode has no such step): the caller takes update()."""
        return None

    def records(self) -> Iterator[tuple[str, list[Contact]]]:
        """Every AOR and its contacts."""
        raise NotImplementedError

    def delete(self, aor: str) -> bool:
        return bool(self.update(aor, lambda old: ([], bool(old))))

    def collect(self, now: float, expire: bool = True) -> Batch:
        """Timer work (main process): expired contacts removed from memory, and what the
        database must be told about them and, with write-back, about every change."""
        return Batch(self)

    def done(self, batch: Batch) -> None:
        """After ``batch`` was written: the contacts it wrote are in sync (main process)."""

    # ---- database rows ---------------------------------------------------------------------
    def _where(self, aor: str) -> dict[str, Any]:
        username, domain = self.ul.split_aor(aor)
        where: dict[str, Any] = {"username": username}
        if self.ul.use_domain:
            where["domain"] = domain
        return where

    def row_of(self, c: Contact) -> dict[str, Any]:
        username, domain = self.ul.split_aor(c.aor)
        return to_row(c, username, domain if self.ul.use_domain else None)

    def values_of(self, c: Contact) -> tuple[Any, ...]:
        """row_of's values, in ROW_COLUMNS' order."""
        username, domain = self.ul.split_aor(c.aor)
        return row_values(c, username, domain if self.ul.use_domain else None)

    def _write_refresh(self, before: Contact, after: Contact) -> None:
        """The usual write-through: an AOR's only binding refreshed (what _write_diff's loops
        would do for it, without their dicts and partials)."""
        if not after.flags & FL_MEM and not before.same_data(after):
            db = self.ul.db
            assert db is not None
            db.update(self.ul.layout(self.name), changed_row(before, after), {"ruid": after.ruid})

    def _write_diff(self, old: list[Contact], new: list[Contact],
                    unregistered: Mapping[str, bool] | None = None) -> None:
        """Make the table's rows for one AOR go from ``old`` to ``new`` (by ruid)."""
        db, layout = self.ul.db, self.ul.layout(self.name)
        assert db is not None
        if len(old) == 1 and len(new) == 1 and old[0].ruid == new[0].ruid:
            self._write_refresh(old[0], new[0])
            return
        before = {c.ruid: c for c in old}
        after = {c.ruid: c for c in new}
        writes: list[Callable[[], object]] = []
        for ruid, c in after.items():
            if c.flags & FL_MEM:
                continue
            prev = before.get(ruid)
            if prev is None:
                writes.append(partial(db.insert, layout, self.row_of(c)))
            elif not prev.same_data(c):
                writes.append(partial(db.update, layout, changed_row(prev, c), {"ruid": ruid}))
        for ruid, c in before.items():
            if ruid not in after and not _row_kept(c, unregistered):
                writes.append(partial(db.delete, layout, {"ruid": ruid}))
        if len(writes) == 1:  # a refresh: one statement, committed on its own
            writes[0]()
        elif writes:  # the rows of one REGISTER change together or not at all
            with db.transaction():
                for write in writes:
                    write()


class MemDomain(Domain):
    """Records in shared memory (db_mode 0, 1, 2): ``table`` is the store's C table (a
    ShmTable: the timer reads only records with something due) or an LMDB table of it."""

    def __init__(self, ul: Usrloc, name: str, table: SharedTable | Any,
                 deleted: SharedTable) -> None:
        super().__init__(ul, name)
        self.table = table
        self.in_shm = bool(getattr(table, "in_shm", False))
        #: write-back: ruids of synced contacts removed since the last flush, to delete in the DB.
        self.deleted = deleted

    def load(self, records: Mapping[str, list[tuple[Any, ...]]]) -> None:
        """Preload: ``records`` (store key -> packed contacts) put in the table."""
        if self.in_shm:
            for key, raw in records.items():
                self.table.put(key, raw)
            return
        with self.table.store.transaction() as tx:
            for key, raw in records.items():
                tx.put(self.table, key, raw)

    def _tombstone(self, tx: Any, ruid: str, aor: str) -> None:
        """Write-back: a synced contact's row to delete at the next flush (``tx``: the LMDB
        transaction changing its record; None: the C table's update, its lock held)."""
        if tx is None:
            self.deleted.put(ruid, aor)
        else:
            tx.put(self.deleted, ruid, aor)

    def get(self, aor: str) -> list[Contact]:
        return _unpack(self.table.get(aor or EMPTY_AOR_KEY))

    def records(self) -> Iterator[tuple[str, list[Contact]]]:
        for key, raw in self.table.items():
            yield ("" if key == EMPTY_AOR_KEY else key), _unpack(raw)

    def update(self, aor: str, fn: Change[R], db: bool = True,
               unregistered: Mapping[str, bool] | None = None) -> R:
        """Without write-back (every REGISTER's save): one store write, and the database row
        changes after it with write-through."""
        mode = self.ul.db_mode
        if mode == WRITE_BACK:
            return self._update_back(aor, fn, unregistered)
        out: tuple[list[Contact], list[Contact] | None, R] | None = None

        def change(raw: list[tuple[Any, ...]] | None) -> Any:
            nonlocal out
            old = list(map(_as_contact, raw)) if raw else []  # (_unpack, inlined)
            new, result = fn(old)
            out = (old, new, result)
            if new is None:
                return UNCHANGED
            return _pack(new) if new else DELETE

        self.table.update(aor or EMPTY_AOR_KEY, change)
        assert out is not None
        old, new, result = out
        if new is not None:
            if len(old) != len(new):  # (stats.changed does nothing else)
                self.stats.changed(len(old), len(new))
            if db and mode == WRITE_THROUGH:
                try:
                    self._write_diff(old, new, unregistered)
                except DbError as exc:
                    raise UsrlocDbError(str(exc)) from exc
        return result

    def update_one(self, aor: str, fn: ChangeOne[A], arg: A,
                   db: bool = True) -> tuple[Contact | None, Contact] | None:
        mode = self.ul.db_mode
        # (write-back: the change sets the sync state as update()'s _mark does)
        got: tuple[Contact | None, Contact] | None = self.table.update_never(
            aor or EMPTY_AOR_KEY, _change_one_back if mode == WRITE_BACK else _CHANGE_ONE,
            (fn, arg))
        if got is None:
            return None
        if got[0] is None:  # (what update() tells the stats when the count changes)
            self.stats.changed(0, 1)
        if db and mode == WRITE_THROUGH:
            self.write_one(got)
        return got

    def write_one(self, got: tuple[Contact | None, Contact]) -> None:
        """update_one's write-through of the change it made, ``(old or None, new)``
        (registrar's compiled save calls it too); UsrlocDbError when the database refused."""
        old = got[0]
        try:
            if old is None:
                self._write_diff([], [got[1]])
            else:
                self._write_refresh(old, got[1])
        except DbError as exc:
            raise UsrlocDbError(str(exc)) from exc

    def _update_back(self, aor: str, fn: Change[R],
                     unregistered: Mapping[str, bool] | None) -> R:
        """update() with write-back: the contacts' sync states and the tombstones of removed
        ones change in the same transaction."""
        out: list[Any] = []

        def change(raw: list[tuple[Any, ...]] | None, tx: Any) -> Any:
            old = _unpack(raw)
            new, result = fn(old)
            if new is not None:
                new = self._mark(old, new, tx, unregistered)
            out[:] = [old, new, result]
            if new is None:
                return UNCHANGED
            return _pack(new) if new else DELETE

        if self.in_shm:  # the tombstones of removed contacts written under the record's lock
            self.table.update(aor or EMPTY_AOR_KEY, lambda raw: change(raw, None))
        else:  # the tombstones of removed contacts go in the same transaction
            with self.table.store.transaction() as tx:
                tx.update(self.table, aor or EMPTY_AOR_KEY, lambda raw: change(raw, tx))
        old, new, result = out
        if new is not None:
            self.stats.changed(len(old), len(new))
        return result  # type: ignore[no-any-return]

    def _mark(self, old: list[Contact], new: list[Contact], tx: Any,
              unregistered: Mapping[str, bool] | None = None) -> list[Contact]:
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
            if c.ruid not in kept and c.state != CS_NEW and not _row_kept(c, unregistered):
                self._tombstone(tx, c.ruid, c.aor)
        return marked

    # ---- timer -----------------------------------------------------------------------------
    def collect(self, now: float, expire: bool = True) -> Batch:
        mode = self.ul.db_mode
        batch = Batch(self)
        # the C table hands out only the records with a contact expired by now or, with
        # write-back, one not in sync: nothing to read for the others
        table: Any = self.table  # (a ShmTable has due(); the LMDB table, items() only)
        entries = table.due(now) if self.in_shm else table.items()
        for key, raw in entries:
            aor, contacts = ("" if key == EMPTY_AOR_KEY else key), _unpack(raw)
            if expire and any(not c.alive(now) for c in contacts):
                for c in self._expire(aor, now):
                    self.stats.expires.inc()
                    self.ul.expired(self.name, c)
                    if c.flags & FL_MEM or (mode == WRITE_BACK and c.state == CS_NEW):
                        continue  # never written: nothing to delete
                    if mode != NO_DB:
                        batch.deletes.append(c.ruid)
                contacts = self.get(aor)
            if mode == WRITE_BACK:
                for c in contacts:
                    if c.state != CS_SYNC:
                        (batch.unwritten if c.flags & FL_MEM else batch.upserts).append(c)
        if mode == WRITE_BACK:
            for ruid, _aor in self.deleted.items():
                batch.deletes.append(ruid)
                batch.tombstones.append(ruid)
        return batch

    def _expire(self, aor: str, now: float) -> list[Contact]:
        def drop(old: list[Contact]) -> tuple[list[Contact] | None, list[Contact]]:
            gone = [c for c in old if not c.alive(now)]
            return ([c for c in old if c.alive(now)] if gone else None), gone

        return self.update(aor, drop, db=False)  # the rows go with the batch

    def done(self, batch: Batch) -> None:
        for ruid in batch.tombstones:
            self.deleted.delete(ruid)
        by_aor: dict[str, list[Contact]] = {}
        for c in (*batch.upserts, *batch.unwritten):
            by_aor.setdefault(c.aor, []).append(c)
        # MARK_CHUNK records per store transaction: not one per AOR, nor the workers' saves
        # held up for a whole large flush
        items = list(by_aor.items())
        if self.in_shm:  # one record's lock at a time
            for aor, written in items:
                self.table.update(aor or EMPTY_AOR_KEY,
                                  partial(self._synced, None, aor, written))
            return
        for start in range(0, len(items), MARK_CHUNK):
            with self.table.store.transaction() as tx:
                for aor, written in items[start:start + MARK_CHUNK]:
                    key = aor or EMPTY_AOR_KEY
                    new = self._synced(tx, aor, written, tx.get(self.table, key))
                    if new is not UNCHANGED:
                        tx.put(self.table, key, new)

    def _synced(self, tx: Any, aor: str, written: list[Contact],
                raw: list[tuple[Any, ...]] | None) -> Any:
        """The record ``raw`` of ``aor`` once ``written`` are in the database: those still as
        written marked synced (UNCHANGED: no record); tombstones for those removed meanwhile."""
        done = {c.ruid: c for c in written}
        current = _unpack(raw)
        present = {c.ruid for c in current}
        for ruid in done:
            if ruid not in present:  # removed while its row was being written
                self._tombstone(tx, ruid, aor)
        if not current:
            return UNCHANGED
        # A contact changed again since it was written stays pending for the next flush.
        return _pack([
            c._replace(state=CS_SYNC) if c.ruid in done and done[c.ruid].same_data(c) else c
            for c in current])


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

    def update(self, aor: str, fn: Change[R], db: bool = True,
               unregistered: Mapping[str, bool] | None = None) -> R:
        database = self.ul.db
        assert database is not None
        try:
            with database.transaction():
                old = self.get(aor)
                new, result = fn(old)
                if new is not None:
                    self._write_diff(old, new, unregistered)
        except DbError as exc:
            raise UsrlocDbError(str(exc)) from exc
        return result

    def collect(self, now: float, expire: bool = True) -> Batch:
        """Rows that expired (rm_expired_delay seconds ago) are deleted, once per server. Nodes
        sharing the table each do it, as Kamailio's nodes do: the delete is idempotent, so each
        row goes once; with server_id_filter a node deletes only the rows it saved."""
        batch = Batch(self)
        if expire:
            batch.expired_before = int(now) - self.ul.rm_expired_delay
        return batch

