"""registrar with SIPp as the phones: register, a call to the registered user through tm,
unregister then 404; the register handled by one worker and the call by the other; 423 Interval
Too Brief; Path; and (db_mode 2 on SQLite) a registration that survives a restart of kemi."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from kemi_core.testing import db_init
from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.sipp import SippUas, run_sipp, sipp_available

pytestmark = [pytest.mark.e2e, pytest.mark.sipp,
              pytest.mark.skipif(not sipp_available(), reason="SIPp is not installed")]

HERE = Path(__file__).parent / "scenarios"
BASIC = HERE / "basic_example"  # register.xml, call_uac.xml, call_uas.xml, expect_reply.xml

CFG = """#!KAMAILIO
listen=udp:127.0.0.1:{port}
children=2
{db_module}loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
{params}
request_route {{
    append_to_reply("X-Pid: $pp\\r\\n");
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if ($tt != $null) {{
        if (loose_route()) {{
            t_relay();
        }} else if (is_method("ACK")) {{
            t_check_trans();
        }} else {{
            sl_send_reply("404", "Not here");
        }}
        exit;
    }}
    if (is_method("REGISTER")) {{
        save("location");
        exit;
    }}
    if (is_method("OPTIONS") && $rU == $null) {{
        sl_send_reply("200", "Keepalive");
        exit;
    }}
    if (is_method("INVITE")) {{
        record_route();
    }}
    if (!lookup("location")) {{
        sl_send_reply("404", "Not Found");
        exit;
    }}
    t_relay();
}}
"""


def start(tmp: Path, params: str = "", db: Path | None = None, name: str = "kemi",
          port: int | None = None) -> tuple[KemiProcess, int]:
    port = port or free_port()
    work = tmp / name
    work.mkdir(exist_ok=True)
    db_module = 'loadmodule "db_sqlite.so"\n' if db else ""
    if db:
        params += (f'modparam("usrloc", "db_url", "sqlite://{db}")\n'
                   'modparam("usrloc", "db_mode", 2)\n')
    cfg = work / "kamailio.cfg"
    cfg.write_text(CFG.format(port=port, db_module=db_module, params=params))
    return KemiProcess(cfg, work).start(), port


def worker_of(server_port: int, local_port: int) -> str:
    """The pid of the worker that answers requests from ``local_port`` (the kernel spreads
    sockets over the workers by address, so a port keeps its worker)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", local_port))
        s.settimeout(3)
        s.sendto((f"OPTIONS sip:127.0.0.1:{server_port} SIP/2.0\r\n"
                  f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bKprobe{local_port}\r\n"
                  "From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1>\r\n"
                  f"Call-ID: probe{local_port}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                  "Content-Length: 0\r\n\r\n").encode(), ("127.0.0.1", server_port))
        data = s.recv(65535).decode()
    for line in data.split("\r\n"):
        if line.lower().startswith("x-pid:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no X-Pid in {data!r}")


def two_workers(server_port: int) -> tuple[int, int]:
    """Two local ports whose requests two different workers handle."""
    first = free_port()
    pid = worker_of(server_port, first)
    for _ in range(64):
        other = free_port()
        if worker_of(server_port, other) != pid:
            return first, other
    raise AssertionError("every port landed on one worker")


def register(tmp: Path, port: int, user: str, uas_port: int, expires: int = 600,
             local_port: int = 0, name: str = "register") -> tuple[int, int]:
    r = run_sipp(f"127.0.0.1:{port}", tmp, scenario=BASIC / "register.xml", calls=1, rate=1,
                 timeout=20, local_port=local_port, name=name,
                 extra=["-s", user, "-key", "uas_port", str(uas_port),
                        "-key", "expires", str(expires)])
    return r.successful, r.failed


def call(tmp: Path, port: int, user: str, uas_port: int, local_port: int = 0,
         name: str = "call") -> tuple[tuple[int, int], str]:
    with SippUas(tmp, uas_port, BASIC / "call_uas.xml", calls=1, name=f"{name}_callee",
                 extra=["-s", user]) as uas:
        r = run_sipp(f"127.0.0.1:{port}", tmp, scenario=BASIC / "call_uac.xml", calls=1,
                     rate=1, timeout=20, local_port=local_port, name=name, extra=["-s", user])
        # the callee's own end (-m 1): it counts the call once its scenario is over, which
        # may come just after the caller's; stopped before, it reports what it had counted
        callee = uas.wait(20)
    return (r.successful, r.failed), callee.get("SuccessfulCall(C)", "0")


def expect(tmp: Path, port: int, method: str, user: str, code: int, name: str) -> tuple[int, int]:
    text = (BASIC / "expect_reply.xml").read_text()
    ack = (BASIC / "ack.part").read_text() if method == "INVITE" else ""
    ruri = f"sip:{user}@127.0.0.1:{port}"
    text = text.replace("ACK\n", ack).replace("METHOD", method).replace("RURI", ruri)
    text = text.replace("MAXFWD", "70").replace("CODE", str(code))
    scenario = tmp / f"{name}.xml"
    scenario.write_text(text)
    r = run_sipp(f"127.0.0.1:{port}", tmp, scenario=scenario, calls=1, rate=1, timeout=20,
                 name=name)
    return r.successful, r.failed


def register_expect(tmp: Path, port: int, user: str, expires: int, code: int, header: str,
                    regexp: str, extra: str = "", name: str = "regx") -> tuple[int, int]:
    text = (HERE / "registrar" / "register_expect.xml").read_text()
    text = text.replace("EXTRA", extra).replace("CODE", str(code))
    text = text.replace("CHECK_HEADER", header).replace("CHECK_REGEXP", regexp)
    scenario = tmp / f"{name}.xml"
    scenario.write_text(text)
    r = run_sipp(f"127.0.0.1:{port}", tmp, scenario=scenario, calls=1, rate=1, timeout=20,
                 name=name, extra=["-s", user, "-key", "uas_port", str(free_port()),
                                   "-key", "expires", str(expires)])
    return r.successful, r.failed


def test_register_on_one_worker_call_through_the_other_unregister_then_404(tmp_path: Path) -> None:
    proc, port = start(tmp_path)
    try:
        via_a, via_b = two_workers(port)
        uas_port = free_port()
        assert register(tmp_path, port, "alice", uas_port, local_port=via_a) == (1, 0)
        (caller, callee) = call(tmp_path, port, "alice", uas_port, local_port=via_b)
        assert caller == (1, 0) and callee == "1", proc.log()[-3000:]
        assert register(tmp_path, port, "alice", uas_port, expires=0, local_port=via_b,
                        name="unregister") == (1, 0)
        assert expect(tmp_path, port, "INVITE", "alice", 404, "after_unregister") == (1, 0)
        assert expect(tmp_path, port, "INVITE", "nobody", 404, "unknown") == (1, 0)
    finally:  # stopped whatever happens (the server would outlive the test)
        proc.stop()


def test_interval_too_brief_and_path(tmp_path: Path) -> None:
    params = ('modparam("registrar", "min_expires_mode", 1)\n'
              'modparam("registrar", "use_path", 1)\n'
              'modparam("registrar", "path_mode", 1)\n')
    proc, port = start(tmp_path, params)
    try:
        assert register_expect(tmp_path, port, "bob", 10, 423, "Min-Expires:", "^ *60$",
                               name="brief") == (1, 0)
        path = "      Path: <sip:edge.example.com;lr>\n      Supported: path\n"
        assert register_expect(tmp_path, port, "bob", 600, 200, "Path:",
                               r"sip:edge\.example\.com;lr", extra=path, name="path") == (1, 0)
        contact = proc.rpc("ul.lookup", "location", "bob")["Contacts"][0]["Contact"]
        assert contact["Path"] == "<sip:edge.example.com;lr>"
    finally:
        proc.stop()


def test_write_back_registration_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "kamailio.db"
    db_init(f"sqlite://{db}", "usrloc")
    proc, port = start(tmp_path, db=db, name="first")
    uas_port = free_port()
    assert register(tmp_path, port, "carol", uas_port) == (1, 0)
    assert proc.stop() == 0
    proc2, port2 = start(tmp_path, db=db, name="second")
    try:
        (caller, callee) = call(tmp_path, port2, "carol", uas_port)
        assert caller == (1, 0) and callee == "1", proc2.log()[-3000:]
    finally:
        proc2.stop()
