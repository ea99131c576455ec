"""acc's ``db_insert_mode`` 2 on kemi: rows are written by the worker's database thread, so a
database that makes writers wait (another connection holds SQLite's write lock) does not hold
up SIP traffic, and rows still queued when the server is told to stop are written before the
worker exits. Mode 0 is the contrast: the worker waits for the lock before it answers.

(Kamailio 5.6's db_sqlite has no asynchronous insert, so Kamailio falls back to a plain insert
there; this is kemi's own, as documented for the module.)
"""

from __future__ import annotations

import signal
import socket
import sqlite3
from pathlib import Path

import pytest

from kemi_core.testing import KemiProcess, db_init, free_port, request_text, wait_until

pytestmark = pytest.mark.e2e

CFG = """#!KAMAILIO
children=1
listen=udp:127.0.0.1:{port}
loadmodule "db_sqlite"
loadmodule "tm"
loadmodule "sl"
loadmodule "pv"
loadmodule "acc"
modparam("db_sqlite", "busy_timeout", 20000)
modparam("acc", "db_flag", 1)
modparam("acc", "db_url", "sqlite:///{db}")
modparam("acc", "db_insert_mode", {mode})
request_route {{
  setflag(1);
  t_newtran();
  t_reply("200", "Fine");
}}
"""


def _db(tmp_path: Path) -> Path:
    path = tmp_path / "acc.db"
    db_init(f"sqlite:///{path}", "acc")
    return path


def _count(path: Path) -> int:
    with sqlite3.connect(path, timeout=30) as conn:
        return int(conn.execute("SELECT count(*) FROM acc").fetchone()[0])


def _send(sock: socket.socket, port: int, n: int) -> None:
    me = sock.getsockname()[1]
    text = request_text("MESSAGE", call_id=f"im-{n}", to="<sip:u@127.0.0.1>;tag=t")
    sock.sendto(text.replace("PORT", str(me)).encode(), ("127.0.0.1", port))


def _reply(sock: socket.socket, timeout: float) -> bytes | None:
    sock.settimeout(timeout)
    try:
        return sock.recv(65535)
    except TimeoutError:
        return None


@pytest.mark.parametrize("mode", [0, 2])
def test_locked_database_holds_up_only_mode_0(tmp_path: Path, mode: int) -> None:
    path, port = _db(tmp_path), free_port()
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CFG.format(port=port, db=path, mode=mode))
    lock = sqlite3.connect(path, isolation_level=None)
    with KemiProcess(cfg, tmp_path) as kemi, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        lock.execute("BEGIN EXCLUSIVE")  # every writer now waits (busy_timeout)
        try:
            # tm answers, then accounts: the first reply comes either way; in mode 0 the
            # worker then waits in the insert and the second request is not answered
            _send(sock, port, 1)
            assert _reply(sock, 5) is not None
            _send(sock, port, 2)
            answered_while_locked = _reply(sock, 1.5) is not None
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert answered_while_locked == (mode == 2), kemi.log()[-2000:]
        if mode == 0:  # the lock is gone: the worker writes, then answers
            assert _reply(sock, 10) is not None
        wait_until(lambda: _count(path) == 2, 10, lambda: f"2 rows, got {_count(path)}")


def test_queued_rows_land_when_the_server_stops(tmp_path: Path) -> None:
    path, port = _db(tmp_path), free_port()
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CFG.format(port=port, db=path, mode=2))
    kemi = KemiProcess(cfg, tmp_path).start()
    lock = sqlite3.connect(path, isolation_level=None)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            lock.execute("BEGIN EXCLUSIVE")
            for n in range(5):
                _send(sock, port, n)
                assert _reply(sock, 5) is not None  # answered: the rows wait in the queue
        assert kemi.proc is not None
        kemi.proc.send_signal(signal.SIGTERM)
        # the worker waits for its queued rows (work in progress) instead of leaving
        kemi.wait_log("waiting for 5 transactions in progress")
        lock.execute("ROLLBACK")
        assert kemi.proc.wait(timeout=20) == 0
    finally:
        lock.close()
        kemi.stop()
    assert _count(path) == 5
