"""usrloc's db_mode 1, 2 and 3 on SQLite, in real kemi servers (two workers each)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kemi_core.testing import KemiProcess, free_port, wait_until
from kemi_registrar.testing import RegUA, Reply
from kemi_usrloc.testing import db_init, lookup_cfg


def rows(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute("SELECT username, contact FROM location").fetchall())


Start = Callable[..., tuple[KemiProcess, int]]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    db = tmp_path / "kamailio.db"
    db_init(f"sqlite://{db}")
    procs: list[KemiProcess] = []

    def run(mode: int, interval: int = 60, name: str = "a") -> tuple[KemiProcess, int]:
        port = free_port()
        work = tmp_path / name
        work.mkdir(exist_ok=True)
        cfg = work / "kamailio.cfg"
        cfg.write_text(lookup_cfg(port, f"sqlite://{db}", mode, interval))
        proc = KemiProcess(cfg, work).start()
        procs.append(proc)
        return proc, port

    run.db = db  # type: ignore[attr-defined]
    yield run
    for p in procs:
        p.stop()


def _ok(reply: Reply | None) -> Reply:
    assert reply is not None, "no reply"
    return reply


def test_write_through_rows_follow_each_save(start: Start) -> None:
    db = start.db  # type: ignore[attr-defined]
    _, port = start(1)
    with RegUA(port) as ua:
        contact = f"sip:alice@127.0.0.1:{ua.port}"
        assert _ok(ua.register("alice")).status == 200
        assert rows(db) == [("alice", contact)]  # written before the 200
        _ok(ua.register("alice", [f"<{contact}>;expires=0"]))
        assert rows(db) == []


def test_write_back_survives_a_restart(start: Start) -> None:
    db = start.db  # type: ignore[attr-defined]
    proc, port = start(2)
    with RegUA(port) as ua:
        contact = f"sip:bob@127.0.0.1:{ua.port}"
        assert _ok(ua.register("bob")).status == 200
        assert rows(db) == []  # write-back: not yet
    assert proc.stop() == 0  # the final flush at shutdown
    assert rows(db) == [("bob", contact)]
    proc2, port2 = start(2, name="b")
    with RegUA(port2) as ua:
        found = _ok(ua.request("OPTIONS", "bob"))
        assert (found.header("X-RC"), found.header("X-RU")) == ("1", contact)
        assert proc2.rpc("ul.lookup", "location", "bob")["Contacts"][0]["Contact"]["State"] \
            == "CS_SYNC"
        _ok(ua.register("bob", [f"<{contact}>;expires=0"]))
        assert rows(db) == [("bob", contact)]
        proc2.rpc("ul.flush")
        assert rows(db) == []


def test_write_back_flushes_on_the_timer(start: Start) -> None:
    db = start.db  # type: ignore[attr-defined]
    proc, port = start(2, interval=1)
    with RegUA(port) as ua:
        contact = f"sip:carol@127.0.0.1:{ua.port}"
        # expires=3: a binding ends at the whole second (Kamailio's time_t arithmetic), so it
        # lives 2-3 s, and the 1 s timer (its runs on the main process's 1 s grid, the first
        # 0.5-1.5 s after the start) always sees it alive once. With expires=2 it could live
        # 1.0 s and end between two runs, never written (a write-back never writes a binding
        # that expired unwritten).
        _ok(ua.register("carol", [f"<{contact}>;expires=3"]))
        wait_until(lambda: rows(db) == [("carol", contact)], 10, "the timer to write carol")
        wait_until(lambda: rows(db) == [], 15, "carol's row to go when she expires")
        assert _ok(ua.request("OPTIONS", "carol")).header("X-RC") == "-1"


def test_db_only_is_shared_by_two_servers(start: Start) -> None:
    db = start.db  # type: ignore[attr-defined]
    _, port_a = start(3, interval=1, name="a")
    _, port_b = start(3, interval=1, name="b")
    with RegUA(port_a) as ua:
        contact = f"sip:dave@127.0.0.1:{ua.port}"
        _ok(ua.register("dave", [f"<{contact}>;expires=3"]))
        assert rows(db) == [("dave", contact)]
    with RegUA(port_b) as ub:
        found = _ok(ub.request("OPTIONS", "dave"))
        assert (found.header("X-RC"), found.header("X-RU")) == ("1", contact)
        refresh = _ok(ub.register("dave", [f"<{contact}>;expires=3"]))
        assert refresh.header("Contact") == f"<{contact}>;expires=3"
        wait_until(lambda: rows(db) == [], 15, "the expired row to be deleted")
        assert _ok(ub.request("OPTIONS", "dave")).header("X-RC") == "-1"
