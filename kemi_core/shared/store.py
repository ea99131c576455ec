"""The store every worker process shares: one LMDB environment per server.

Kamailio keeps registrations, hash tables and counters in shared memory; kemi's workers are
forked processes, so the same state lives in an LMDB environment in a private directory on tmpfs.
Any process reads without locks (a read is a memory-mapped B-tree walk, ~1.5 us with the
unpickling); writes are serialised by LMDB's own cross-process mutex (~15 us each). A write
is visible to every process as soon as it commits, so a worker sees another's change at its
very next read.

An LMDB environment must not be used across ``fork()`` (its locks and reader slots belong to
the process that opened it; py-lmdb refuses a second open in one process). The store closes
its environment just before any ``os.fork()`` and reopens it lazily, on its next use, in the
parent and in the child alike, so every process has its own handle.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import lmdb

from kemi_core.shared import codec
from kemi_core.shared.dirs import make_private_dir
from kemi_core.shared.table import SharedTable, Transaction

log = logging.getLogger("kemi.shared")

#: Address space reserved for the store; tmpfs backs only the pages written (sparse file).
DEFAULT_MAP_SIZE = 1 << 30
ENV_MAP_SIZE = "KEMI_SHARED_SIZE_MB"
#: Tables the store can hold. LMDB sizes every read transaction for this many databases and
#: zeroes that much at each begin (about 60 bytes each): 1000 made a one-key read ~55,000
#: instructions, 128 makes it ~12,500. A server uses ~25 plus one per htable and two per
#: location table; ``KEMI_SHARED_TABLES`` raises it.
DEFAULT_MAX_TABLES = 128
ENV_MAX_TABLES = "KEMI_SHARED_TABLES"
#: Reader slots: one per process in use, plus slots of dead workers until the sweeper frees them.
MAX_READERS = 1024
#: Expired entries removed per write transaction (keeps the writer lock short).
SWEEP_BATCH = 1000

_INDEX_DB = b"__expiry__"

ExpireCallback = Callable[[str, Any], None]
T = TypeVar("T")


class SharedStoreError(RuntimeError):
    """The shared store cannot do what was asked (full, nested write, closed)."""


class SharedStoreFull(SharedStoreError):
    """The store's map is full: raise ``KEMI_SHARED_SIZE_MB``."""


