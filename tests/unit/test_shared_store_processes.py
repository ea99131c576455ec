"""The shared store across real forked processes, as the server's workers use it."""

from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kemi_core.config.model import CoreConfig
from kemi_core.errors import ModuleError
from kemi_core.runtime.core import Core
from kemi_core.shared import SharedStore, shared_store
from kemi_core.shared.server import Sweeper


def run_in_child(fn: Callable[[], Any]) -> tuple[int, int]:
    """Fork; the child runs ``fn`` and sends its pickled result (or error) on a pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            out: Any = ("ok", fn())
        except BaseException as exc:  # reported to the parent
            out = ("error", repr(exc))
        os.write(w, pickle.dumps(out))
        os._exit(0)
    os.close(w)
    return pid, r


def result_of(child: tuple[int, int], timeout: float = 30) -> Any:
    pid, r = child
    data = b""
    deadline = time.monotonic() + timeout
    os.set_blocking(r, False)
    while time.monotonic() < deadline:
        try:
            chunk = os.read(r, 65536)
        except BlockingIOError:
            time.sleep(0.005)
            continue
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    status, value = pickle.loads(data)
    assert status == "ok", value
    return value


def wait_for(cond: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.001)
    return False


async def _until(cond: Callable[[], bool], timeout: float = 10) -> None:
    """Let the loop run until ``cond`` holds (at most ``timeout`` seconds)."""
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


@pytest.fixture
def store(tmp_path: Path):
    st = SharedStore.create(base=tmp_path)
    yield st
    st.remove()


def test_a_write_in_one_worker_is_read_by_another(store: SharedStore) -> None:
    table = store.table("location")
    table.put("before-fork", "main")

    def writer() -> str:
        table.put("alice", {"contact": "sip:alice@127.0.0.1:5070"})
        return str(table.get("before-fork"))

    def reader() -> Any:
        ok = wait_for(lambda: table.get("alice") is not None)
        return ok, table.get("alice")

    second = run_in_child(reader)
    first = run_in_child(writer)
    assert result_of(first) == "main"
    assert result_of(second) == (True, {"contact": "sip:alice@127.0.0.1:5070"})
    assert table.get("alice") == {"contact": "sip:alice@127.0.0.1:5070"}  # the parent too


def test_increments_from_several_processes_are_not_lost(store: SharedStore) -> None:
    counter = store.table("pike")
    n = 1500

    def hammer() -> int:
        for _ in range(n):
            counter.incr("10.0.0.1")
        return n

    children = [run_in_child(hammer) for _ in range(2)]
    for _ in range(n):
        counter.incr("10.0.0.1")
    assert sum(result_of(c) for c in children) == 2 * n
    assert counter.get("10.0.0.1") == 3 * n


def test_tables_made_after_the_fork_are_shared(store: SharedStore) -> None:
    def make() -> bool:
        store.table("late").put("k", "from child", ttl=60)
        return True

    assert result_of(run_in_child(make))
    assert store.table("late").get("k") == "from child"
    assert "late" in store.tables()


def test_expiry_is_swept_once_by_the_main_process(store: SharedStore) -> None:
    table = store.table("nonces")
    seen: list[str] = []
    store.on_expire("nonces", lambda k, v: seen.append(k))

    def put() -> bool:
        table.put("n1", 1, ttl=0.05)
        table.put("n2", 2, ttl=600)
        return True

    assert result_of(run_in_child(put))
    assert wait_for(lambda: table.get("n1") is None)
    loop = asyncio.new_event_loop()
    try:
        sweeper = Sweeper(store, loop, interval=0.01)
        sweeper.start()
        loop.run_until_complete(_until(lambda: sweeper.runs >= 5))  # several sweeps, one call
    finally:
        loop.close()
    assert seen == ["n1"]
    assert len(table) == 1 and table.get("n2") == 2


def test_the_owner_removes_the_directory_at_exit(tmp_path: Path) -> None:
    code = ("import os, sys; from kemi_core.shared import SharedStore\n"
            "s = SharedStore.create(); s.table('t').put('k', 1); print(s.path)\n"
            "pid = os.fork()\n"
            "if pid == 0: sys.exit(0)\n"  # a child's normal exit must not remove it
            "os.waitpid(pid, 0); print(os.path.isdir(s.path))\n")
    env = dict(os.environ, KEMI_SHARED_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    path, alive_after_child = out.stdout.split()
    assert alive_after_child == "True"
    assert not Path(path).exists()


def test_shared_store_is_made_in_main_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KEMI_SHARED_DIR", str(tmp_path))
    core = Core(CoreConfig())
    made = shared_store(core)
    try:
        assert shared_store(core) is made
        assert len(core.main_loop_hooks) == 1

        def in_worker() -> tuple[bool, str]:
            same = shared_store(core) is made
            try:
                shared_store(Core(CoreConfig()))
            except ModuleError as exc:
                return same, str(exc)
            return same, "made"

        same, err = result_of(run_in_child(in_worker))
        assert same and "main process" in err
    finally:
        made.remove()
