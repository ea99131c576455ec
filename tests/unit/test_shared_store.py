"""The shared store in one process: tables, expiry, atomic updates, sweeping."""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import pytest

from kemi_core.shared import (
    DELETE,
    KEEP,
    UNCHANGED,
    KeyTooLong,
    SharedStore,
    SharedStoreError,
    SharedStoreFull,
)
from kemi_core.shared import table as table_module
from kemi_core.shared.dirs import MARKER, make_private_dir, remove_stale
from kemi_core.testing.wait import wait_until


@pytest.fixture
def store(tmp_path: Path):
    st = SharedStore.create(base=tmp_path)
    yield st
    st.remove()


def test_put_get_delete(store: SharedStore) -> None:
    t = store.table("t")
    assert t.get("a") is None
    assert t.get("a", 7) == 7
    t.put("a", {"x": [1, 2]})
    assert t.get("a") == {"x": [1, 2]}
    assert "a" in t and "b" not in t
    assert t.delete("a") is True
    assert t.delete("a") is False
    assert t.get("a") is None


def test_tables_are_separate_and_listed(store: SharedStore) -> None:
    store.table("one").put("k", 1)
    store.table("two").put("k", 2)
    assert store.table("one").get("k") == 1
    assert store.table("two").get("k") == 2
    assert store.tables() == ["one", "two"]
    assert store.table("one") is store.table("one")


def test_prefix_scan_in_key_order(store: SharedStore) -> None:
    t = store.table("t")
    for key in ("b:2", "a:1", "b:1", "c", "b"):
        t.put(key, key.upper())
    assert t.items("b:") == [("b:1", "B:1"), ("b:2", "B:2")]
    assert t.keys() == ["a:1", "b", "b:1", "b:2", "c"]
    assert t.count("b") == 3
    assert t.items("zz") == []


def test_update_is_read_modify_write(store: SharedStore) -> None:
    t = store.table("t")
    assert t.update("l", lambda v: v + [1], default=[]) == [1]
    assert t.update("l", lambda v: v + [2], default=[]) == [1, 2]
    assert t.update("l", lambda v: DELETE) is None
    assert "l" not in t
    assert t.incr("n") == 1
    assert t.incr("n", 5) == 6
    assert t.incr("n", -6) == 0


def test_update_may_leave_the_entry_as_it_is(store: SharedStore) -> None:
    t = store.table("t")
    t.put("k", [1], ttl=60)
    stamp = t.expires_at("k")
    assert t.update("k", lambda v: UNCHANGED, ttl=None) == [1]
    assert t.get("k") == [1] and t.expires_at("k") == stamp
    assert t.update("absent", lambda v: UNCHANGED, default="d") == "d"
    assert "absent" not in t


def test_update_error_changes_nothing(store: SharedStore) -> None:
    t = store.table("t")
    t.put("k", 1)

    def boom(v: int) -> int:
        raise ValueError("no")

    with pytest.raises(ValueError):
        t.update("k", boom)
    assert t.get("k") == 1
    t.put("k", 2)  # the writer lock was released
    assert t.get("k") == 2


def test_expiry_reads_as_absent_before_any_sweep(store: SharedStore) -> None:
    t = store.table("t")
    t.put("short", "x", ttl=0.05)
    t.put("long", "y", ttl=60)
    t.put("never", "z")
    assert t.get("short") == "x"
    assert t.expires_at("long") == pytest.approx(time.time() + 60, abs=2)
    assert t.expires_at("never") is None
    deadline = time.monotonic() + 5
    while t.get("short") is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert t.get("short") is None
    assert t.keys() == ["long", "never"]
    assert len(t) == 3  # still stored until swept


