"""Held UDP sends in a real server (one worker: its listen socket reads an event's datagrams
ahead and holds their sends until the last is routed): a reply made before its handler blocks
is on the wire while the handler waits, as Kamailio's is, whether the handler waits in kemi's
database layer (about_to_wait) or in a sleep of the script's own (the flusher thread).

Each test first sends one request whose handler pauses, then a burst while it pauses: the
burst then waits in the socket and is read as one event (several datagrams: sends held)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kemi_core.testing import db_init
from kemi_core.testing.process import KemiProcess
from kemi_core.testing.udp_client import UdpClient, request

pytestmark = pytest.mark.e2e

PYCFG = """#!KAMAILIO
children=1
listen=udp:127.0.0.1:{port}
loadmodule "sl.so"
loadmodule "app_python3.so"
modparam("app_python3", "load", "{script}")
cfgengine "python"
"""

#: answers, then sleeps as long as the request's X-Sleep says (a blocking call of its own)
PYSCRIPT = """
import time
import KSR


class Handler:
    def ksr_request_route(self, msg):
        KSR.sl.send_reply(200, "Fine")
        pause = KSR.hdr.get("X-Sleep")
        if pause:
            time.sleep(float(pause))
        return 1


def mod_init():
    return Handler()
"""


def _burst(ua: UdpClient, port: int, sleeps: list[str], first_sleep: str,
           method: str = "OPTIONS") -> None:
    """One request that pauses the worker, then ``sleeps`` (X-Sleep of each) in one burst."""
    extra = f"X-Sleep: {first_sleep}\r\n" if first_sleep else ""
    ua.send(request(method, f"sip:first@127.0.0.1:{port}", ua.port, extra=extra), port)
    assert ua.recv_final(5) is not None  # its reply is out: the worker now pauses
    for n, pause in enumerate(sleeps):
        extra = f"X-Sleep: {pause}\r\n" if pause else ""
        ua.send(request(method, f"sip:u{n}@127.0.0.1:{port}", ua.port, extra=extra), port)


def _replied_within(ua: UdpClient, count: int, seconds: float) -> int:
    """How many final replies came within ``seconds``."""
    end, got = time.monotonic() + seconds, 0
    while got < count and (left := end - time.monotonic()) > 0:
        if ua.recv_final(left) is None:
            break
        got += 1
    return got


def test_a_reply_is_out_while_its_script_sleeps(start_kemi: Callable[..., KemiProcess],
                                               tmp_path: Path, port: int) -> None:
    script = tmp_path / "held.py"
    script.write_text(PYSCRIPT)
    start_kemi(PYCFG.format(port=port, script=script))
    with UdpClient() as ua:
        # the second of the burst answers, then sleeps 3 s: the first two replies come at
        # once (the flusher sends them); held until the event's end they would take 3 s
        _burst(ua, port, ["", "3", "", ""], first_sleep="0.5")
        assert _replied_within(ua, 2, 1.8) == 2
        assert _replied_within(ua, 2, 5) == 2  # the rest after the sleep


ACCCFG = """#!KAMAILIO
children=1
listen=udp:127.0.0.1:{port}
loadmodule "db_sqlite"
loadmodule "tm"
loadmodule "sl"
loadmodule "pv"
loadmodule "acc"
modparam("db_sqlite", "busy_timeout", {busy_ms})
modparam("acc", "db_flag", 1)
modparam("acc", "db_url", "sqlite:///{db}")
request_route {{
  setflag(1);
  t_newtran();
  t_reply("200", "Fine");
}}
"""


def test_a_reply_is_out_while_its_accounting_waits_for_a_locked_database(
        start_kemi: Callable[..., KemiProcess], tmp_path: Path, port: int) -> None:
    path = tmp_path / "acc.db"
    db_init(f"sqlite:///{path}", "acc")
    start_kemi(ACCCFG.format(port=port, db=path, busy_ms=2000))
    lock = sqlite3.connect(path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # every insert waits busy_timeout, then fails
    try:
        with UdpClient() as ua:
            # each request is answered, then its insert waits 2 s (then fails): the first of
            # the burst is read at 2 s, and its reply goes out before its own insert waits
            # (about_to_wait in the database layer); held for that wait, it would come at 4 s
            started = time.monotonic()
            _burst(ua, port, ["", "", ""], first_sleep="", method="MESSAGE")
            assert _replied_within(ua, 1, 3.2 - (time.monotonic() - started)) == 1
            assert _replied_within(ua, 2, 8) == 2
    finally:
        lock.execute("ROLLBACK")
        lock.close()
