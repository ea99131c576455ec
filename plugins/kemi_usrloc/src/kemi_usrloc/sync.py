"""usrloc's timer work with a database: what to write, written off the main loop.

Each timer run (once per server, the core's housekeeping in the main process) asks every table
for a :class:`Batch`: the contacts that expired (removed from memory at once), and with
write-back the contacts that changed since the last flush. The batch's database statements run
in the process's database thread (``Database.submit``); the shared store is only ever touched
from the main thread, before (collect) and after (done).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

import attrs

from kemi_core.api import Database
from kemi_core.api import db as db_api
from kemi_usrloc.contact import CS_NEW, ROW_COLUMNS, Contact

if TYPE_CHECKING:
    from kemi_usrloc.domain import Domain

log = logging.getLogger("kemi.usrloc")


@attrs.define
class Batch:
    domain: Domain
    #: contacts to write: CS_NEW ones inserted (or replaced), others updated, by ruid
    upserts: list[Contact] = attrs.Factory(list)
    #: write-back: memory-only contacts (FL_MEM) not yet marked synced: marked so without a
    #: write, as Kamailio's flush marks them (a later refresh then updates a row that is not
    #: there, and the contact stays out of the table, as in Kamailio)
    unwritten: list[Contact] = attrs.Factory(list)
    #: ruids whose rows go
    deletes: list[str] = attrs.Factory(list)
    #: write-back tombstones (ruids) to forget once their rows are deleted
    tombstones: list[str] = attrs.Factory(list)
    #: db_mode 3: rows that expired before this Unix time go
    expired_before: int | None = None

    @property
    def empty(self) -> bool:
        return not (self.upserts or self.unwritten or self.deletes
                    or self.expired_before is not None)


#: rows written together by a flush: one commit (one sync of the file) per this many rows
#: rather than one per row, while a huge flush still lets other writers in between
FLUSH_CHUNK = 1000

#: ``(rows, write(start, stop) -> rows counted)``: one statement shape of a batch, run by one
#: executemany over any slice of its rows
_Group = tuple[int, Callable[[int, int], int]]


def _groups(db: Database, batches: list[Batch]) -> Iterator[_Group]:
    """The batches' writes, one group per statement shape: the deletes by ruid, the CS_NEW
    contacts inserted (or replaced), the others updated by ruid, and db_mode 3's expired rows
    (one statement; it counts the rows it took)."""
    for b in batches:
        layout = b.domain.ul.layout(b.domain.name)
        deletes = [(ruid,) for ruid in b.deletes]
        new = [b.domain.values_of(c) for c in b.upserts if c.state == CS_NEW]
        dirty = [b.domain.values_of(c) for c in b.upserts if c.state != CS_NEW]
        for how, columns, rows in (("delete", ("ruid",), deletes),
                                   ("replace", ROW_COLUMNS, new),
                                   ("update", ROW_COLUMNS, dirty)):
            if rows:
                yield len(rows), partial(_write_slice, db, layout, how, columns, rows)
        if b.expired_before is not None:
            where: list[tuple[str, str, object]] = [("expires", "<", b.expired_before),
                                                    ("expires", "!=", 0)]
            if b.domain.ul.server_id_filter:  # Kamailio's rule: only this node's rows
                where.append(("server_id", "=", b.domain.ul.server_id))
            yield 1, partial(_delete_expired, db, layout, where)


def _write_slice(db: Database, layout: db_api.Table, how: str, columns: tuple[str, ...],
                 rows: list[tuple[Any, ...]], start: int, stop: int) -> int:
    db.write_many(layout, columns, rows[start:stop], ("ruid",), how)
    return stop - start  # every row by ruid counts, whether or not it was there


def _delete_expired(db: Database, layout: db_api.Table, where: db_api.Where, _start: int, _stop: int) -> int:
    return db.delete(layout, where)


def write(db: Database, batches: list[Batch]) -> int:
    """Write the batches (any thread), FLUSH_CHUNK rows per transaction; DbError stops at the
    first failure (that chunk's rows roll back; chunks before stay written, and every
    statement may run again: the next flush writes the same rows by ruid)."""
    chunks: list[list[tuple[Callable[[int, int], int], int, int]]] = [[]]
    room = FLUSH_CHUNK
    for size, run in _groups(db, batches):
        start = 0
        while start < size:
            if not room:
                chunks.append([])
                room = FLUSH_CHUNK
            stop = min(size, start + room)
            chunks[-1].append((run, start, stop))
            room -= stop - start
            start = stop
    n = 0
    for chunk in chunks:
        if len(chunk) == 1 and chunk[0][2] - chunk[0][1] == 1:  # one row: no transaction
            run, start, stop = chunk[0]
            n += run(start, stop)
            continue
        if chunk:
            with db.transaction():
                for run, start, stop in chunk:
                    n += run(start, stop)
    return n
