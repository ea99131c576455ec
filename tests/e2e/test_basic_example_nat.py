"""Kamailio's official KEMI example on SQLite, on kemi and on Kamailio 5.6.3, with the same SIPp
flows and one real media relay (Debian's rtpengine on its rtpproxy-compatible port; Debian has
no rtpproxy). Two feature sets: "nat" (WITH_NAT, WITH_USRLOCDB, WITH_ACCDB) and "all" (every
feature the example switches on, WITH_AUTH, WITH_IPAUTH and WITH_ANTIFLOOD too: the UAs then
authenticate with digest credentials from the subscriber table).

The flows, for each server:
* alice and carol register from behind a NAT: a private address (10.0.0.7) in the Contact, sent
  from 127.0.0.1; a call to alice must reach her at the port she registered from.
* bob calls alice from behind a NAT (private Contact and SDP): both SDPs go through the relay
  (c= the relay's address, its ports), ACK and BYE follow the Record-Route and the Contact
  alias back to alice; the call is accounted (rows in ``acc`` for the INVITE and the BYE).
* bob calls carol, who is busy: a row in ``missed_calls``.
* dave registers from behind a NAT and gets an OPTIONS keepalive at the address he registered
  from (SIP pings for NATed contacts as the example sets them; the example's natping_interval
  of 30 s is set to 3 s by the wrapper, a later modparam, so the test waits 3 s, not 30).

kemi runs the example files unmodified (the wrapper and kamailio-local.cfg are the only files
written): ``kamailio-local.cfg`` #!undefs WITH_MYSQL (and, for "nat", WITH_AUTH, WITH_IPAUTH,
WITH_ANTIFLOOD), defines DBURL and loads db_sqlite; the
wrapper's #!subst points the example's /usr/local/etc/kamailio paths at Debian's copies and its
rtpproxy socket (udp:127.0.0.1:7722) at the test's relay. Kamailio has no working #!undef: it
runs a copy of kamailio-basic-kemi.cfg with those #!define lines commented out.
"""

from __future__ import annotations

import re
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from kemi_core.sip import parse_datagram
from kemi_core.testing import (
    KamailioProcess,
    KemiProcess,
    RtpEngineProcess,
    WaitTimeout,
    db_init,
    free_port,
    installed_modules,
    kamailio_available,
    rtpengine_available,
    wait_until,
)
from kemi_core.testing.sipp import SippUas, run_sipp, sipp_available

EXAMPLES = Path("/usr/share/doc/kamailio/examples/kemi")
BASIC = EXAMPLES / "kamailio-basic-kemi.cfg"
SCENARIOS = Path(__file__).parent / "scenarios" / "basic_example_nat"
#: Features the example switches on that each feature set switches off.
OFF = {"nat": ["WITH_MYSQL", "WITH_AUTH", "WITH_IPAUTH", "WITH_ANTIFLOOD"],
       "all": ["WITH_MYSQL"]}
NEEDED = ("nathelper", "rtpproxy", "acc", "usrloc", "registrar", "db_sqlite", "auth", "auth_db",
          "permissions", "htable", "pike")
USERS = ("alice", "bob", "carol", "dave")

pytestmark = [
    pytest.mark.e2e, pytest.mark.sipp,
    pytest.mark.skipif(not BASIC.exists() or not kamailio_available(
        "app_lua.so", "nathelper.so", "rtpproxy.so", "db_sqlite.so", "acc.so"),
        reason="Kamailio 5.6 with its examples, lua, nathelper, rtpproxy and sqlite modules "
               "is not installed"),
    pytest.mark.skipif(not sipp_available(), reason="SIPp (sip-tester) is not installed"),
    pytest.mark.skipif(not rtpengine_available(),
                       reason="rtpengine (Debian's rtpengine-daemon) is not installed"),
]

WRAPPER = """#!KAMAILIO
#!subst "!/usr/local/etc/kamailio/!{examples}/!"
#!subst "!udp:127.0.0.1:7722!{rtpsock}!"
include_file "{basic}"
listen=udp:127.0.0.1:{port}
modparam("ctl", "binrpc", "unix:{ctl}")
modparam("jsonrpcs", "fifo_name", "{dir}/kamailio_rpc.fifo")
modparam("jsonrpcs", "dgram_socket", "{dir}/kamailio_rpc.sock")
"""

LOCAL = """#!define DBURL "sqlite:///{db}"
loadmodule "db_sqlite.so"
"""

ACC_COLUMNS = ("method", "callid", "sip_code", "sip_reason", "src_user", "src_domain",
               "src_ip", "dst_ouser", "dst_user", "dst_domain")


