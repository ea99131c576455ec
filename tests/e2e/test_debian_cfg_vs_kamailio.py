"""Debian's default /etc/kamailio/kamailio.cfg, unmodified, on kemi and on Kamailio 5.6 side by
side: the same UAs' flows against both, and what the UAs receive compared line by line
(``kemi_core.testing.transcript``): status lines, the headers each server adds or changes,
Record-Route, Via, Contact, what the callee receives, retransmissions.

Set from outside only (a wrapper config that includes the file): ``listen``, the control socket
and jsonrpcs paths, the feature ``#!define``s and, for a database feature, ``DBURL`` on an SQLite
file made by ``kemi db init`` (WITH_MYSQL, with ``#!subst`` loading db_sqlite.so in place of
db_mysql.so, which Kamailio's db_sqlite reads too). The feature sets: none; WITH_NAT;
WITH_AUTH with WITH_IPAUTH, WITH_USRLOCDB and WITH_ACCDB (the acc tables given the columns the
cfg's comment asks for); WITH_PSTN with WITH_VOICEMAIL (what the routes log compared too). Anti-flood is in test_basic_example_auth.py (the same pike/htable
lines); the one difference there is pike's threshold (README).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from kemi_core.testing import kamailio_available, side_by_side, wait_until
from kemi_core.testing.basic_example import ACC_EXTRA
from kemi_core.testing.basic_example import make_db as make_example_db
from kemi_core.testing.proxy_flows import SDP, Call, auth, calls, compare, nat, registrations, req
from kemi_core.testing.sidebyside import Pair
from kemi_core.testing.transcript import Transcript

CFG = Path("/etc/kamailio/kamailio.cfg")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CFG.exists() or not kamailio_available(
        "usrloc.so", "registrar.so", "acc.so", "nathelper.so", "rtpproxy.so", "auth_db.so",
        "permissions.so", "db_sqlite.so"),
        reason="Kamailio 5.6 (Debian's kamailio with its sqlite module) is not installed"),
]

WRAPPER = """#!KAMAILIO
DEFINES#!subst "/db_mysql.so/db_sqlite.so/"
include_file "/etc/kamailio/kamailio.cfg"
listen=udp:127.0.0.1:{port}
modparam("ctl", "binrpc", "unix:{ctl}")
modparam("jsonrpcs", "fifo_name", "{dir}/kamailio_rpc.fifo")
modparam("jsonrpcs", "dgram_socket", "{dir}/kamailio_rpc.sock")
"""




@contextmanager
def start_pair(workdir: Path, features: list[str]) -> Iterator[Pair]:
    defines = "".join(f"#!define {f}\n" for f in features)
    if any(f in features for f in ("WITH_AUTH", "WITH_USRLOCDB", "WITH_ACCDB")):
        # Kamailio reads sqlite:///x relative to its working directory: four slashes
        defines += '#!define WITH_MYSQL\n#!define DBURL "sqlite:///{dir}/kamailio.db"\n'
        for who in ("kemi", "kamailio"):
            make_db(workdir / who)
    with side_by_side(WRAPPER.replace("DEFINES", defines), workdir) as pair:
        yield pair


def make_db(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    make_example_db(d / "kamailio.db", {"alice": "alicepw", "bob": "bobpw"})


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with start_pair(tmp_path_factory.mktemp("debian-plain"), []) as pair:
        yield pair


def pstn_and_voicemail(port: int, tr: Transcript) -> None:
    """WITH_PSTN and WITH_VOICEMAIL with no gateway and no voicemail server set: the routes
    log that they are not configured (in the request route, and in the failure route after
    a callee's 486) and the calls end as without them."""
    with ExitStack() as stack:
        c = Call(port, tr, stack)
        alice, bob = c.alice, c.bob
        c.register(bob)
        tr.note("a PSTN number, an unknown user, a busy callee, a voicemail SUBSCRIBE")
        invite = c.send(alice, req("INVITE", user="+4930123456", body=SDP, call_id="pstn-1"))
        c.ack(alice, invite, alice.final())
        invite = c.send(alice, req("INVITE", user="nobody", body=SDP, call_id="pstn-2"))
        c.ack(alice, invite, alice.final())
        invite = c.send(alice, req("INVITE", body=SDP, call_id="pstn-3"))
        c.answer(bob, bob.request("INVITE"), 486)
        c.ack(alice, invite, alice.final())
        bob.request("ACK")
        c.send(alice, req("SUBSCRIBE", extra="Event: message-summary\r\n", call_id="pstn-4"))
        alice.final()


#: a line the script logs: the log_prefix ("{$mt $hdr(CSeq) $ci} ") and the message
SCRIPT_LINE = re.compile(r"(\{[^}]*\}) (?:<kemi\.script> )?<script>: (.*)")


def script_lines(log: str) -> list[str]:
    return sorted(" ".join(m.groups()) for m in SCRIPT_LINE.finditer(log))


def accounting(db: Path) -> list[tuple[Any, ...]]:
    """The acc and missed_calls rows, what does not depend on the server or the time."""
    with sqlite3.connect(db) as con:
        return [(table, *row) for table in ("acc", "missed_calls") for row in con.execute(
            f"SELECT method, sip_code, sip_reason, {', '.join(ACC_EXTRA)} FROM {table} "
            "ORDER BY id")]


# ---- the tests ---------------------------------------------------------------------------------
def test_calls_through_the_default_cfg_like_kamailio(plain: Pair) -> None:
    compare(plain, calls)


def test_registrations_on_the_default_cfg_like_kamailio(plain: Pair) -> None:
    compare(plain, registrations)


def test_nat_traversal_of_the_default_cfg_like_kamailio(tmp_path: Path) -> None:
    with start_pair(tmp_path, ["WITH_NAT"]) as pair:
        compare(pair, nat)


def test_auth_and_accounting_of_the_default_cfg_like_kamailio(tmp_path: Path) -> None:
    features = ["WITH_AUTH", "WITH_IPAUTH", "WITH_USRLOCDB", "WITH_ACCDB"]
    with start_pair(tmp_path, features) as pair:
        compare(pair, auth)
        kamailio_log = pair.kamailio.log()
    ours = accounting(tmp_path / "kemi" / "kamailio.db")
    theirs = accounting(tmp_path / "kamailio" / "kamailio.db")
    assert [r[:3] for r in ours] == [("acc", "INVITE", "200"), ("acc", "BYE", "200")]
    # Kamailio's db_sqlite has no busy timeout: when two of its processes write at once, one
    # insert fails ("database is locked") and the row is lost; kemi waits for the lock
    assert theirs == ours or (set(theirs) < set(ours)
                              and "database is locked" in kamailio_log), (theirs, ours)


def test_pstn_and_voicemail_routes_log_like_kamailio(tmp_path: Path) -> None:
    with start_pair(tmp_path, ["WITH_PSTN", "WITH_VOICEMAIL"]) as pair:
        compare(pair, pstn_and_voicemail)
        wait_until(lambda: len(script_lines(pair.kamailio.log())) >= 7, 5,
                   "Kamailio's script log lines")
        theirs = script_lines(pair.kamailio.log())
        ours = wait_until(lambda: script_lines(pair.kemi.log()) if len(script_lines(
            pair.kemi.log())) >= len(theirs) else None, 5, "kemi's script log lines")
    assert any(line.startswith("{1 1 INVITE pstn-3} SCRIPT: VoiceMail") for line in theirs)
    assert ours == theirs
