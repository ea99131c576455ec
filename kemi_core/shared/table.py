"""One named table of the shared store: get, put, delete, prefix scans, atomic updates.

Keys are str (or bytes), at most 400 bytes in UTF-8; values are any picklable Python value.
An entry may expire: ``ttl`` seconds from now (wall clock). An expired entry reads as absent
in every process at once; the main process's sweeper removes it later and runs the table's
expire callbacks.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Final

import lmdb

from kemi_core.shared import codec
from kemi_core.shared.codec import NEVER_PREFIX, STAMP_SIZE
from kemi_core.sip.binding_fast import shared_never_update

if TYPE_CHECKING:
    from kemi_core.shared.store import SharedStore


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: Entries keep_decoded() remembers per process (emptied when full).
DECODED_SIZE = 16384

#: ``update``/``incr``: keep the entry's current expiry (a new entry gets none).
KEEP: Final = _Marker("KEEP")
#: Returned by an ``update`` function: remove the entry.
DELETE: Final = _Marker("DELETE")
#: Returned by an ``update`` function: write nothing (the entry stays as it is).
UNCHANGED: Final = _Marker("UNCHANGED")

Ttl = float | int | None | _Marker


def _stamp(ttl: float | int | None, now: float) -> float:
    return now + ttl if ttl else codec.NEVER


class SharedTable:
    """A table of the shared store (``store.table(name)``)."""

    __slots__ = ("store", "name", "name_bytes", "_db", "_decoded")

    #: update_never's compiled change: its constants (None without _fast) and the longest key,
    #: for a compiled caller that runs update_never's usual case itself (registrar's usual save)
    NEVER_CONSTS: ClassVar[tuple[Any, ...] | None] = None
    MAX_KEY: ClassVar[int] = codec.MAX_KEY
    #: (a ShmTable's is True: registrar's compiled save calls its update_never instead)
    in_shm: ClassVar[bool] = False

    def __init__(self, store: SharedStore, name: str) -> None:
        self.store = store
        self.name = name
        self.name_bytes = name.encode()
        self._db: Any = None  # this process's LMDB handle, renewed after a fork
        #: keep_decoded(): key -> (the stored bytes, their value) last written or read here
        self._decoded: dict[bytes, tuple[bytes, Any]] | None = None

    def keep_decoded(self) -> None:
        """Remember, in this process, the value of each entry it last wrote or read, with its
        stored bytes: when an entry still holds those bytes, ``get`` and ``update`` hand out
        the remembered value instead of unpickling it again (a refresh REGISTER rewrites the
        record the same worker wrote last time). Only for tables whose users never change a
        value in place (usrloc's records are lists of tuples, read and replaced whole)."""
        self._decoded = {}

    def _remember(self, kb: bytes, data: bytes, value: Any) -> None:
        decoded = self._decoded
        if decoded is not None:
            if len(decoded) >= DECODED_SIZE:
                decoded.clear()
            decoded[kb] = (data, value)

    def __repr__(self) -> str:
        return f"<SharedTable {self.name}>"

    def _handle(self) -> Any:
        if self._db is None:
            self.store.env()
        return self._db

    # ---- reads (no lock) -----------------------------------------------------------------
    def get(self, key: str | bytes, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when absent or expired."""
        kb = codec.key_bytes(key)
        env = self.store._env or self.store._open()
        with env.begin(db=self._db, buffers=True) as txn:
            buf = txn.get(kb)
            if buf is None or not codec.live(buf, self.store.wall()):
                return default
            decoded = self._decoded
            if decoded is None:
                return codec.decode(buf)
            hit = decoded.get(kb)
            if hit is not None and hit[0] == buf:
                return hit[1]
            value = codec.decode(buf)
            self._remember(kb, bytes(buf), value)
            return value

    def __contains__(self, key: str | bytes) -> bool:
        return self.get(key, _ABSENT) is not _ABSENT

    def expires_at(self, key: str | bytes) -> float | None:
        """Wall-clock time ``key`` expires at; None when it never does or is absent."""
        kb = codec.key_bytes(key)
        with self.store.env().begin(db=self._handle(), buffers=True) as txn:
            buf = txn.get(kb)
            if buf is None or not codec.live(buf, self.store.wall()):
                return None
            stamp = codec.expiry_of(buf)
            return None if stamp == codec.NEVER else stamp

    def items(self, prefix: str | bytes = "") -> list[tuple[str, Any]]:
        """Every live ``(key, value)`` whose key starts with ``prefix``, in key order, read in
        one consistent snapshot."""
        pb = prefix.encode() if isinstance(prefix, str) else bytes(prefix)
        now = self.store.wall()
        out = []
        with self.store.env().begin(db=self._handle(), buffers=True) as txn:
            cur = txn.cursor()
            found = cur.set_range(pb) if pb else cur.first()
            while found:
                kb = bytes(cur.key())
                if not kb.startswith(pb):
                    break
                buf = cur.value()
                if codec.live(buf, now):
                    out.append((codec.key_text(kb), codec.decode(buf)))
                found = cur.next()
        return out

    def keys(self, prefix: str | bytes = "") -> list[str]:
        return [k for k, _ in self.items(prefix)]

    def count(self, prefix: str | bytes = "") -> int:
        """Live entries whose key starts with ``prefix``."""
        return len(self.items(prefix))

    def __len__(self) -> int:
        """Entries stored, expired ones not swept yet included (cheap: no scan)."""
        with self.store.env().begin() as txn:
            return int(txn.stat(self._handle())["entries"])

    # ---- writes (one cross-process lock each) -------------------------------------------
    def put(self, key: str | bytes, value: Any, ttl: float | None = None) -> None:
        """Set ``key``; with ``ttl`` it expires that many seconds from now."""
        kb = codec.key_bytes(key)
        stamp = _stamp(ttl, self.store.wall())
        self.store.write(lambda txn: _put_in(txn, self, kb, value, stamp))

    def add(self, key: str | bytes, value: Any, ttl: float | None = None) -> bool:
        """Set ``key`` only when it is absent (or expired); True when it was set."""
        kb = codec.key_bytes(key)
        now = self.store.wall()

        def body(txn: lmdb.Transaction) -> bool:
            buf = txn.get(kb, db=self._handle())
            if buf is not None and codec.live(buf, now):
                return False
            _put_in(txn, self, kb, value, _stamp(ttl, now))
            return True

        return bool(self.store.write(body))

    def delete(self, key: str | bytes) -> bool:
        """Remove ``key``; True when a live entry was removed."""
        return self.pop(key, _ABSENT) is not _ABSENT

    def pop(self, key: str | bytes, default: Any = None) -> Any:
        """Remove ``key`` and return its value (``default`` when absent)."""
        old = default

        def fn(value: Any) -> Any:
            nonlocal old
            old = value
            return DELETE

        self.update(key, fn, default=default)
        return old

    def update(self, key: str | bytes, fn: Callable[[Any], Any], default: Any = None,
               ttl: Ttl = KEEP) -> Any:
        """Atomic read-modify-write: ``new = fn(current)`` under the writer lock.

        ``fn`` gets ``default`` when the key is absent or expired, and returns the new value,
        ``DELETE`` to remove the entry, or ``UNCHANGED`` to write nothing. ``ttl``: ``KEEP`` (the entry's current expiry), None
        (never) or seconds from now. ``fn`` must be quick and do no I/O: every writer of every
        process waits for it. Returns the new value (None when deleted; the current one when
        unchanged).
        """
        kb = codec.key_bytes(key)
        store = self.store
        txn = store._begin_write()  # store.write(...) unrolled: this is usrloc's save path
        try:
            result = _update_in(txn, self, kb, fn, default, ttl, None)
            txn.commit()  # store._end(txn, None) inlined; a full map is handled there
        except BaseException as exc:
            store._end(txn, exc)
            raise
        store._writing = False
        return result

    def update_never(self, key: str, fn: Callable[[Any, Any], tuple[Any, Any]], arg: Any) -> Any:
        """update(key, ...) of an entry that never expires, in one step (usrloc's records, each
        read and replaced whole by every REGISTER): ``fn(current or None, arg)`` returns
        ``(new value or DELETE or UNCHANGED, result)``; ``result`` is returned. An entry found
        with an expiry keeps it (through the general path)."""
        kb = key.encode("utf-8", "surrogateescape")
        if not kb or len(kb) > codec.MAX_KEY:
            codec.key_bytes(key)  # (raises KeyTooLong)
        store = self.store
        db = self._db if self._db is not None else self._handle()  # (opened outside the write)
        # the transaction's default table is this one: the compiled change's get and put go
        # without a db= keyword (a call with one builds a dict for it, twice per REGISTER)
        txn = store._begin_write(db)
        try:
            if _NEVER_CONSTS is not None:  # (the "else" branch below, compiled)
                result = shared_never_update(_NEVER_CONSTS, txn, None, kb, fn, arg, self._decoded)
                if result is not _GENERAL:
                    txn.commit()
                    store._writing = False
                    return result
            buf = txn.get(kb, db=db)
            if buf is not None and buf[:STAMP_SIZE] != NEVER_PREFIX:
                out: list[Any] = []

                def general(value: Any) -> Any:
                    new, result = fn(value, arg)
                    out.append(result)
                    return new

                _update_in(txn, self, kb, general, None, KEEP, None)
                result = out[0]
            else:
                decoded = self._decoded
                new, result = fn(_current(decoded, kb, buf, None), arg)
                if new is DELETE:
                    if decoded is not None:
                        decoded.pop(kb, None)
                    if buf is not None:
                        txn.delete(kb, db=db)
                elif new is not UNCHANGED:
                    data = NEVER_PREFIX + pickle.dumps(new, protocol=pickle.HIGHEST_PROTOCOL)
                    txn.put(kb, data, db=db)
                    if decoded is not None:  # (_remember, inlined)
                        if len(decoded) >= DECODED_SIZE:
                            decoded.clear()
                        decoded[kb] = (data, new)
            txn.commit()
        except BaseException as exc:
            store._end(txn, exc)
            raise
        store._writing = False
        return result

    def incr(self, key: str | bytes, delta: int = 1, ttl: Ttl = KEEP) -> int:
        """Add ``delta`` to an integer entry (absent counts as 0); returns the new value."""
        return int(self.update(key, lambda v: v + delta, 0, ttl))

    def clear(self) -> None:
        """Remove every entry of the table."""

        def body(txn: lmdb.Transaction) -> None:
            for kb, buf in txn.cursor(db=self._handle()):
                stamp = codec.expiry_of(buf)
                if stamp != codec.NEVER:
                    txn.delete(codec.index_key(stamp, self.name_bytes, bytes(kb)),
                               db=self.store._index)
            txn.drop(self._db, delete=False)

        self.store.write(body)


class Transaction:
    """Several tables changed atomically (``with store.transaction() as tx``)."""

    def __init__(self, store: SharedStore, txn: lmdb.Transaction) -> None:
        self.store = store
        self.txn = txn
        self.now = self.store.wall()

    def get(self, table: SharedTable, key: str | bytes, default: Any = None) -> Any:
        buf = self.txn.get(codec.key_bytes(key), db=table._handle())
        if buf is None or not codec.live(buf, self.now):
            return default
        return codec.decode(buf)

    def put(self, table: SharedTable, key: str | bytes, value: Any,
            ttl: float | None = None) -> None:
        _put_in(self.txn, table, codec.key_bytes(key), value, _stamp(ttl, self.now))

    def delete(self, table: SharedTable, key: str | bytes) -> bool:
        gone = False

        def fn(old: Any) -> Any:
            nonlocal gone
            gone = old is not _ABSENT
            return DELETE

        _update_in(self.txn, table, codec.key_bytes(key), fn, _ABSENT, KEEP, self.now)
        return gone

    def update(self, table: SharedTable, key: str | bytes, fn: Callable[[Any], Any],
               default: Any = None, ttl: Ttl = KEEP) -> Any:
        return _update_in(self.txn, table, codec.key_bytes(key), fn, default, ttl, self.now)


_ABSENT: Final = _Marker("ABSENT")


def _put_in(txn: lmdb.Transaction, table: SharedTable, kb: bytes, value: Any,
            stamp: float) -> None:
    old = txn.get(kb, db=table._handle())
    _write(txn, table, kb, value, stamp, codec.NEVER if old is None else codec.expiry_of(old))


def _write(txn: lmdb.Transaction, table: SharedTable, kb: bytes, value: Any, stamp: float,
           old_stamp: float) -> None:
    """Store ``value``, keeping the expiry index right (``old_stamp``: the entry's current)."""
    index = table.store._index
    if old_stamp != codec.NEVER and old_stamp != stamp:
        txn.delete(codec.index_key(old_stamp, table.name_bytes, kb), db=index)
    txn.put(kb, codec.encode(value, stamp), db=table._db)
    if stamp != codec.NEVER and stamp != old_stamp:
        txn.put(codec.index_key(stamp, table.name_bytes, kb), b"", db=index)


#: update_never's compiled change (None without _fast): its arguments besides the call's
_GENERAL: Final = _Marker("GENERAL")  # (returned when the entry has an expiry)
_NEVER_CONSTS: tuple[Any, ...] | None = None if shared_never_update is None else (
    _GENERAL, codec.decode, pickle.dumps, pickle.HIGHEST_PROTOCOL, DELETE, UNCHANGED,
    NEVER_PREFIX, DECODED_SIZE)
SharedTable.NEVER_CONSTS = _NEVER_CONSTS


def _current(decoded: dict[bytes, tuple[bytes, Any]] | None, kb: bytes,
             buf: bytes | memoryview | None, default: Any) -> Any:
    """The value ``buf`` holds (``default`` for None): the one remembered with these very bytes
    (keep_decoded), else unpickled."""
    if buf is None:
        return default
    hit = decoded.get(kb) if decoded is not None else None
    return hit[1] if hit is not None and hit[0] == buf else codec.decode(buf)


def _update_in(txn: lmdb.Transaction, table: SharedTable, kb: bytes,
               fn: Callable[[Any], Any], default: Any, ttl: Ttl, now: float | None) -> Any:
    """``now``: the wall clock, read here when None and an expiry needs it (an entry that
    never expires, updated with KEEP, as usrloc's records are, needs no clock)."""
    db = table._db if table._db is not None else table._handle()
    buf = txn.get(kb, db=db)
    if ttl is KEEP and (buf is None or buf[:STAMP_SIZE] == NEVER_PREFIX):
        # The usual update of an entry without expiry (usrloc's records): no stamp to read or
        # index to keep right; what the general path below does for it, in fewer steps.
        decoded = table._decoded
        current = _current(decoded, kb, buf, default)
        new = fn(current)
        if new is UNCHANGED:
            return current
        if new is not DELETE:
            data = NEVER_PREFIX + pickle.dumps(new, protocol=pickle.HIGHEST_PROTOCOL)
            txn.put(kb, data, db=db)
            if decoded is not None:  # table._remember(kb, data, new), inlined
                if len(decoded) >= DECODED_SIZE:
                    decoded.clear()
                decoded[kb] = (data, new)  # (if the commit fails, the bytes differ: no harm)
            return new
        if decoded is not None:
            decoded.pop(kb, None)
        if buf is not None:
            txn.delete(kb, db=db)
        return None
    if buf is None:
        old_stamp, present, current = codec.NEVER, False, default
    else:
        old_stamp = codec.expiry_of(buf)
        if old_stamp != codec.NEVER and now is None:
            now = table.store.wall()
        present = old_stamp == codec.NEVER or old_stamp > now  # type: ignore[operator]
        current = _current(table._decoded, kb, buf, default) if present else default
    new = fn(current)
    if new is UNCHANGED:
        return current
    if new is DELETE:
        if table._decoded is not None:
            table._decoded.pop(kb, None)
        if buf is not None:
            txn.delete(kb, db=db)
            if old_stamp != codec.NEVER:
                txn.delete(codec.index_key(old_stamp, table.name_bytes, kb),
                           db=table.store._index)
        return None
    if isinstance(ttl, _Marker):  # KEEP
        stamp = old_stamp if present else codec.NEVER
    else:
        stamp = _stamp(ttl, table.store.wall() if now is None else now)
    if stamp == codec.NEVER and old_stamp == codec.NEVER:  # no expiry index to keep right
        data = codec.encode_never(new)
        txn.put(kb, data, db=db)
        table._remember(kb, data, new)  # (if the commit fails, the bytes differ: no harm)
    else:
        if table._decoded is not None:
            table._decoded.pop(kb, None)
        _write(txn, table, kb, new, stamp, old_stamp)
    return new