class SharedStore:
    """Named tables of Python values shared by the main process and every worker.

    Make it in the main process before the workers start (``shared_store(core)`` in
    ``mod_init``); every forked worker then uses the same tables. See ``docs/shared-store.md``.
    """

    def __init__(self, path: Path, map_size: int | None = None, owner: bool = True) -> None:
        self.path = Path(path)
        self.map_size = map_size or _map_size_from_env()
        self.max_tables = _max_tables_from_env()
        self.owner_pid = os.getpid() if owner else None
        self.closed = False
        self._env: lmdb.Environment | None = None
        self._index: Any = None
        self._tables: dict[str, SharedTable] = {}
        self._shm_map: Any = None  # the C tables' mapping (shm_table), opened on first use
        self._shm_tables: dict[str, Any] = {}
        self._callbacks: dict[str, list[ExpireCallback]] = {}
        self._writing = False
        #: Wall-clock time for expiry stamps and checks (``core.clock.wall`` for a server's
        #: store, so a test router's advance() expires entries).
        self.wall: Callable[[], float] = time.time
        self._open()
        _live.add(self)

    @classmethod
    def create(cls, base: Path | None = None, map_size: int | None = None) -> SharedStore:
        """A new store in a new private directory, removed when this process exits."""
        store = cls(make_private_dir(base), map_size)
        atexit.register(_remove_at_exit, weakref.ref(store))
        return store

    # ---- environment ---------------------------------------------------------------------
    def _open(self) -> lmdb.Environment:
        if self.closed:
            raise SharedStoreError(f"the shared store {self.path} is closed")
        # sync/metasync off: the store is scratch memory on tmpfs, never a durable copy.
        env = lmdb.open(str(self.path), map_size=self.map_size, max_dbs=self.max_tables,
                        max_readers=MAX_READERS, sync=False, metasync=False, writemap=True,
                        map_async=True, readahead=False, meminit=False, lock=True)
        self._index = env.open_db(_INDEX_DB)
        for table in self._tables.values():
            table._db = env.open_db(table.name_bytes)
        self._env = env
        return env

    def env(self) -> lmdb.Environment:
        """This process's environment handle (opened again after a fork)."""
        return self._env or self._open()

    def _before_fork(self) -> None:
        if self._env is not None:
            self._env.close()
        self._forget_handles()

    def _forget_handles(self) -> None:
        self._env = None
        self._index = None
        for table in self._tables.values():
            table._db = None
        self._writing = False

    def close(self) -> None:
        """Close this process's handle; the data stays for the other processes."""
        if self._env is not None:
            self._env.close()
        self._forget_handles()
        self.closed = True

    def remove(self) -> None:
        """Close and delete the store's directory (the owner does this at exit)."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)

    # ---- tables ----------------------------------------------------------------------------
    def table(self, name: str) -> SharedTable:
        """The table ``name`` (created on first use, in any process)."""
        table = self._tables.get(name)
        if table is not None:
            return table
        data = name.encode()
        if not data or len(data) > codec.MAX_TABLE_NAME or b"\0" in data or data == _INDEX_DB:
            raise ValueError(f"invalid shared table name {name!r}")
        if self._writing:
            raise SharedStoreError("a table cannot be opened inside a write transaction")
        table = SharedTable(self, name)
        try:
            table._db = self.env().open_db(data)
        except lmdb.DbsFullError as exc:
            raise SharedStoreError(
                f"the shared store {self.path} holds {self.max_tables} tables, no more "
                f"(table {name!r}): raise ${ENV_MAX_TABLES}") from exc
        self._tables[name] = table
        return table

    def shm_table(self, name: str, due_field: int = -1, dirty_field: int = -1,
                  clean: Any = None) -> Any:
        """The ``ShmTable`` ``name`` in the store's C shared-memory map (kemi_core.shared.
        shmtable; made by the first process that asks, in any process), None when the compiled
        module was not built. ``due_field``, ``dirty_field``, ``clean``: see ShmTable."""
        from kemi_core.shared import shmtable

        table = self._shm_tables.get(name)
        if table is not None or not shmtable.AVAILABLE:
            return table
        if self.closed:
            raise SharedStoreError(f"the shared store {self.path} is closed")
        if self._shm_map is None:  # (a mapping is kept across fork: no reopening)
            self._shm_map = shmtable.open_map(self.path, self.map_size)
        table = shmtable.ShmTable(self, self._shm_map, name, due_field, dirty_field, clean)
        self._shm_tables[name] = table
        return table

    def tables(self) -> list[str]:
        """Names of every table in the store (those other processes made included)."""
        with self.env().begin() as txn:
            names = [n.decode() for n, _ in txn.cursor()]
        return sorted(n for n in names if n.encode() != _INDEX_DB)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One atomic write over several tables: ``with store.transaction() as tx:``.

        Holds the store's cross-process writer lock until the block ends: keep it short and do
        no I/O in it. An exception aborts every change of the block.
        """
        txn = self._begin_write()
        try:
            yield Transaction(self, txn)
        except BaseException as exc:
            self._end(txn, exc)
            raise
        self._end(txn, None)

    def write(self, body: Callable[[lmdb.Transaction], T]) -> T:
        """Run ``body(txn)`` in one write transaction and commit it (abort on any error)."""
        txn = self._begin_write()
        try:
            result = body(txn)
        except BaseException as exc:
            self._end(txn, exc)
            raise
        self._end(txn, None)
        return result

    def _end(self, txn: lmdb.Transaction, exc: BaseException | None) -> None:
        """Commit (``exc`` None) or abort a write; a full map becomes SharedStoreFull."""
        try:
            if exc is None:
                try:
                    txn.commit()
                    return
                except lmdb.MapFullError as full:
                    exc = full
            txn.abort()
        finally:
            self._writing = False
        if isinstance(exc, lmdb.MapFullError):
            raise self._full() from exc

    def _full(self) -> SharedStoreFull:
        return SharedStoreFull(f"the shared store {self.path} is full "
                               f"({self.map_size >> 20} MB): raise ${ENV_MAP_SIZE}")

    def _begin_write(self, db: Any = None) -> lmdb.Transaction:
        """The write transaction (``db``: the table its get/put/delete use without a db=)."""
        if self._writing:
            raise SharedStoreError("nested write on the shared store (it would deadlock)")
        env = self._env or self._open()
        self._writing = True
        try:
            return env.begin(db, None, True)  # (db, parent, write: a call without a dict)
        except BaseException:
            self._writing = False
            raise

    # ---- expiry ----------------------------------------------------------------------------
    def on_expire(self, table: str, callback: ExpireCallback) -> None:
        """Call ``callback(key, value)`` for each entry of ``table`` the sweeper removes.

        Runs in the process that sweeps (the main process), after the removal is committed.
        """
        self._callbacks.setdefault(table, []).append(callback)

    def sweep(self, now: float | None = None, limit: int = SWEEP_BATCH) -> int:
        """Remove up to ``limit`` entries expired at ``now``; returns how many were removed."""
        now = self.wall() if now is None else now
        due = self._due(now, limit)
        if not due:
            return 0
        for name in {name for _, name, _ in due}:
            self.table(name)  # open handles outside the write transaction
        removed: list[tuple[str, str, Any]] = []

        def body(txn: lmdb.Transaction) -> None:
            for ikey, name, key in due:
                table = self._tables[name]
                buf = txn.get(key, db=table._db)
                # Only if not rewritten since with another expiry (the index entry is stale then).
                if buf is not None and codec.expiry_of(buf) == codec.split_index_key(ikey)[0]:
                    value = codec.decode(buf) if name in self._callbacks else None
                    txn.delete(key, db=table._db)
                    removed.append((name, codec.key_text(key), value))
                txn.delete(ikey, db=self._index)

        self.write(body)
        for name, key, value in removed:
            for callback in self._callbacks.get(name, ()):
                try:
                    callback(key, value)
                except Exception:
                    log.exception("shared table %s: expire callback failed", name)
        return len(removed)

    def _due(self, now: float, limit: int) -> list[tuple[bytes, str, bytes]]:
        due: list[tuple[bytes, str, bytes]] = []
        with self.env().begin(db=self._index) as txn:
            for ikey in txn.cursor().iternext(keys=True, values=False):
                stamp, name, key = codec.split_index_key(ikey)
                if stamp > now or len(due) >= limit:
                    break
                due.append((bytes(ikey), name.decode(), key))
        return due

    def reader_check(self) -> int:
        """Free reader slots left by processes that died; returns how many."""
        return int(self.env().reader_check())

    def stats(self) -> dict[str, Any]:
        """Entries per table and pages in use (for RPCs and the docs' figures)."""
        env = self.env()
        info, stat = env.info(), env.stat()
        out: dict[str, Any] = {"path": str(self.path), "map_size": info["map_size"],
                               "used_bytes": (info["last_pgno"] + 1) * stat["psize"],
                               "readers": info["num_readers"], "tables": {}}
        for name in self.tables():
            out["tables"][name] = len(self.table(name))
        return out


def _map_size_from_env() -> int:
    value = os.environ.get(ENV_MAP_SIZE)
    return int(value) << 20 if value and value.isdigit() else DEFAULT_MAP_SIZE


def _max_tables_from_env() -> int:
    value = os.environ.get(ENV_MAX_TABLES)
    return max(int(value), 16) if value and value.isdigit() else DEFAULT_MAX_TABLES


def _remove_at_exit(ref: weakref.ref[SharedStore]) -> None:
    store = ref()
    if store is not None and store.owner_pid == os.getpid():
        store.remove()


# Every store of this process: closed before a fork, reopened lazily on each side after it.
_live: weakref.WeakSet[SharedStore] = weakref.WeakSet()


def _before_fork() -> None:
    for store in list(_live):
        store._before_fork()


os.register_at_fork(before=_before_fork)
