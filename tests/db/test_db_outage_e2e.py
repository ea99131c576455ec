"""PostgreSQL goes away under SIP load and comes back, with kemi's workers calling it for each
request: every request is still answered (500 while the database is down, never a lost reply),
no worker dies, each worker logs the outage once, and answers turn to 200 again after it."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kemi_core.db import open_standalone, tables
from kemi_core.db.provision import create_tables
from kemi_core.testing.postgres import PostgresServer, unavailable_reason
from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.udp_client import UdpClient, request

pytestmark = pytest.mark.skipif(unavailable_reason() is not None,
                                reason=unavailable_reason() or "")

CFG = """#!KAMAILIO
debug=2
children=2
listen=udp:127.0.0.1:{port}
loadmodule "sl.so"
loadmodule "app_python3.so"
modparam("app_python3", "load", "{script}")
cfgengine "python"
"""

# A routing script that reads the location table for each request, as usrloc db_mode 3 would.
SCRIPT = """
import os

import KSR
from kemi_core.db import DbError, open_standalone

URL = "{url}"
_db = []


def _database():
    if not _db:  # opened in the worker, at its first request
        _db.append(open_standalone(URL, {{"retry_interval": 100, "retry_max_interval": 400}}))
    return _db[0]


class Handler:
    def ksr_request_route(self, msg):
        try:
            rows = _database().query("location", {{"username": KSR.pv.get("$rU")}}, ("contact",))
        except DbError:
            KSR.sl.send_reply(500, "DB down pid %d" % os.getpid())
            return 1
        KSR.sl.send_reply(200 if rows else 404, "pid %d" % os.getpid())
        return 1


def mod_init():
    return Handler()
"""


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    with PostgresServer() as pg:
        yield pg


def _round(clients: list[UdpClient], port: int) -> list[str]:
    """One OPTIONS from each client (different source ports reach different workers)."""
    for ua in clients:
        ua.send(request("OPTIONS", f"sip:alice@127.0.0.1:{port}", ua.port), port)
    lines = []
    for ua in clients:
        reply = ua.recv_final(5)
        lines.append(reply.split(b"\r\n", 1)[0].decode() if reply else "no reply")
    return lines


def _pids(lines: list[str]) -> set[str]:
    return {m.group(1) for line in lines if (m := re.search(r"pid (\d+)", line))}


def test_workers_survive_a_postgres_outage_under_load(server: PostgresServer, tmp_path: Path) -> None:
    url = server.new_database()
    db = open_standalone(url)
    create_tables(db, tables.tables_for(["usrloc"]))
    db.insert(tables.LOCATION, {"ruid": "a1", "username": "alice", "contact": "sip:alice@h"})
    db.close()
    port = free_port()
    script = tmp_path / "route.py"
    script.write_text(SCRIPT.format(url=url))
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CFG.format(port=port, script=script))
    clients = [UdpClient() for _ in range(8)]
    try:
        with KemiProcess(cfg, tmp_path) as kemi:
            before = [line for _ in range(3) for line in _round(clients, port)]
            assert {line.split(" pid")[0] for line in before} == {"SIP/2.0 200"}
            workers = _pids(before)

            server.stop()
            during: list[str] = []
            end = time.monotonic() + 2.0
            while time.monotonic() < end:
                during += _round(clients, port)
            assert "no reply" not in during  # a worker never hangs on the database
            assert {line.split(" pid")[0] for line in during} == {"SIP/2.0 500 DB down"}

            server.start()
            deadline = time.monotonic() + 15
            while True:
                after = _round(clients, port)
                if {line.split(" pid")[0] for line in after} == {"SIP/2.0 200"}:
                    break
                assert time.monotonic() < deadline, f"not recovered: {after}"
            after += [line for _ in range(3) for line in _round(clients, port)]
            # the same workers throughout: none died or was replaced
            assert _pids(during) <= workers and _pids(after) <= workers
            assert kemi.proc is not None and kemi.proc.poll() is None
            log = kemi.log()
        outages = log.count("calls fail until it is back")
        assert 1 <= outages <= len(workers), log[-3000:]  # once per worker, not per call
        assert log.count("connected again") == outages
        assert len(during) > 100, len(during)
    finally:
        for ua in clients:
            ua.close()