@attrs.define
class Server:
    name: str
    dir: Path
    port: int
    db: Path
    proc: KemiProcess | KamailioProcess
    auth: bool = False

    def log(self) -> str:
        return self.proc.log()


def make_db(path: Path) -> None:
    """The tables (kemi db init) and a subscriber row per user (password secret-<user>)."""
    db_init(f"sqlite:///{path}", "usrloc", "acc", "acc_extra", "auth_db", "permissions")
    with sqlite3.connect(path) as conn:
        conn.executemany("INSERT INTO subscriber (username, domain, password) VALUES (?, ?, ?)",
                         [(u, "127.0.0.1", f"secret-{u}") for u in USERS])


def kamailio_copy(workdir: Path, off: list[str]) -> Path:
    text = BASIC.read_text()
    for name in off:
        text = re.sub(rf"^#!define {name}$", f"##!define {name}", text, flags=re.M)
    copy = workdir / "kamailio-basic-kemi.cfg"
    copy.write_text(text)
    return copy


ENGINE_DEFINES = {"lua": "#!define WITH_CFGLUA\n", "python": "#!define WITH_CFGPYTHON3\n",
                  "native": ""}


def start(kind: str, base: Path, engine: str, rtp: RtpEngineProcess,
          features: str = "nat", extra: str = "") -> Server:
    """The example on ``kind`` ("kemi" or "kamailio"); ``extra``: config lines after the
    example's (a modparam there overrides the example's value on both servers)."""
    d = base / kind
    d.mkdir(parents=True)
    port = free_port()
    db = d / "kamailio.db"
    make_db(db)
    local = LOCAL.format(db=db)
    off = OFF[features]
    if kind == "kemi":
        local = "".join(f"#!undef {n}\n" for n in off) + local
    (d / "kamailio-local.cfg").write_text(local)
    basic = BASIC if kind == "kemi" else kamailio_copy(d, off)
    ctl = d / ("kemi_ctl" if kind == "kemi" else "ctl")
    defines = ENGINE_DEFINES[engine]
    cfg = d / "wrapper.cfg"
    cfg.write_text(defines + WRAPPER.format(examples=EXAMPLES, basic=basic, port=port, ctl=ctl,
                                            dir=d, rtpsock=rtp.sock) + extra)
    proc: KemiProcess | KamailioProcess
    if kind == "kemi":
        proc = KemiProcess(cfg, d, cwd=d).start()
    else:
        proc = KamailioProcess(cfg, d, f"unix:{ctl}").start()
    return Server(kind, d, port, db, proc, auth=features == "all")


def scenario(workdir: Path, name: str, **subs: str) -> Path:
    text = (SCENARIOS / name).read_text()
    for key, value in subs.items():
        text = text.replace(f"@{key}@", value)
    path = workdir / f"{name[:-4]}_{abs(hash(tuple(subs.items()))) % 10**6}.xml"
    path.write_text(text)
    return path


ANSWER_SDP = """      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=alice 1 1 IN IP4 10.0.0.7
      s=-
      c=IN IP4 10.0.0.7
      t=0 0
      m=audio 6002 RTP/AVP 0
"""
NO_BODY = """      Content-Length: 0
"""


def call(server: Server, callee: str, code: int, challenged: bool) -> dict[str, object]:
    """callee registers from behind the NAT, then bob (behind his own NAT) calls: what each
    side saw. ``challenged``: the INVITE gets a 407 first."""
    work = server.dir
    target = f"127.0.0.1:{server.port}"
    uas_port = free_port()
    auth = "_auth" if server.auth else ""  # REGISTER is always authenticated with WITH_AUTH
    reg = run_sipp(target, work, scenario=SCENARIOS / f"register_nat{auth}.xml", calls=1,
                   rate=1, local_port=uas_port, timeout=20, name=f"register_{callee}",
                   extra=["-s", callee, "-key", "expires", "600", "-au", callee, "-ap",
                          f"secret-{callee}"])
    answered = code == 200

    def part(name: str) -> str:
        text = (SCENARIOS / name).read_text()
        return text.replace("CSeq: 1 ACK", f"CSeq: {cseq} ACK").replace(
            "CSeq: 2 BYE", f"CSeq: {cseq + 1} BYE")

    uas_xml = scenario(work, "callee_nat.xml", CODE=str(code),
                       REASON="OK" if answered else "Busy Here",
                       BODY=ANSWER_SDP if answered else NO_BODY,
                       BYE=(SCENARIOS / "callee_bye.part").read_text() if answered else "")
    cseq = 2 if challenged else 1
    uac_xml = scenario(work, f"caller_nat{'_auth' if challenged else ''}.xml", CODE=str(code),
                       CHECK_SDP="true" if answered else "false",
                       ACK=part("ack_2xx.part" if answered else "ack_error.part"),
                       BYE=part("bye.part") if answered else "")
    uas_log = work / f"callee_{callee}_logs.log"
    uac_log = work / f"caller_{callee}_logs.log"
    with SippUas(work, uas_port, uas_xml, calls=1, name=f"callee_{callee}",
                 extra=["-s", callee, "-aa", "-trace_logs", "-log_file", str(uas_log)]) as uas:
        uac = run_sipp(target, work, scenario=uac_xml, calls=1, rate=1, timeout=30,
                       name=f"caller_{callee}",
                       extra=["-s", callee, "-au", "bob", "-ap", "secret-bob", "-trace_logs",
                           "-log_file", str(uac_log)])
        uas_stats = uas.wait(20)
    return {
        "register": (reg.successful, reg.failed),
        "caller": (uac.successful, uac.failed),
        "callee": (int(uas_stats.get("SuccessfulCall(C)", "0") or 0),
                   int(uas_stats.get("FailedCall(C)", "0") or 0)),
        "offer": _logged(uas_log, "offer"),
        "answer": _logged(uac_log, "answer"),
    }


