"""htable and permissions side by side with Kamailio 5.6: one Lua script (data/antiflood_probe.lua)
calls their KEMI functions and pseudo-variables and puts every result in X-Probe; kemi must
answer exactly as Kamailio does (values, types, Kamailio's odd return codes included).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from kemi_auth.testing import DigestUA
from kemi_core.testing import db_init
from kemi_core.testing.kamailio import KAMAILIO_MPATH, KamailioProcess, kamailio_available
from kemi_core.testing.process import KemiProcess, free_port

pytestmark = pytest.mark.skipif(
    not kamailio_available("htable.so", "permissions.so", "db_sqlite.so", "app_lua.so"),
    reason="Kamailio 5.6 with htable, permissions, db_sqlite and app_lua is not installed")

PROBE = Path(__file__).with_name("data") / "antiflood_probe.lua"

CFG = """#!KAMAILIO
listen=udp:127.0.0.1:{port}
children=1
mpath="{mpath}"
loadmodule "db_sqlite.so"
loadmodule "ctl.so"
loadmodule "kex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "htable.so"
loadmodule "permissions.so"
loadmodule "app_lua.so"
modparam("ctl", "binrpc", "{ctl}")
modparam("htable", "htable", "ipban=>size=8;autoexpire=300;")
modparam("htable", "htable", "t2=>size=4;initval=7;")
modparam("htable", "htable", "t3=>size=4;autoexpire=100;updateexpire=0;")
modparam("permissions", "db_url", "sqlite://{db}")
modparam("permissions", "db_mode", 1)
modparam("app_lua", "load", "{probe}")
cfgengine "lua"
"""

ADDRESSES = [
    (1, "127.0.0.9", 32, 0, "t1"), (2, "10.0.0.0", 8, 5060, None), (3, "example.com", 32, 0, "dom"),
    (1, "192.168.1.7", 0, 0, None), (4, "127.0.0.0", 24, 0, "sub4"), (1, "::1", 128, 0, None),
    (6, "2001:db8::", 32, 0, None),
]


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    tmp = tmp_path_factory.mktemp("antiflood")
    db = tmp / "k.db"
    db_init(f"sqlite://{db}", "permissions", "htable")
    with sqlite3.connect(db) as con:
        con.executemany("INSERT INTO address (grp, ip_addr, mask, port, tag) VALUES (?,?,?,?,?)",
                        ADDRESSES)
    procs: list[KamailioProcess | KemiProcess] = []
    found = []
    try:
        for who in ("kamailio", "kemi"):
            port = free_port()
            work = tmp / who
            work.mkdir()
            ctl = f"unix:{work}/{'ctl' if who == 'kamailio' else 'kemi_ctl'}"
            cfg = work / "kamailio.cfg"
            cfg.write_text(CFG.format(port=port, mpath=KAMAILIO_MPATH, ctl=ctl, db=f"/{db}",
                                      probe=PROBE))
            proc = KamailioProcess(cfg, work, ctl) if who == "kamailio" else KemiProcess(cfg, work)
            procs.append(proc.start())
            found.append(port)
        yield found[0], found[1]
    finally:
        for p in procs:
            p.stop()


def probe(port: int, method: str, src: str = "127.0.0.1") -> list[str]:
    with DigestUA(port, src=src) as ua:
        reply = ua.request(method)
    assert reply is not None and reply.status == 200
    return (reply.header("X-Probe") or "").split()


def test_htable_functions_and_variables(ports: tuple[int, int]) -> None:
    kamailio, kemi = ports
    expected = probe(kamailio, "MESSAGE")
    assert len(expected) == 52
    assert probe(kemi, "MESSAGE") == expected


@pytest.mark.parametrize("src", ["127.0.0.9", "127.0.0.77"])
def test_permissions_address_matching(ports: tuple[int, int], src: str) -> None:
    kamailio, kemi = ports
    expected = probe(kamailio, "OPTIONS", src)
    assert len(expected) == 17
    assert probe(kemi, "OPTIONS", src) == expected
