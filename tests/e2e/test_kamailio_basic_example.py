"""Kamailio's official KEMI example (Debian's kamailio package, used in place) on kemi and on
Kamailio 5.6, with its Lua script and with its native routes: the same SIPp flows give the same
outcome on both: register, a call to the registered user through Record-Route, a keepalive
OPTIONS, 404 for an unknown user, 483 at Max-Forwards 0, unregister and then 404.

What is set from outside, and how:
* kemi runs the example files unmodified. A wrapper config (in the test's directory) sets
  ``#!subst`` for the example's /usr/local/etc/kamailio paths (Debian installs the files under
  /usr/share/doc), includes kamailio-basic-kemi.cfg, and sets ``listen`` and the control socket
  paths; the feature #!defines the example switches on itself (MySQL, auth, NAT, anti-flood,
  accounting to a database) are switched off by the ``kamailio-local.cfg`` the example imports
  from the working directory (``#!undef``), and WITH_CFGLUA comes from ``-A``.
* Kamailio 5.6 has no working ``#!undef``, so it runs a copy of kamailio-basic-kemi.cfg in the
  test's directory whose seven ``#!define WITH_...`` lines are commented out; everything else is
  the same wrapper.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from kemi_core.testing import kamailio_available
from kemi_core.testing.kamailio import KamailioProcess
from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.sipp import SippUas, run_sipp, sipp_available

EXAMPLES = Path("/usr/share/doc/kamailio/examples/kemi")
BASIC = EXAMPLES / "kamailio-basic-kemi.cfg"
SCENARIOS = Path(__file__).parent / "scenarios" / "basic_example"
#: What the example switches on by itself and this test switches off.
FEATURES = ["WITH_MYSQL", "WITH_AUTH", "WITH_IPAUTH", "WITH_USRLOCDB", "WITH_NAT",
            "WITH_ANTIFLOOD", "WITH_ACCDB"]

pytestmark = [
    pytest.mark.e2e, pytest.mark.sipp,
    pytest.mark.skipif(not BASIC.exists() or not kamailio_available("app_lua.so", "usrloc.so",
                                                                    "app_python3.so"),
                       reason="Kamailio 5.6 and its examples (Debian's kamailio package, "
                              "kamailio-lua-modules, kamailio-python3-modules) are not installed"),
    pytest.mark.skipif(not sipp_available(), reason="SIPp (sip-tester) is not installed"),
]

WRAPPER = """#!KAMAILIO
#!subst "!/usr/local/etc/kamailio/!{examples}/!"
include_file "{basic}"
listen=udp:127.0.0.1:{port}
modparam("ctl", "binrpc", "unix:{ctl}")
modparam("jsonrpcs", "fifo_name", "{dir}/kamailio_rpc.fifo")
modparam("jsonrpcs", "dgram_socket", "{dir}/kamailio_rpc.sock")
"""


def registrar_available() -> bool:
    from kemi_core.testing import installed_modules

    mods = installed_modules()
    return "registrar" in mods and "usrloc" in mods


def kamailio_copy(workdir: Path) -> Path:
    """The example with its feature defines commented out (Kamailio cannot #!undef them)."""
    text = BASIC.read_text()
    for name in FEATURES:
        text = re.sub(rf"^#!define {name}$", f"##!define {name}", text, flags=re.M)
    copy = workdir / "kamailio-basic-kemi.cfg"
    copy.write_text(text)
    return copy


def start_kemi(workdir: Path, engine: str) -> tuple[KemiProcess, int]:
    return start_kemi_with(workdir, ["-A", "WITH_CFGLUA"] if engine == "lua" else [])


def start_kamailio(workdir: Path, engine: str) -> tuple[KamailioProcess, int]:
    return start_kamailio_with(workdir, "#!define WITH_CFGLUA\n" if engine == "lua" else "")


def expect_scenario(workdir: Path, method: str, ruri: str, code: int, maxfwd: int = 70) -> Path:
    text = (SCENARIOS / "expect_reply.xml").read_text()
    ack = (SCENARIOS / "ack.part").read_text() if method == "INVITE" else ""
    text = text.replace("ACK\n", ack).replace("METHOD", method).replace("RURI", ruri)
    text = text.replace("MAXFWD", str(maxfwd)).replace("CODE", str(code))
    path = workdir / f"expect_{method}_{code}_{maxfwd}.xml"
    path.write_text(text)
    return path


def run_flows(port: int, workdir: Path) -> list[tuple[str, int, int]]:
    """Every flow against the server at ``port``: (flow, successful calls, failed calls)."""
    target = f"127.0.0.1:{port}"
    uas_port = free_port()
    results: list[tuple[str, int, int]] = []

    def sipp(name: str, scenario: Path, service: str, *extra: str) -> None:
        r = run_sipp(target, workdir, scenario=scenario, calls=1, rate=1, timeout=20, name=name,
                     extra=["-s", service, "-key", "uas_port", str(uas_port), *extra])
        results.append((name, r.successful, r.failed))

    sipp("register", SCENARIOS / "register.xml", "alice", "-key", "expires", "600")
    with SippUas(workdir, uas_port, SCENARIOS / "call_uas.xml", calls=1, name="callee",
                 extra=["-s", "alice"]):
        sipp("call", SCENARIOS / "call_uac.xml", "alice")
    sipp("keepalive", expect_scenario(workdir, "OPTIONS", f"sip:{target}", 200), "x")
    sipp("unknown_user", expect_scenario(workdir, "INVITE", f"sip:nobody@{target}", 404), "x")
    sipp("max_forwards_0", expect_scenario(workdir, "OPTIONS", f"sip:alice@{target}", 483, 0), "x")
    sipp("unregister", SCENARIOS / "register.xml", "alice", "-key", "expires", "0")
    sipp("after_unregister", expect_scenario(workdir, "INVITE", f"sip:alice@{target}", 404), "x")
    return results


EXPECTED = [("register", 1, 0), ("call", 1, 0), ("keepalive", 1, 0), ("unknown_user", 1, 0),
            ("max_forwards_0", 1, 0), ("unregister", 1, 0), ("after_unregister", 1, 0)]


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    # sipp's per-run files can be large; the servers' logs stay for a failed run
    for f in tmp_path.rglob("*_messages.log"):
        f.unlink()


@pytest.mark.parametrize("engine", ["lua", "native"])
def test_kamailio_reference_passes_the_flows(workdir: Path, engine: str) -> None:
    """The flows themselves, on Kamailio 5.6: the reference this harness measures kemi by."""
    kam, port = start_kamailio(workdir / "kamailio", engine)
    try:
        got = run_flows(port, workdir / "kamailio")
    finally:
        kam.stop()
    assert got == EXPECTED, f"{got}\n{kam.log()[-2000:]}"


@pytest.mark.parametrize("engine", ["lua", "native"])
def test_example_runs_unmodified_on_kemi_like_kamailio(workdir: Path, engine: str) -> None:
    if not registrar_available():
        pytest.skip("the registrar and usrloc modules (issue 14, state part) are not installed yet")
    kam, kam_port = start_kamailio(workdir / "kamailio", engine)
    try:
        reference = run_flows(kam_port, workdir / "kamailio")
    finally:
        kam.stop()
    kemi, port = start_kemi(workdir / "kemi", engine)
    try:
        got = run_flows(port, workdir / "kemi")
        log = kemi.log()
    finally:
        kemi.stop()
    assert reference == EXPECTED
    assert got == reference, log[-4000:]


def test_python_script_needs_the_nat_and_auth_modules(workdir: Path) -> None:
    """The official Python script calls KSR.nathelper, KSR.permissions, KSR.auth_db, KSR.auth
    (and, for traffic from other hosts, KSR.pike and KSR.htable) whether or not the config loads
    them. With those features off, on Kamailio 5.6 and on kemi alike, only what the script does
    before its NAT detection works (the keepalive OPTIONS); other requests fail in the script at
    KSR.nathelper (Kamailio then sends nothing, kemi a 500 and the logged reason)."""
    from kemi_core.testing import exchange, request_text

    if not registrar_available():
        pytest.skip("the registrar and usrloc modules are not installed")
    msgs = [request_text("OPTIONS", ruri="sip:127.0.0.1"),
            request_text("REGISTER", ruri="sip:127.0.0.1", to="<sip:alice@127.0.0.1>",
                         extra="Contact: <sip:alice@127.0.0.1:5099>")]
    d = workdir / "kamailio"
    kam, kport = start_kamailio_with(d, "#!define WITH_CFGPYTHON3\n")
    try:
        theirs = exchange(kport, msgs, timeout=1.5)
    finally:
        kam.stop()
    kemi, port = start_kemi_with(workdir / "kemi", ["-A", "WITH_CFGPYTHON3"])
    try:
        ours = exchange(port, msgs, timeout=1.5)
        log = kemi.log()
    finally:
        kemi.stop()
    assert [a.status for a in theirs] == ["SIP/2.0 200 Keepalive", "(no reply)"]
    assert [a.status for a in ours] == ["SIP/2.0 200 Keepalive", "SIP/2.0 500 Server Internal Error"]
    assert "module 'KSR' has no attribute 'nathelper'" in log


def start_kemi_with(workdir: Path, args: list[str]) -> tuple[KemiProcess, int]:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (workdir / "kamailio-local.cfg").write_text("".join(f"#!undef {n}\n" for n in FEATURES))
    cfg = workdir / "wrapper.cfg"
    cfg.write_text(WRAPPER.format(examples=EXAMPLES, basic=BASIC, port=port,
                                  ctl=workdir / "kemi_ctl", dir=workdir))
    return KemiProcess(cfg, workdir, args=args, cwd=workdir).start(), port


def start_kamailio_with(workdir: Path, defines: str) -> tuple[KamailioProcess, int]:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cfg = workdir / "wrapper.cfg"
    cfg.write_text(defines + WRAPPER.format(examples=EXAMPLES, basic=kamailio_copy(workdir),
                                            port=port, ctl=workdir / "ctl", dir=workdir))
    return KamailioProcess(cfg, workdir, f"unix:{workdir / 'ctl'}").start(), port


def test_js_script_runs_like_kamailio_until_the_nat_and_auth_modules(workdir: Path) -> None:
    """The official JavaScript file, unmodified, on Kamailio 5.6 (Duktape) and on kemi (jsdt):
    like the Python file, it calls KSR.nathelper (and, for traffic from other hosts, KSR.pike,
    KSR.htable, then KSR.permissions, KSR.auth_db) whatever the config loads. With those
    features off, what its initial checks answer is the same on both (keepalive, scanner,
    Max-Forwards); the other requests fail in the script at KSR.nathelper: Kamailio then sends
    nothing, kemi a 500 with file:line and the JS stack logged. With the features on, the
    full flows pass on both: tests/e2e/test_basic_example_auth.py."""
    from kemi_core.testing import exchange, request_text

    if not registrar_available():
        pytest.skip("the registrar and usrloc modules are not installed")
    if not kamailio_available("app_jsdt.so"):
        pytest.skip("Kamailio's app_jsdt (Debian's kamailio-extra-modules) is not installed")
    hops0 = request_text("OPTIONS", ruri="sip:alice@127.0.0.1").replace("Max-Forwards: 70",
                                                                         "Max-Forwards: 0")
    msgs = [request_text("OPTIONS", ruri="sip:127.0.0.1"),
            hops0,
            request_text("OPTIONS", ruri="sip:alice@127.0.0.1", extra="User-Agent: friendly-scanner"),
            request_text("REGISTER", ruri="sip:127.0.0.1", to="<sip:alice@127.0.0.1>",
                         extra="Contact: <sip:alice@127.0.0.1:5099>"),
            request_text("INVITE", ruri="sip:nobody@127.0.0.1", to="<sip:nobody@127.0.0.1>")]
    kam, kport = start_kamailio_with(workdir / "kamailio", "#!define WITH_CFGJSDT\n")
    try:
        theirs = exchange(kport, msgs, timeout=1.5)
        kam_log = kam.log()
    finally:
        kam.stop()
    kemi, port = start_kemi_with(workdir / "kemi", ["-A", "WITH_CFGJSDT"])
    try:
        ours = exchange(port, msgs, timeout=1.5)
        log = kemi.log()
    finally:
        kemi.stop()
    same = ["SIP/2.0 200 Keepalive", "SIP/2.0 483 Too Many Hops", "SIP/2.0 200 OK"]
    assert [a.status for a in theirs] == [*same, "(no reply)", "(no reply)"], kam_log[-3000:]
    assert [a.status for a in ours] == [*same, "SIP/2.0 500 Server Internal Error",
                                        "SIP/2.0 500 Server Internal Error"], log[-3000:]
    script = EXAMPLES / "kamailio-basic-kemi-jsdt.js"
    assert "nat_uac_test" in kam_log  # Duktape's TypeError names the same call
    assert f"{script}:279: TypeError: cannot read property 'nat_uac_test' of undefined" in log
    assert f"at ksr_route_natdetect ({script}:279:" in log