def _logged(path: Path, what: str) -> str:
    """What a SIPp scenario logged (``offer [c=...] [m=audio N]``), the port's value reduced to
    whether it is the UA's own (6000/6002) or another (the relay's)."""
    if not path.exists():
        return ""
    for line in path.read_text().splitlines():
        if line.startswith(what):
            return re.sub(r"m=audio (\d+)",
                          lambda m: "m=audio UA" if m.group(1) in ("6000", "6002")
                          else "m=audio RELAY", line)
    return ""


def acc_rows(db: Path, table: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        cols = ", ".join(ACC_COLUMNS)
        got = conn.execute(f"SELECT {cols} FROM {table} ORDER BY id").fetchall()  # noqa: S608
    return [tuple(re.sub(r"^\d+-\d+@", "CALLID@", str(v)) if i == 1 else v
                  for i, v in enumerate(r)) for r in got]


def register_and_wait_ping(server: Server, deadline: float) -> list[str]:
    """dave registers from a plain socket; the first requests sent to it by the server."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        reg = (f"REGISTER sip:127.0.0.1:{server.port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 10.0.0.8:5060;branch=z9hG4bK-dave-{port};rport\r\n"
               f"From: <sip:dave@127.0.0.1>;tag=d1\r\nTo: <sip:dave@127.0.0.1>\r\n"
               f"Call-ID: dave-{port}\r\nCSeq: 1 REGISTER\r\n"
               f"Contact: <sip:dave@10.0.0.8:5060>;expires=600\r\nMax-Forwards: 70\r\n"
               f"Content-Length: 0\r\n\r\n")
        s.sendto(reg.encode(), ("127.0.0.1", server.port))
        got: list[str] = []
        while time.monotonic() < deadline and not got:
            s.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                data, src = s.recvfrom(65535)
            except TimeoutError:
                break
            if data.startswith(b"SIP/2.0"):
                continue  # the 200 to the REGISTER
            assert src == ("127.0.0.1", server.port), src
            if data == b"\x00\x00\x00\x00":
                got.append("UDP ping")
                continue
            msg = parse_datagram(data)
            got.append(f"{msg.method} {msg.ruri} from={msg.from_.uri_text} to={msg.to.uri_text}")
        return got


def _kinds(rows: object) -> list[tuple[object, object]]:
    return [(r[0], r[2]) for r in rows]  # type: ignore[attr-defined]


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RtpEngineProcess]:
    with RtpEngineProcess(tmp_path) as rtp:
        yield rtp


def run_all(server: Server, challenged: bool) -> dict[str, object]:
    out: dict[str, object] = {"alice": call(server, "alice", 200, challenged),
                              "carol": call(server, "carol", 486, challenged)}
    try:  # the accounting rows are written as the replies go out
        wait_until(lambda: acc_rows(server.db, "acc") and acc_rows(server.db, "missed_calls"),
                   5, "acc rows")
    except WaitTimeout:
        pass  # compared below: a missing row shows there
    out["acc"] = acc_rows(server.db, "acc")
    out["missed_calls"] = acc_rows(server.db, "missed_calls")
    return out


#: Kamailio 5.6.3's app_python3 looks up ksr_onsend_route, which the official Python script
#: does not define, and leaves the AttributeError set: the next KSR call in that process fails
#: ("returned a result with an exception set"), mostly after t_relay has sent the request, but
#: at times early in the next request's route, and Kamailio loses that call. Such a run is no
#: reference: it is made again (at most 3 runs).
APP_PYTHON3_BUG = "has no attribute 'ksr_onsend_route'"
#: What alice's call gives on both servers.
ALICE = {"register": (1, 0), "caller": (1, 0), "callee": (1, 0),
         "offer": "offer c=IN IP4 127.0.0.1 m=audio RELAY",
         "answer": "answer c=IN IP4 127.0.0.1 m=audio RELAY"}


@pytest.mark.parametrize(("engine", "features"), [
    ("lua", "nat"), ("native", "nat"), ("lua", "all"), ("native", "all"), ("python", "all")])
def test_nat_example_like_kamailio(tmp_path: Path, relay: RtpEngineProcess, engine: str,
                                   features: str) -> None:
    """(The official Python script calls KSR.auth_db and KSR.permissions whatever the config
    loads: it runs only with every feature on, on Kamailio as on kemi.)"""
    missing = [m for m in NEEDED if m not in installed_modules()]
    if missing:
        pytest.skip(f"kemi modules not installed: {missing}")
    # With WITH_AUTH, the INVITE is challenged when its From URI is ours. bob's From is
    # sip:bob@127.0.0.1 (no port): KSR.is_myself_furi() says yes (Lua, Python), the native
    # routes' from_uri==myself says no (port 5060 is not the one we listen on), so Kamailio
    # relays bob's INVITE without a challenge there; kemi must do the same.
    challenged = features == "all" and engine != "native"
    for attempt in range(3):
        kam = start("kamailio", tmp_path / f"try{attempt}", engine, relay, features)
        try:
            theirs = run_all(kam, challenged)
        finally:
            kam.proc.stop()
        if APP_PYTHON3_BUG not in kam.log() or (theirs["alice"] == ALICE and all(
                theirs["carol"][k] == (1, 0)  # type: ignore[index]
                for k in ("register", "caller", "callee"))):
            break
    ours_server = start("kemi", tmp_path, engine, relay, features)
    try:
        ours = run_all(ours_server, challenged)
        log = ours_server.log()
    finally:
        ours_server.proc.stop()
    alice = theirs["alice"]
    assert alice == ALICE, kam.log()[-3000:]
    # Kamailio's db_sqlite may lose a row to "database is locked" (usrloc's write-back runs in
    # another process): its rows are some of the expected ones; kemi's are all of them.
    expected_acc = [("INVITE", "200"), ("BYE", "200")]
    assert set(_kinds(theirs["acc"])) <= set(expected_acc)
    assert _kinds(ours["acc"]) == expected_acc
    assert _kinds(theirs["missed_calls"]) == _kinds(ours["missed_calls"]) == [("INVITE", "486")]
    for table in ("acc", "missed_calls"):
        for row in theirs[table]:  # type: ignore[attr-defined]
            assert row in ours[table], (table, row)  # type: ignore[operator]
    assert {k: v for k, v in ours.items() if k not in ("acc",)} == \
        {k: v for k, v in theirs.items() if k not in ("acc",)}, log[-5000:]
    relay.flush()
    kinds = {c.split()[0] for c in relay.commands()}
    assert {"U", "L", "D"} <= kinds


#: The example pings every 30 s; 3 s serves the test as well (the example is not the subject).
NATPING = 'modparam("nathelper", "natping_interval", 3)\n'
OPTIONS_PING = ["OPTIONS sip:dave@10.0.0.8:5060 from=sip:pinger@kamailio.org "
                "to=sip:dave@10.0.0.8:5060"]


@pytest.mark.parametrize(("engine", "expected"), [("lua", OPTIONS_PING),
                                                  ("native", ["UDP ping"])])
def test_keepalive_pings_like_kamailio(tmp_path: Path, relay: RtpEngineProcess, engine: str,
                                       expected: list[str]) -> None:
    """natping_interval (3 s here, the example's 30 s overridden): each contact is pinged once
    within it (AORs spread over the interval); both servers registered at once, so one wait
    serves both. The Lua script sets FLB_NATSIPPING for NATed registrations (SIP pings), the
    native routes only with WITH_NATSIPPING (4-byte UDP pings otherwise)."""
    missing = [m for m in NEEDED if m not in installed_modules()]
    if missing:
        pytest.skip(f"kemi modules not installed: {missing}")
    kam = start("kamailio", tmp_path, engine, relay, extra=NATPING)
    ours = start("kemi", tmp_path, engine, relay, extra=NATPING)
    try:
        import concurrent.futures

        deadline = time.monotonic() + 45
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            theirs_f = pool.submit(register_and_wait_ping, kam, deadline)
            ours_f = pool.submit(register_and_wait_ping, ours, deadline)
            theirs, got = theirs_f.result(), ours_f.result()
    finally:
        kam.proc.stop()
        ours.proc.stop()
    assert theirs == expected
    assert got == expected
