"""Kamailio's official KEMI example with its database features on, on SQLite, on kemi and on
Kamailio 5.6 side by side, with the Lua script, the native routes, the JavaScript file and the
Python script: WITH_AUTH, WITH_IPAUTH, WITH_USRLOCDB and WITH_ANTIFLOOD (accounting to a
database is left off; NAT too, except for the JavaScript and Python files, which call
KSR.nathelper unconditionally).

What is set from outside, and how: a wrapper config (the test's directory) defines ``DBURL``
(an SQLite file made by ``kemi db init``), rewrites the example's ``loadmodule "db_mysql.so"``
into db_sqlite with ``#!subst``, includes kamailio-basic-kemi.cfg and sets ``listen`` and the
control sockets. kemi runs the example files in place; the ``kamailio-local.cfg`` the example
imports switches WITH_NAT and WITH_ACCDB off (``#!undef``). Kamailio 5.6 cannot ``#!undef``, so
it runs a copy of the example with those two defines commented out.

The flows, the same on both servers: REGISTER answered 401 then 200 with the right password and
never 200 with a wrong one, an unauthenticated INVITE answered 407, an authenticated call to a
registered user through Record-Route (SIPp -au/-ap), a MESSAGE from a trusted address
(the address table, group 1) relayed without credentials, registrations surviving a restart
(usrloc db_mode 2 on SQLite), and a flooding address banned while another one is served.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kemi_auth.testing import DigestUA, credentials, parse_challenge
from kemi_core.testing import db_init, kamailio_available
from kemi_core.testing.kamailio import KamailioProcess
from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.sipp import SippUas, run_sipp, sipp_available

EXAMPLES = Path("/usr/share/doc/kamailio/examples/kemi")
BASIC = EXAMPLES / "kamailio-basic-kemi.cfg"
SCENARIOS = Path(__file__).resolve().parents[2] / "bench" / "scenarios"
AUTH_CALL, CALLEE = SCENARIOS / "auth_invite_uac.xml", SCENARIOS / "rr_uas.xml"
#: What the example switches on by itself and these flows leave off (other helpers' modules).
OFF = ["WITH_NAT", "WITH_ACCDB"]
#: The JS and Python files call KSR.nathelper whatever the config loads (the Lua file checks
#: first), so they run with WITH_NAT on: nathelper and rtpproxy loaded; local traffic is never
#: NATed, so no rtpproxy is asked anything.
OFF_FOR = {"jsdt": ["WITH_ACCDB"], "python": ["WITH_ACCDB"]}
#: -A / #!define that selects each engine's script (native: none).
ENGINE_DEFINE = {"lua": "WITH_CFGLUA", "jsdt": "WITH_CFGJSDT",
                 "python": "WITH_CFGPYTHON3"}
TRUSTED = "127.0.0.5"
FLOODER, OTHER = "127.0.0.2", "127.0.0.3"

pytestmark = [
    pytest.mark.e2e, pytest.mark.sipp,
    pytest.mark.skipif(not BASIC.exists() or not kamailio_available(
        "app_lua.so", "auth_db.so", "permissions.so", "htable.so", "pike.so", "db_sqlite.so"),
        reason="Kamailio 5.6 with its examples and the auth/permissions/htable/pike/db_sqlite "
               "modules is not installed"),
    pytest.mark.skipif(not sipp_available(), reason="SIPp (sip-tester) is not installed"),
]

WRAPPER = """#!KAMAILIO
#!define DBURL "sqlite://{db}"
#!subst "!/usr/local/etc/kamailio/!{examples}/!"
#!subst "/db_mysql.so/db_sqlite.so/"
include_file "{basic}"
listen=udp:127.0.0.1:{port}
modparam("ctl", "binrpc", "unix:{ctl}")
modparam("jsonrpcs", "fifo_name", "{dir}/kamailio_rpc.fifo")
modparam("jsonrpcs", "dgram_socket", "{dir}/kamailio_rpc.sock")
"""

SUBSCRIBERS = [("alice", "127.0.0.1", "alicepw"), ("bob", "127.0.0.1", "bobpw")]


def make_db(path: Path) -> Path:
    db_init(f"sqlite://{path}", "usrloc", "auth_db", "permissions")
    with sqlite3.connect(path) as con:
        con.executemany("INSERT INTO subscriber (username, domain, password) VALUES (?,?,?)",
                        SUBSCRIBERS)
        con.execute("INSERT INTO address (grp, ip_addr, mask, port) VALUES (1, ?, 32, 0)",
                    (TRUSTED,))
    return path


class Server:
    """kemi or Kamailio on the example, restartable on the same port and database."""

    def __init__(self, who: str, engine: str, workdir: Path, db: Path) -> None:
        self.who, self.engine, self.dir, self.db = who, engine, workdir, db
        self.port = free_port()
        #: URIs name the port: in the native language uri==myself compares it (Kamailio)
        self.domain = f"127.0.0.1:{self.port}"
        self.bob = f"sip:bob@{self.domain}"
        self.proc: KemiProcess | KamailioProcess | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    def start(self) -> Server:
        d = self.dir
        off = OFF_FOR.get(self.engine, OFF)
        define = ENGINE_DEFINE.get(self.engine)
        if self.who == "kemi":
            (d / "kamailio-local.cfg").write_text("".join(f"#!undef {n}\n" for n in off))
            basic, ctl, defines = BASIC, d / "kemi_ctl", ""
            args = ["-A", define] if define else []
        else:
            text = BASIC.read_text()
            for name in off:
                text = re.sub(rf"^#!define {name}$", f"##!define {name}", text, flags=re.M)
            basic = d / "kamailio-basic-kemi.cfg"
            basic.write_text(text)
            ctl, args = d / "ctl", []
            defines = f"#!define {define}\n" if define else ""
        cfg = d / "wrapper.cfg"
        # Kamailio reads sqlite:///x relative to its working directory: four slashes
        cfg.write_text(defines + WRAPPER.format(db=f"/{self.db}", examples=EXAMPLES, basic=basic,
                                                port=self.port, ctl=ctl, dir=d))
        if self.who == "kemi":
            self.proc = KemiProcess(cfg, d, args=args, cwd=d).start()
        else:
            self.proc = KamailioProcess(cfg, d, f"unix:{ctl}").start()
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def log(self) -> str:
        return self.proc.log() if self.proc is not None else ""


Flow = Callable[[Server], Any]


def status(reply: Any) -> Any:
    return None if reply is None else reply.status


def register_flows(srv: Server) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    with DigestUA(srv.port, "alice", "alicepw", domain=srv.domain) as ua:
        first = ua.request("REGISTER")
        out.append(("REGISTER without credentials", (status(first),
                                                      bool(first and first.header("WWW-Authenticate")))))
        wrong = [status(ua.register(password=f"guess{i}")) for i in range(3)]
        out.append(("REGISTER with wrong passwords", wrong))
        ok = ua.register()
        out.append(("REGISTER with the right password", (status(ok), ok is not None and bool(
            ok.header("Contact")))))
        inv = ua.request("INVITE", ruri=srv.bob)
        out.append(("INVITE without credentials", (status(inv), bool(
            inv and inv.header("Proxy-Authenticate")))))
        inv2, _ = ua.authenticated("INVITE", ruri=f"sip:carol@{srv.domain}", password="nope")
        out.append(("INVITE with a wrong password", status(inv2)))
    return out


def call_flow(srv: Server) -> list[tuple[str, Any]]:
    """bob registers the SIPp callee's address; alice (SIPp -au/-ap) calls him."""
    uas_port = free_port()
    with DigestUA(srv.port, "bob", "bobpw", domain=srv.domain) as bob:
        reg = bob.register(contact=f"<sip:bob@127.0.0.1:{uas_port}>", expires=600)
    with SippUas(srv.dir, uas_port, CALLEE, calls=1, name=f"callee-{srv.who}",
                 extra=["-s", "bob"]) as uas:
        r = run_sipp(f"127.0.0.1:{srv.port}", srv.dir, scenario=AUTH_CALL, calls=1, rate=1,
                     timeout=20, name=f"caller-{srv.who}",
                     extra=["-au", "alice", "-ap", "alicepw", "-s", "alice"])
        uas.wait()
    return [("bob registers the callee", status(reg)),
            ("authenticated call through Record-Route", (r.successful, r.failed))]