def test_sweep_removes_expired_and_calls_back(store: SharedStore) -> None:
    t = store.table("t")
    seen: list[tuple[str, object]] = []
    store.on_expire("t", lambda k, v: seen.append((k, v)))
    now = time.time()
    t.put("a", 1, ttl=10)
    t.put("b", 2, ttl=20)
    t.put("c", 3)
    assert store.sweep(now + 5) == 0
    assert store.sweep(now + 15) == 1
    assert seen == [("a", 1)]
    assert len(t) == 2
    assert store.sweep(now + 1000) == 1
    assert seen == [("a", 1), ("b", 2)]
    assert t.keys() == ["c"]


def test_rewrite_moves_the_expiry(store: SharedStore) -> None:
    t = store.table("t")
    now = time.time()
    t.put("k", 1, ttl=10)
    t.put("k", 2, ttl=100)  # the old index entry must not expire the new value
    assert store.sweep(now + 50) == 0
    assert t.get("k") == 2
    t.put("k", 3)  # no expiry at all now
    assert store.sweep(now + 1000) == 0
    assert t.get("k") == 3


def test_incr_keeps_or_sets_ttl(store: SharedStore) -> None:
    t = store.table("t")
    t.incr("c", ttl=30)
    first = t.expires_at("c")
    assert first is not None
    t.incr("c")  # KEEP
    assert t.expires_at("c") == first
    t.incr("c", ttl=None)
    assert t.expires_at("c") is None
    assert t.get("c") == 3
    t.update("c", lambda v: v, ttl=KEEP)
    assert t.expires_at("c") is None


def test_add_only_when_absent(store: SharedStore) -> None:
    t = store.table("nonces")
    assert t.add("n1", "first", ttl=30) is True
    assert t.add("n1", "second", ttl=30) is False
    assert t.get("n1") == "first"
    t.put("old", 1, ttl=0.01)
    wait_until(lambda: t.get("old") is None, 5, "'old' to expire")
    assert t.add("old", 2) is True
    assert t.get("old") == 2


def test_pop_and_clear(store: SharedStore) -> None:
    t = store.table("t")
    t.put("a", 1, ttl=50)
    t.put("b", 2)
    assert t.pop("a") == 1
    assert t.pop("a", "gone") == "gone"
    t.put("c", 3, ttl=50)
    t.clear()
    assert t.keys() == [] and len(t) == 0
    assert store.sweep(time.time() + 100) == 0


def test_transaction_is_atomic_over_tables(store: SharedStore) -> None:
    a, b = store.table("a"), store.table("b")
    with store.transaction() as tx:
        tx.put(a, "k", 1)
        tx.put(b, "k", 2, ttl=30)
        assert tx.get(a, "k") == 1
    assert a.get("k") == 1 and b.get("k") == 2
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.put(a, "k", 10)
        tx.delete(b, "k")
        raise RuntimeError("abort")
    assert a.get("k") == 1 and b.get("k") == 2


def test_nested_write_is_refused_not_deadlocked(store: SharedStore) -> None:
    t = store.table("t")
    with pytest.raises(SharedStoreError):
        t.update("k", lambda v: t.put("other", 1))
    t.put("k", 1)
    assert t.get("k") == 1


def test_bad_keys_and_names(store: SharedStore) -> None:
    t = store.table("t")
    with pytest.raises(KeyTooLong):
        t.put("x" * 401, 1)
    with pytest.raises(KeyTooLong):
        t.get("")
    for name in ("", "a\0b", "x" * 65, "__expiry__"):
        with pytest.raises(ValueError):
            store.table(name)
    t.put("ü" * 200, 1)  # 400 bytes
    assert t.get("ü" * 200) == 1


def test_full_store_is_a_clear_error(tmp_path: Path) -> None:
    st = SharedStore.create(base=tmp_path, map_size=1 << 20)
    try:
        t = st.table("t")
        with pytest.raises(SharedStoreFull):
            for i in range(10_000):
                t.put(f"k{i}", "v" * 1000)
        t.delete("k0")  # still usable
    finally:
        st.remove()


