"""The tables of this server, by name, and the per-process iterators over them."""

from __future__ import annotations

import logging

import attrs

from kemi_htable.table import HTable, Value

log = logging.getLogger("kemi.htable")

TABLES: dict[str, HTable] = {}


def table(name: str, who: str = "") -> HTable | None:
    t = TABLES.get(name)
    if t is None and who:
        log.error("%s: no hash table %r (modparam(\"htable\", \"htable\", \"%s=>...\"))",
                  who, name, name)
    return t


@attrs.define
class Iterator:
    """sht_iterator_*: a snapshot of a table walked item by item (Kamailio allows 4 at once
    and locks a slot; a snapshot needs no lock and cannot deadlock)."""

    table: HTable
    items: list[tuple[str, Value]]
    pos: int = -1

    @property
    def current(self) -> tuple[str, Value] | None:
        return self.items[self.pos] if 0 <= self.pos < len(self.items) else None


#: Open iterators of this process, by name.
ITERATORS: dict[str, Iterator] = {}
MAX_ITERATORS = 4
