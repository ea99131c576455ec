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
from itertools import islice
from typing import TYPE_CHECKING

import attrs

from kemi_core.api import Database
from kemi_usrloc.contact import CS_NEW, Contact

if TYPE_CHECKING:
    from kemi_usrloc.domain import Domain

log = logging.getLogger("kemi.usrloc")


@attrs.define
class Batch:
    domain: Domain
    #: contacts to write: CS_NEW ones inserted (or replaced), others updated, by ruid
    upserts: list[Contact] = attrs.Factory(list)
    #: ruids whose rows go
    deletes: list[str] = attrs.Factory(list)
    #: write-back tombstones (ruids) to forget once their rows are deleted
    tombstones: list[str] = attrs.Factory(list)
    #: db_mode 3: rows that expired before this Unix time go
    expired_before: int | None = None

    @property
    def empty(self) -> bool:
        return not (self.upserts or self.deletes or self.expired_before is not None)


#: statements committed together by a flush: one commit (one sync of the file) per this many
#: rows rather than one per row, while a huge flush still lets other writers in between
FLUSH_CHUNK = 1000


def _statements(db: Database, batches: list[Batch]) -> Iterator[Callable[[], int]]:
    """The batches' statements, each a call returning what it counts (1 a row written or
    deleted by ruid, the expired delete the rows it took)."""
    for b in batches:
        layout = b.domain.ul.layout(b.domain.name)
        for ruid in b.deletes:
            yield partial(_counted, db.delete, layout, {"ruid": ruid})
        for c in b.upserts:
            row = b.domain.row_of(c)
            if c.state == CS_NEW:
                yield partial(_counted, db.replace, layout, row, ("ruid",))
            else:
                yield partial(_counted, db.update, layout, row, {"ruid": c.ruid})
        if b.expired_before is not None:
            where: list[tuple[str, str, object]] = [("expires", "<", b.expired_before),
                                                    ("expires", "!=", 0)]
            if b.domain.ul.server_id_filter:  # Kamailio's rule: only this node's rows
                where.append(("server_id", "=", b.domain.ul.server_id))
            yield partial(db.delete, layout, where)


def _counted(fn: Callable[..., object], *args: object) -> int:
    fn(*args)
    return 1


def write(db: Database, batches: list[Batch]) -> int:
    """Run the batches' statements (any thread), FLUSH_CHUNK of them per transaction; DbError
    stops at the first failure (that chunk's rows roll back; chunks before stay written, and
    every statement may run again: the next flush writes the same rows by ruid)."""
    n = 0
    todo = _statements(db, batches)
    while chunk := list(islice(todo, FLUSH_CHUNK)):
        if len(chunk) == 1:
            n += chunk[0]()
            continue
        with db.transaction():
            for stmt in chunk:
                n += stmt()
    return n
