"""The C shared-memory tables (kemi_core/shared/_shmtable.c): their calls, several forked
writers at once, a writer killed holding a bucket's lock, the allocator's reuse, a full map."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kemi_core.shared import shmtable
from kemi_core.shared.shmtable import ShmTable, open_map
from kemi_core.shared.store import SharedStore, SharedStoreFull
from kemi_core.shared.table import DELETE, UNCHANGED

pytestmark = pytest.mark.skipif(not shmtable.AVAILABLE, reason="_shmtable not built")

MB = 1 << 20


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SharedStore]:
    s = SharedStore(tmp_path / "store", 64 * MB)
    yield s
    s.remove()


def _table(store: SharedStore, name: str = "t", **marks: Any) -> ShmTable:
    table = store.shm_table(name, **marks)
    assert isinstance(table, ShmTable)
    return table


def _in_child(body: Callable[[], None]) -> int:
    """Fork; the child runs ``body`` and exits 0 (1 on an exception). Returns its pid."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            body()
            code = 0
        finally:
            os._exit(code)
    return pid


def _wait(pid: int, timeout: float = 20.0) -> int:
    """The child's exit status (killed by a signal: minus the signal)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"child {pid} did not end in {timeout}s")


def test_get_put_update_delete(store: SharedStore) -> None:
    t = _table(store)
    assert t.get("alice") is None and t.get("alice", 7) == 7 and "alice" not in t
    t.put("alice", [("a", 1)])
    assert t.get("alice") == [("a", 1)] and "alice" in t
    assert t.update("alice", lambda v: [*v, ("b", 2)]) == [("a", 1), ("b", 2)]
    assert t.update("alice", lambda v: UNCHANGED) == [("a", 1), ("b", 2)]
    assert t.update("bob", lambda v: v + 1, 41) == 42
    assert t.update_never("carol", lambda cur, arg: ([arg], cur), "c") is None
    assert t.update_never("carol", lambda cur, arg: (UNCHANGED, cur), None) == ["c"]
    assert t.items() == [("alice", [("a", 1), ("b", 2)]), ("bob", 42), ("carol", ["c"])]
    assert t.keys("b") == ["bob"] and t.count() == 3 and len(t) == 3
    assert t.update("bob", lambda v: DELETE) is None and t.get("bob") is None
    assert t.delete("alice") is True and t.delete("alice") is False
    t.clear()
    assert t.items() == []


def test_tables_of_one_map_are_apart_and_another_open_sees_them(store: SharedStore) -> None:
    a, b = _table(store, "a"), _table(store, "b")
    a.put("k", 1)
    b.put("k", 2)
    assert (a.get("k"), b.get("k")) == (1, 2)
    other = ShmTable(None, open_map(store.path, store.map_size), "a")  # (as another process opens it)
    assert other.get("k") == 1
    other.put("k", 3)
    assert a.get("k") == 3  # (a's remembered value is not used: the bytes changed)


def test_keep_decoded_hands_out_the_same_value_while_the_bytes_stay(store: SharedStore) -> None:
    t = _table(store)
    t.keep_decoded()
    t.put("k", [("x", 1)])
    first = t.get("k")
    assert t.get("k") is first
    ShmTable(None, open_map(store.path, store.map_size), "t").put("k", [("x", 2)])
    assert t.get("k") == [("x", 2)]


def test_due_returns_only_entries_with_something_due(store: SharedStore) -> None:
    t = _table(store, due_field=1, dirty_field=2, clean=0)
    t.put("late", [("a", 200, 0), ("b", 0, 0)])  # due at 200
    t.put("soon", [("a", 0, 0), ("b", 100, 0)])  # due at 100 (0: never)
    t.put("never", [("a", 0, 0)])
    t.put("dirty", [("a", 0, 1)])
    assert sorted(k for k, _ in t.due(50)) == ["dirty"]
    assert sorted(k for k, _ in t.due(100)) == ["dirty", "soon"]
    assert sorted(k for k, _ in t.due(500)) == ["dirty", "late", "soon"]
    t.update("dirty", lambda v: [("a", 0, 0)])
    assert sorted(k for k, _ in t.due(50)) == []


def test_a_key_is_checked_and_a_nested_use_refused(store: SharedStore) -> None:
    t = _table(store)
    with pytest.raises(ValueError):
        t.put("", 1)
    with pytest.raises(ValueError):
        t.put("x" * 2000, 1)
    t.put("k", 1)
    with pytest.raises(shmtable.ShmTableError):
        t.update("k", lambda v: t.get("other"))
    assert t.update("k", lambda v: v + 1) == 2  # (the lock was given back)
    with pytest.raises(ZeroDivisionError):
        t.update("k", lambda v: v / 0)
    assert t.get("k") == 2


def test_forked_writers_each_change_is_kept(store: SharedStore) -> None:
    t = _table(store)
    keys, procs, rounds = [f"k{i}" for i in range(16)], 4, 300
    for k in keys:
        t.put(k, 0)

    def writer() -> None:
        for i in range(rounds):
            t.update(keys[i % len(keys)], lambda v: v + 1)

    pids = [_in_child(writer) for _ in range(procs)]
    assert [_wait(p) for p in pids] == [0] * procs
    assert sum(t.get(k) for k in keys) == procs * rounds


def test_a_writer_killed_holding_the_lock_leaves_the_old_record(store: SharedStore) -> None:
    t = _table(store)
    t.put("k", ["old"])
    ready_r, ready_w = os.pipe()

    def hold() -> None:
        def fn(value: Any) -> Any:
            os.write(ready_w, b"x")  # the bucket's lock is held now
            time.sleep(30)
            return ["new"]

        t.update("k", fn)

    pid = _in_child(hold)
    assert os.read(ready_r, 1) == b"x"
    os.kill(pid, signal.SIGKILL)
    assert _wait(pid) == -signal.SIGKILL
    os.close(ready_r)
    os.close(ready_w)
    assert t.update("k", lambda v: [*v, "after"]) == ["old", "after"]  # (not wedged)
    assert store._shm_map.stats()["recovered"] == 1


def test_writers_killed_at_random_leave_whole_records(store: SharedStore) -> None:
    t = _table(store)
    t.put("k", (0, b""))
    for n in range(1, 6):
        def write() -> None:
            for i in range(1, 100_000):
                t.put("k", (i, bytes([i % 256]) * (i % 3000)))

        pid = _in_child(write)
        time.sleep(0.02 * n)
        os.kill(pid, signal.SIGKILL)
        _wait(pid)
        i, data = t.get("k")  # the old or the new one, never a half
        assert data == bytes([i % 256]) * (i % 3000)
        t.put("k", (0, b""))  # (and the table goes on)


def test_freed_blocks_are_reused(store: SharedStore) -> None:
    t = _table(store)
    for i in range(200):
        t.put(f"k{i}", b"x" * 1000)
    stats = store._shm_map.stats()
    for i in range(200):
        t.delete(f"k{i}")
    assert store._shm_map.stats()["in_use"] < stats["in_use"]
    for i in range(200):
        t.put(f"k{i}", b"y" * 1000)
    assert store._shm_map.stats()["top"] == stats["top"]  # nothing new taken from the heap
    t.update("k0", lambda v: v + b"")  # (a new block, then the old one freed)
    top = store._shm_map.stats()["top"]
    for _ in range(50):
        t.update("k0", lambda v: v + b"")  # each rewrite takes the block the last one freed
    assert store._shm_map.stats()["top"] == top


def test_a_full_map_raises_shared_store_full_and_goes_on(tmp_path: Path) -> None:
    store = SharedStore(tmp_path / "small", 2 * MB)
    try:
        t = _table(store)
        with pytest.raises(SharedStoreFull, match="KEMI_SHARED_SIZE_MB"):
            for i in range(10_000):
                t.put(f"k{i}", b"x" * 4000)
        assert 0 < i < 10_000
        with pytest.raises(SharedStoreFull):
            t.put("huge", b"x" * (4 * MB))
        assert t.get(f"k{i}") is None and t.get("k0") == b"x" * 4000
        t.delete("k0")
        t.put("again", b"x" * 4000)  # (the freed block)
        assert t.get("again") == b"x" * 4000
    finally:
        store.remove()
