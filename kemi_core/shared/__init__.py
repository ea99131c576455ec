"""State shared by the worker processes of one server (Kamailio's shared memory).

``shared_store(core)`` gives the server's :class:`SharedStore`; ``store.table(name)`` a
:class:`SharedTable` with get/put/delete, prefix scans, atomic ``update``/``incr`` and optional
per-entry expiry. See ``docs/shared-store.md`` for the design and the measured costs.
"""

from __future__ import annotations

from kemi_core.shared.codec import MAX_KEY, KeyTooLong
from kemi_core.shared.server import shared_store
from kemi_core.shared.store import SharedStore, SharedStoreError, SharedStoreFull
from kemi_core.shared.table import DELETE, KEEP, UNCHANGED, SharedTable, Transaction

__all__ = [
    "DELETE",
    "KEEP",
    "MAX_KEY",
    "KeyTooLong",
    "SharedStore",
    "SharedStoreError",
    "SharedStoreFull",
    "SharedTable",
    "Transaction",
    "UNCHANGED",
    "shared_store",
]
