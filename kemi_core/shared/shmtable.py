"""Tables in a C hash table in shared memory (``_shmtable``): usrloc's location records.

A ``ShmTable`` offers SharedTable's calls that usrloc uses (get, update, update_never, put,
delete, items) without an LMDB write transaction per change: each key has its bucket's lock
(process-shared, robust: a worker killed holding one does not wedge the others), and values are
the codec's pickles. Each value carries the earliest expiry of what it holds and a dirty mark
(written with it), so ``due(now)`` returns only the entries that have something to do at
``now`` without reading the others. See docs/shared-store.md.

Without the compiled module (no C compiler at install) ``AVAILABLE`` is False and callers keep
their SharedTable.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from kemi_core.shared.store import SharedStore, SharedStoreFull
from kemi_core.shared.table import DELETE, UNCHANGED

try:
    from kemi_core.shared._shmtable import Map, ShmTableError, Table
except ImportError:  # (built without a C compiler)
    AVAILABLE = False
    Table = object
    Map = ShmTableError = None  # type: ignore[assignment,misc]
else:
    AVAILABLE = True

#: The file of the store's shared tables, beside LMDB's in the store's private directory.
MAP_FILE = "tables.shm"
#: Hash buckets of a map (a power of two, a multiple of the 64 lock stripes).
BUCKETS = 16384


def open_map(directory: Path, size: int) -> Any:
    """The map of a store's directory: made by the first process that opens it (a sparse file
    of ``size`` bytes: only what is written takes memory), opened by the others; a full map
    raises SharedStoreFull."""
    return Map(str(directory / MAP_FILE), size, BUCKETS, SharedStoreFull)


def _key_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


class ShmTable(Table):  # type: ignore[misc,valid-type]
    """A named table of a shared map. ``due_field``/``dirty_field``: when values are lists of
    tuples, the tuple fields whose least positive value is the entry's due time and whose
    difference from ``clean`` marks it dirty (-1: none)."""

    #: (registrar's compiled save: update_never is this table's own, in C)
    in_shm = True
    #: whether the C module was built (store.shm_table gives None when not)
    built = AVAILABLE

    def __init__(self, store: SharedStore | None, shm_map: Any, name: str, due_field: int = -1,
                 dirty_field: int = -1, clean: Any = None) -> None:
        super().__init__(shm_map, name, pickle.loads, pickle.dumps, pickle.HIGHEST_PROTOCOL,
                         DELETE, UNCHANGED, due_field, dirty_field, clean)
        self.store = store
        self.name = name

    def __repr__(self) -> str:
        return f"<ShmTable {self.name}>"

    def __contains__(self, key: str | bytes) -> bool:
        return self.get_bytes(key) is not None

    def items(self, prefix: str | bytes = "") -> list[tuple[str, Any]]:
        """Every ``(key, value)`` whose key starts with ``prefix``, in key order (each bucket
        read under its lock; a change made meanwhile may or may not be seen)."""
        pb = prefix.encode("utf-8", "surrogateescape") if isinstance(prefix, str) else prefix
        return sorted((_key_text(k), pickle.loads(v)) for k, v in self.scan(None, pb))

    def due(self, now: float) -> list[tuple[str, Any]]:
        """The entries with something due at ``now`` (a due time reached, or the dirty mark),
        in no order: the timer's walk, which reads no other value."""
        return [(_key_text(k), pickle.loads(v)) for k, v in self.scan(now)]

    def keys(self, prefix: str | bytes = "") -> list[str]:
        return [k for k, _ in self.items(prefix)]

    def count(self, prefix: str | bytes = "") -> int:
        pb = prefix.encode("utf-8", "surrogateescape") if isinstance(prefix, str) else prefix
        return len(self.scan(None, pb))

    def __len__(self) -> int:
        return self.count()
