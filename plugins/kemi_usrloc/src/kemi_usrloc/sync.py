"""usrloc's timer work with a database: what to write, written off the main loop.

Each timer run (once per server, the core's housekeeping in the main process) asks every table
for a :class:`Batch`: the contacts that expired (removed from memory at once), and with
write-back the contacts that changed since the last flush. The batch's database statements run
in the process's database thread (``Database.submit``); the shared store is only ever touched
from the main thread, before (collect) and after (done).
"""

from __future__ import annotations

import logging
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


def write(db: Database, batches: list[Batch]) -> int:
    """Run the batches' statements (any thread); DbError stops at the first failure."""
    n = 0
    for b in batches:
        layout = b.domain.ul.layout(b.domain.name)
        for ruid in b.deletes:
            db.delete(layout, {"ruid": ruid})
            n += 1
        for c in b.upserts:
            row = b.domain.row_of(c)
            if c.state == CS_NEW:
                db.replace(layout, row, ("ruid",))
            else:
                db.update(layout, row, {"ruid": c.ruid})
            n += 1
        if b.expired_before is not None:
            where: list[tuple[str, str, object]] = [("expires", "<", b.expired_before),
                                                    ("expires", "!=", 0)]
            if b.domain.ul.server_id_filter:  # Kamailio's rule: only this node's rows
                where.append(("server_id", "=", b.domain.ul.server_id))
            n += db.delete(layout, where)
    return n