def trusted_flow(srv: Server) -> list[tuple[str, Any]]:
    """A MESSAGE from the trusted address reaches bob without credentials (WITH_IPAUTH)."""
    with DigestUA(srv.port, "bob", "bobpw", domain=srv.domain) as bob, \
            DigestUA(srv.port, "gw", "x", domain=srv.domain, src=TRUSTED) as gw:
        bob.register()
        gw.send(gw.build("MESSAGE", ruri=srv.bob, from_user="gw"))
        got = bob.wait_request("MESSAGE")
        answer = gw.recv()
        with DigestUA(srv.port, "mallory", "x", domain=srv.domain, src="127.0.0.4") as other:
            refused = other.request("MESSAGE", ruri=srv.bob, from_user="mallory")
    return [("MESSAGE from a trusted address relayed", (got is not None, status(answer))),
            ("the same from another address", status(refused))]


def restart_flow(srv: Server) -> list[tuple[str, Any]]:
    """bob's registration is in the database after a restart (usrloc db_mode 2)."""
    with DigestUA(srv.port, "bob", "bobpw", domain=srv.domain) as bob:
        reg = bob.register(expires=600)
        srv.stop()
        srv.start()
        with DigestUA(srv.port, "alice", "alicepw", domain=srv.domain) as alice:
            first = alice.request("MESSAGE", ruri=srv.bob)
            ch = parse_challenge(first) if first is not None else None
            assert ch is not None, "no challenge"
            auth = credentials(ch, "MESSAGE", srv.bob, "alice", "alicepw")
            alice.send(alice.build("MESSAGE", ruri=srv.bob, auth=auth))
            got = bob.wait_request("MESSAGE")  # bob answers 200, which goes back to alice
            reply = alice.recv()
    return [("registered before the restart", status(reg)),
            ("MESSAGE to bob after the restart", (status(first), status(reply), got is not None))]


