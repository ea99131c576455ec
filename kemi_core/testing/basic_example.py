"""Kamailio's official KEMI example (Debian's copy under /usr/share/doc) on kemi and on Kamailio
5.6 side by side, with a chosen engine and the example's features chosen from outside.

kemi runs the example files in place: the ``kamailio-local.cfg`` the example imports from the
working directory ``#!undef``s the features left off. Kamailio 5.6 has no working ``#!undef``,
so it runs a copy of kamailio-basic-kemi.cfg with those ``#!define`` lines commented out. A
wrapper config (``WRAPPER``) sets what the example leaves to its installer: ``listen``, the
control sockets, the example's /usr/local/etc/kamailio paths, and, with a database feature, an
SQLite ``DBURL`` (db_mysql.so replaced by db_sqlite.so) and, with WITH_NAT, the media relay's
socket.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kemi_core.testing.database import db_init
from kemi_core.testing.kamailio import KamailioProcess
from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.sidebyside import Pair

EXAMPLES = Path("/usr/share/doc/kamailio/examples/kemi")
BASIC = EXAMPLES / "kamailio-basic-kemi.cfg"
#: What the example switches on by itself (``#!define`` lines of kamailio-basic-kemi.cfg).
FEATURES = ("WITH_MYSQL", "WITH_AUTH", "WITH_IPAUTH", "WITH_USRLOCDB", "WITH_NAT",
            "WITH_ANTIFLOOD", "WITH_ACCDB")
#: Features that need the database (WITH_MYSQL comes with them, on SQLite).
DB_FEATURES = ("WITH_AUTH", "WITH_USRLOCDB", "WITH_ACCDB")
#: The ``#!define`` that selects each engine's script (native routes: none).
ENGINE_DEFINE = {"lua": "WITH_CFGLUA", "python": "WITH_CFGPYTHON3", "jsdt": "WITH_CFGJSDT",
                 "native": ""}
#: The address the example's address table trusts (group 1) in ``make_db``.
TRUSTED = "127.0.0.5"
#: The acc columns the ACCDB_COMMENT of the example (and of Debian's kamailio.cfg) asks a
#: WITH_ACCDB user to add.
ACC_EXTRA = ("src_user", "src_domain", "src_ip", "dst_ouser", "dst_user", "dst_domain")

WRAPPER = """#!KAMAILIO
{defines}#!subst "!/usr/local/etc/kamailio/!{examples}/!"
#!subst "/db_mysql.so/db_sqlite.so/"
#!subst "!udp:127.0.0.1:7722!{rtpsock}!"
include_file "{basic}"
listen=udp:127.0.0.1:{port}
{listens}modparam("ctl", "binrpc", "unix:{ctl}")
modparam("jsonrpcs", "fifo_name", "{dir}/kamailio_rpc.fifo")
modparam("jsonrpcs", "dgram_socket", "{dir}/kamailio_rpc.sock")
"""


def make_db(path: Path, users: dict[str, str]) -> Path:
    """An SQLite database with the example's tables, a subscriber per ``users`` (name: password,
    domain 127.0.0.1), ``TRUSTED`` in the address table and the acc tables' extra columns."""
    db_init(f"sqlite://{path}", "usrloc", "auth_db", "permissions", "acc")
    with sqlite3.connect(path) as con:
        con.executemany("INSERT INTO subscriber (username, domain, password) VALUES (?,?,?)",
                        [(u, "127.0.0.1", p) for u, p in users.items()])
        con.execute("INSERT INTO address (grp, ip_addr, mask, port) VALUES (1, ?, 32, 0)",
                    (TRUSTED,))
        for table in ("acc", "missed_calls"):
            for column in ACC_EXTRA:
                con.execute(f"ALTER TABLE {table} ADD COLUMN {column} VARCHAR(128) "
                            "NOT NULL DEFAULT ''")
    return path


def kamailio_copy(workdir: Path, off: list[str]) -> Path:
    """The example with the ``off`` features' defines commented out (for Kamailio)."""
    text = BASIC.read_text()
    for name in off:
        text = re.sub(rf"^#!define {name}$", f"##!define {name}", text, flags=re.M)
    copy = workdir / "kamailio-basic-kemi.cfg"
    copy.write_text(text)
    return copy


def start_example(who: str, workdir: Path, engine: str, features: list[str],
                  users: dict[str, str] | None = None, rtpsock: str = "udp:127.0.0.1:7722",
                  extra: str = "", tcp: bool = False) -> tuple[KemiProcess | KamailioProcess, int]:
    """The example on ``who`` ("kemi" or "kamailio") with ``features`` on (WITH_MYSQL added
    when one needs the database, made in ``workdir``); ``extra``: config lines after the
    example's (a later modparam overrides the example's); ``tcp``: a TCP listen on the same
    port too. Returns the started server and its SIP port."""
    workdir.mkdir(parents=True, exist_ok=True)
    on = set(features)
    defines = ""
    if on & set(DB_FEATURES):
        on.add("WITH_MYSQL")
        db = make_db(workdir / "kamailio.db", users or {})
        # Kamailio reads sqlite:///x relative to its working directory: four slashes
        defines += f'#!define DBURL "sqlite:///{db}"\n'
    off = [f for f in FEATURES if f not in on]
    defines += "".join(f"#!define {f}\n" for f in sorted(on - set(FEATURES)))  # WITH_DEBUG ...
    if engine_define := ENGINE_DEFINE[engine]:
        defines += f"#!define {engine_define}\n"
    port = free_port()
    ctl = workdir / ("kemi_ctl" if who == "kemi" else "ctl")
    if who == "kemi":
        (workdir / "kamailio-local.cfg").write_text("".join(f"#!undef {n}\n" for n in off))
        basic = BASIC
    else:
        (workdir / "kamailio-local.cfg").write_text("")
        basic = kamailio_copy(workdir, off)
    cfg = workdir / "wrapper.cfg"
    listens = f"listen=tcp:127.0.0.1:{port}\n" if tcp else ""
    cfg.write_text(WRAPPER.format(defines=defines, examples=EXAMPLES, rtpsock=rtpsock,
                                  basic=basic, port=port, listens=listens, ctl=ctl,
                                  dir=workdir) + extra)
    if who == "kemi":
        return KemiProcess(cfg, workdir, cwd=workdir).start(), port
    return KamailioProcess(cfg, workdir, f"unix:{ctl}").start(), port


@contextmanager
def example_pair(workdir: Path, engine: str, features: list[str],
                 users: dict[str, str] | None = None, rtpsock: str = "udp:127.0.0.1:7722",
                 extra: str = "", tcp: bool = False, kamailio_engine: str | None = None
                 ) -> Iterator[Pair]:
    """The example on kemi and on Kamailio at once (``start_example``'s arguments), each in
    its own directory under ``workdir``; ``kamailio_engine``: Kamailio's engine when not
    ``engine``."""
    kemi, kport = start_example("kemi", workdir / "kemi", engine, features, users, rtpsock,
                                extra, tcp)
    try:
        kam, mport = start_example("kamailio", workdir / "kamailio", kamailio_engine or engine,
                                   features, users, rtpsock, extra, tcp)
        try:
            assert isinstance(kemi, KemiProcess) and isinstance(kam, KamailioProcess)
            yield Pair(kemi, kam, kport, mport)
        finally:
            kam.stop()
    finally:
        kemi.stop()
