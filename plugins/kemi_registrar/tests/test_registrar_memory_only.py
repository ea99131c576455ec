"""save()'s memory-only flag (0x01) with usrloc on SQLite, write-through and write-back, as
Kamailio 5.6 keeps the table (run side by side: the same steps on Kamailio when installed).

What Kamailio does, and kemi must: a contact saved memory-only never reaches the table, and
once a flush has passed it (write-back marks it synced without writing it) a normal refresh
does not write it either (its UPDATE finds no row); a memory-only refresh leaves the row as it
was; an unregistration follows its save()'s flag, not the contact's (a memory-only one leaves
the row, which comes back at the next start; a normal one deletes the row of a contact last
refreshed memory-only)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kemi_core.testing import KamailioProcess, KemiProcess, free_port, kamailio_available
from kemi_registrar.testing import RegUA, Reply
from kemi_usrloc.testing import db_init

CFG = """#!KAMAILIO
listen=udp:127.0.0.1:{port}
children=1
{kamailio}loadmodule "db_sqlite.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("usrloc", "db_url", "sqlite:///{db}")
modparam("usrloc", "db_mode", {mode})
modparam("usrloc", "timer_interval", 1)
request_route {{
    if (is_method("REGISTER")) {{
        if ($hdr(X-Mem) == "1") {{ save("location", "1"); }} else {{ save("location"); }}
        exit;
    }}
    lookup("location");
    $var(rc) = $rc;
    append_to_reply("X-RC: $var(rc)\\r\\n");
    sl_send_reply("200", "Lookup");
}}
"""
#: Kamailio's own lines: its module path and a control socket (its readiness check)
KAMAILIO_LINES = ('mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"\n'
                  'loadmodule "ctl.so"\nmodparam("ctl", "binrpc", "unix:{work}/ctl")\n')
MEM = "X-Mem: 1\r\n"


class Server:
    """One kemi or Kamailio on the test's database: started, flushed, stopped."""

    def __init__(self, kind: str, mode: int, work: Path, db: Path) -> None:
        self.kind, self.work, self.port = kind, work, free_port()
        self.ctl = f"unix:{work}/ctl"
        extra = KAMAILIO_LINES.format(work=work) if kind == "kamailio" else ""
        self.cfg = work / "server.cfg"
        # four slashes: an absolute path for Kamailio's db_sqlite too (kemi reads both)
        self.cfg.write_text(CFG.format(port=self.port, kamailio=extra, db=f"/{db}", mode=mode))
        self.proc: Any = None

    def start(self) -> Server:
        self.proc = (KamailioProcess(self.cfg, self.work, self.ctl) if self.kind == "kamailio"
                     else KemiProcess(self.cfg, self.work)).start()
        return self

    def flush(self) -> None:
        """Every change written: kemi's ul.flush; Kamailio's fails in its ctl process (no
        database connection there: "invalid connection parameter"), so two of its 1 s timer
        runs."""
        if self.kind == "kamailio":
            time.sleep(2.5)
        else:
            self.proc.rpc("ul.flush")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None


def _ok(reply: Reply | None) -> Reply:
    assert reply is not None and reply.status == 200, reply
    return reply


def users(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return sorted(u for (u,) in conn.execute("SELECT username FROM location"))


Make = Callable[[str, int], tuple[Server, Path]]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Make]:
    servers: list[Server] = []

    def run(kind: str, mode: int) -> tuple[Server, Path]:
        work = tmp_path / f"{kind}{mode}"
        work.mkdir()
        db = work / "location.db"
        db_init(f"sqlite://{db}")
        servers.append(Server(kind, mode, work, db))
        return servers[-1], db

    yield run
    for s in servers:
        s.stop()


KINDS = ["kemi", pytest.param("kamailio", marks=pytest.mark.skipif(
    not kamailio_available("db_sqlite.so", "usrloc.so", "registrar.so", "ctl.so"),
    reason="Kamailio 5.6 with db_sqlite, usrloc, registrar and ctl is not installed"))]


@pytest.mark.parametrize("mode", [1, 2])
@pytest.mark.parametrize("kind", KINDS)
def test_memory_only_contacts_keep_out_of_the_table(make: Make, kind: str, mode: int) -> None:
    server, db = make(kind, mode)
    server.start()
    with RegUA(server.port) as ua:
        def unregister(user: str, extra: str = "") -> None:
            _ok(ua.register(user, [f"<sip:{user}@127.0.0.1:{ua.port}>;expires=0"], extra))

        _ok(ua.register("alice", extra=MEM))
        for user in ("bob", "carol", "gina"):
            _ok(ua.register(user))
        server.flush()
        assert users(db) == ["bob", "carol", "gina"]  # alice: memory only
        _ok(ua.register("alice"))  # a normal refresh, after a flush passed her
        _ok(ua.register("bob", extra=MEM))
        unregister("carol", MEM)  # gone from memory, her row stays
        _ok(ua.register("gina", extra=MEM))
        server.flush()
        assert users(db) == ["bob", "carol", "gina"]
        assert _ok(ua.request("OPTIONS", "carol")).header("X-RC") == "-1"
        unregister("gina")  # a normal unregistration: her row goes
        server.flush()
        assert users(db) == ["bob", "carol"]
    server.stop()
    server.start()  # what the table holds comes back; alice was never in it
    with RegUA(server.port) as ua:
        found = {u: _ok(ua.request("OPTIONS", u)).header("X-RC")
                 for u in ("alice", "bob", "carol", "gina")}
    assert found == {"alice": "-1", "bob": "1", "carol": "1", "gina": "-1"}