def flood_flow(srv: Server) -> list[tuple[str, Any]]:
    """Keepalive OPTIONS from one address as fast as it answers: pike detects the flood and
    the address is banned in htable (ipban); another address is served meanwhile."""
    answered = 0
    with DigestUA(srv.port, src=FLOODER, timeout=1.5) as flooder:
        for _ in range(80):
            if flooder.request("OPTIONS", ruri=f"sip:{srv.domain}") is None:
                break
            answered += 1
        banned = flooder.request("OPTIONS", ruri=f"sip:{srv.domain}") is None
    with DigestUA(srv.port, src=OTHER) as other:
        served = status(other.request("OPTIONS", ruri=f"sip:{srv.domain}"))
    return [("flood blocked after", "16..40 keepalives" if 16 <= answered <= 40 else answered),
            ("flooder banned", banned), ("another address served", served)]


FLOWS: list[Flow] = [register_flows, call_flow, trusted_flow, restart_flow, flood_flow]

EXPECTED = [
    ("REGISTER without credentials", (401, True)),
    ("REGISTER with wrong passwords", [401, 401, 401]),
    ("REGISTER with the right password", (200, True)),
    ("INVITE without credentials", (407, True)),
    ("INVITE with a wrong password", 407),
    ("bob registers the callee", 200),
    ("authenticated call through Record-Route", (1, 0)),
    ("MESSAGE from a trusted address relayed", (True, 200)),
    ("the same from another address", 407),
    ("registered before the restart", 200),
    ("MESSAGE to bob after the restart", (407, 200, True)),
    ("flood blocked after", "16..40 keepalives"),
    ("flooder banned", True),
    ("another address served", 200),
]


def run_all(srv: Server) -> list[tuple[str, Any]]:
    srv.start()
    try:
        return [step for flow in FLOWS for step in flow(srv)]
    finally:
        srv.stop()


#: Kamailio 5.6.3's app_python3 looks up ksr_onsend_route, which the official Python script
#: does not define, and leaves the AttributeError set: a later KSR call in that process fails
#: ("returned a result with an exception set") and the request is lost (a relayed MESSAGE, at
#: times an INVITE). Steps Kamailio loses that way are not kemi's reference: kemi must give
#: every expected answer.
APP_PYTHON3_BUG = "has no attribute 'ksr_onsend_route'"


@pytest.mark.parametrize("engine", ["lua", "native", "jsdt", "python"])
def test_example_with_auth_on_sqlite_like_kamailio(tmp_path: Path, engine: str) -> None:
    app = {"jsdt": "app_jsdt.so", "python": "app_python3.so"}.get(engine)
    if app and not kamailio_available(app, "nathelper.so", "rtpproxy.so"):
        pytest.skip(f"Kamailio's {app}, nathelper and rtpproxy modules are not installed")
    kam = Server("kamailio", engine, tmp_path / "kamailio", make_db(tmp_path / "kamailio.db"))
    reference = run_all(kam)
    if engine == "python" and reference != EXPECTED:
        assert APP_PYTHON3_BUG in kam.log(), kam.log()[-3000:]
        reference = EXPECTED
    assert reference == EXPECTED, kam.log()[-3000:]
    kemi = Server("kemi", engine, tmp_path / "kemi", make_db(tmp_path / "kemi.db"))
    got = run_all(kemi)
    assert got == reference, kemi.log()[-4000:]
    if engine == "jsdt":  # the JS file ran (its reply route logs), with no script error
        log = kemi.log()
        assert "===== response - from kamailio JS script" in log and "error in ksr_" not in log