def test_closed_store_refuses(tmp_path: Path) -> None:
    st = SharedStore.create(base=tmp_path)
    st.table("t").put("k", 1)
    st.remove()
    assert not st.path.exists()
    with pytest.raises(SharedStoreError):
        st.table("t").get("k")


def test_stale_directories_of_dead_servers_are_removed(tmp_path: Path) -> None:
    mine = make_private_dir(tmp_path)
    dead = tmp_path / "kemi-shared-999999999-abc"  # no such pid
    dead.mkdir()
    (dead / MARKER).write_text("999999999\n")
    unmarked = tmp_path / "kemi-shared-999999998-abc"
    unmarked.mkdir()
    assert remove_stale(tmp_path) == 1
    assert mine.exists() and not dead.exists() and unmarked.exists()


def test_stats(store: SharedStore) -> None:
    store.table("t").put("a", 1)
    stats = store.stats()
    assert stats["tables"] == {"t": 1}
    assert stats["used_bytes"] > 0


def test_table_limit_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEMI_SHARED_TABLES", "16")
    st = SharedStore.create(base=tmp_path)
    try:
        assert st.max_tables == 16
        # the expiry index is one of the 16 LMDB databases
        for i in range(15):
            st.table(f"t{i}").put("k", i)
        with pytest.raises(SharedStoreError, match="KEMI_SHARED_TABLES"):
            st.table("one-too-many")
        assert st.table("t3").get("k") == 3  # the others still work
    finally:
        st.remove()


def test_kept_values_follow_writes_made_elsewhere(store: SharedStore) -> None:
    """keep_decoded() hands out the remembered value only while the entry holds the very
    bytes it was remembered with: a write by another process (here: straight into LMDB) is
    read as written."""
    from kemi_core.shared import codec

    t = store.table("records")
    t.keep_decoded()
    t.update("alice", lambda old: [("c1", 1)])
    assert t.get("alice") == [("c1", 1)]
    assert t.update("alice", lambda old: old + [("c2", 2)]) == [("c1", 1), ("c2", 2)]
    store.write(lambda txn: txn.put(b"alice", codec.encode_never([("other", 9)]), db=t._db))
    assert t.get("alice") == [("other", 9)]
    seen = []
    t.update("alice", lambda old: seen.append(old) or UNCHANGED)
    assert seen == [[("other", 9)]]
    t.update("alice", lambda old: DELETE)
    assert t.get("alice") is None
    t.put("alice", [("put", 3)])  # put() bypasses the memory: still read right
    assert t.update("alice", lambda old: old) == [("put", 3)]


def test_keep_updates_of_entries_without_expiry(store: SharedStore) -> None:
    """update() with KEEP of an entry that never expires (usrloc's records) writes none; one
    that has an expiry keeps it; removing either leaves no expiry behind."""
    t = store.table("records")
    t.keep_decoded()
    assert t.update("a", lambda v: UNCHANGED, default=[]) == []
    assert "a" not in t
    assert t.update("a", lambda v: [1]) == [1]
    assert t.update("a", lambda v: v + [2]) == [1, 2]
    assert t.get("a") == [1, 2] and t.expires_at("a") is None
    assert t.update("a", lambda v: v, ttl=60) == [1, 2]
    stamp = t.expires_at("a")
    assert stamp is not None
    assert t.update("a", lambda v: v + [3]) == [1, 2, 3]
    assert t.expires_at("a") == stamp and t.get("a") == [1, 2, 3]
    assert t.update("a", lambda v: DELETE) is None
    assert "a" not in t and t.update("a", lambda v: DELETE) is None
    t.update("b", lambda v: ["b"])
    assert t.update("b", lambda v: DELETE) is None and "b" not in t
    assert store.sweep(time.time() + 120) == 0  # (no expiry entry was left for "a")


def _fails(value: object, arg: object) -> tuple[object, object]:
    raise RuntimeError("no")


@pytest.fixture(params=["compiled", "python"])
def never_form(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """update_never's change of an entry without expiry: _fast's shared_never_update, or the
    Python form it replaces."""
    if request.param == "python":
        monkeypatch.setattr(table_module, "_NEVER_CONSTS", None)
    elif table_module._NEVER_CONSTS is None:
        pytest.skip("kemi_core.sip._fast is not built")
    return str(request.param)


def test_update_never_is_update_in_one_step(store: SharedStore, never_form: str) -> None:
    """update_never(key, fn, arg): fn(current or None, arg) -> (new, result), as update()."""
    seen: list[object] = []

    def fn(value: object, arg: object) -> tuple[object, object]:
        seen.append((value, arg))
        return arg, "r"

    for remembered in (False, True):
        t = store.table(f"t{remembered}")
        if remembered:
            t.keep_decoded()
        seen.clear()
        assert t.update_never("k", fn, [1]) == "r"  # absent: None
        assert t.get("k") == [1] and t.expires_at("k") is None
        assert t.update_never("k", fn, [2]) == "r"
        assert seen == [(None, [1]), ([1], [2])] and t.get("k") == [2]
        assert t.update_never("k", lambda v, a: (UNCHANGED, v), None) == [2]
        assert t.get("k") == [2]
        assert t.update_never("k", lambda v, a: (DELETE, a), 5) == 5
        assert t.get("k") is None and "k" not in t
        assert t.update_never("k", lambda v, a: (DELETE, v), 0) is None  # absent, stays so
        t.update_never("k", fn, [5])
        with pytest.raises(RuntimeError):  # fn failing, or its value not pickled: no change
            t.update_never("k", _fails, 0)
        with pytest.raises((pickle.PicklingError, AttributeError)):
            t.update_never("k", lambda v, a: (lambda: 0, None), 0)
        assert t.get("k") == [5] and t.update_never("k", lambda v, a: (UNCHANGED, v), 0) == [5]
        if remembered:  # the value written is the one remembered with its bytes
            kept = [5, 6]
            t.update_never("k", lambda v, a: (a, None), kept)
            assert t.update_never("k", lambda v, a: (UNCHANGED, v), 0) is kept
        t.put("e", [3], ttl=60)  # an entry with an expiry keeps it
        stamp = t.expires_at("e")
        assert t.update_never("e", lambda v, a: ([*v, a], len(v)), 4) == 1
        assert t.get("e") == [3, 4] and t.expires_at("e") == stamp
        with pytest.raises(RuntimeError):
            t.update_never("e", _fails, 0)
        assert t.get("e") == [3, 4]
        with pytest.raises(KeyTooLong):
            t.update_never("x" * 401, fn, 1)
        with pytest.raises(KeyTooLong):
            t.update_never("", fn, 1)
    t = store.table("t")  # the store is free for the next write after each of them
    t.update_never("z", lambda v, a: (a, None), 1)
    assert t.get("z") == 1


def test_shared_never_update_table_by_keyword_or_by_default(store: SharedStore) -> None:
    """_fast's shared_never_update reads and writes the table it is given (db=) or, given None,
    the transaction's default one (what update_never begins its transaction with): the same
    entries either way, and another table of the transaction untouched."""
    consts = table_module._NEVER_CONSTS
    if consts is None:
        pytest.skip("kemi_core.sip._fast is not built")
    from kemi_core.sip.binding_fast import shared_never_update

    t, other = store.table("t"), store.table("other")
    other.update_never("k", lambda v, a: (a, None), "other's")
    db, other_db = t._handle(), other._handle()
    results = []
    for table_arg, begun_on in ((db, None), (db, other_db), (None, db)):
        txn = store._begin_write(begun_on)
        try:
            results.append(shared_never_update(consts, txn, table_arg, b"k",
                                               lambda v, a: ([*(v or []), a], v), 1, None))
            txn.commit()
        finally:
            store._writing = False
    assert results == [None, [1], [1, 1]]
    assert t.get("k") == [1, 1, 1] and other.get("k") == "other's"
