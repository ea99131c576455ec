"""Acceptance for the native engine: examples/native/kamailio.cfg (the seed's Lua example in the
kamailio.cfg routing language) proxies SIPp calls through tm; its branch, onreply, failure and
reply routes run; a failure route serially forks a refused call to a second callee.

The example listens on 5060 and relays to 5080; the tests run copies moved to free ports (nothing
else changes: its FIFO, a relative name, goes beside each test server's own control socket)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.sipp import SippUas, run_sipp

from .conftest import REPO, UAS, needs_sipp

pytestmark = [pytest.mark.e2e, pytest.mark.sipp, needs_sipp]

SCENARIOS = Path(__file__).parent / "scenarios"
EXAMPLE = REPO / "examples" / "native" / "kamailio.cfg"
TAG = "from kamailio native cfg"

REQUEST_DU = '\t$du = "sip:127.0.0.1:5080";\n'
FAILURE_LOG = '\txlog("L_INFO", "===== failure route - from kamailio native cfg\\n");\n'

# The serial-forking variant: record-route so in-dialog requests follow the answering callee, and
# a failure route that sends a 486-refused call on to the second callee.
LOOSE_ROUTE = """\tif (loose_route()) {
\t\txlog("L_INFO", "===== in-dialog $rm to $ru\\n");
\t\tt_relay();
\t\texit;
\t}
\trecord_route();
"""
SERIAL_FORK = """\tif (t_is_canceled()) {
\t\texit;
\t}
\tif (t_check_status("486")) {
\t\txlog("L_INFO", "===== serial fork after $T_reply_code to {second}\\n");
\t\t$du = "{second}";
\t\tt_relay();
\t}
"""


def example_variant(tmp_path: Path, uas_port: int, second_uas: int | None = None) -> tuple[str, int]:
    """The example on a free port, relaying to ``uas_port``; with ``second_uas`` the failure
    route forks to it and dialogs are record-routed."""
    port = free_port()
    cfg = EXAMPLE.read_text()
    for piece in ("listen=udp:127.0.0.1:5060\n", REQUEST_DU, FAILURE_LOG,
                  'modparam("mi_fifo", "fifo_name", "kamailio_fifo")', 'loadmodule "tm.so"\n'):
        assert cfg.count(piece) == 1, piece
    cfg = cfg.replace("listen=udp:127.0.0.1:5060", f"listen=udp:127.0.0.1:{port}")
    du = REQUEST_DU.replace("5080", str(uas_port))
    if second_uas is None:
        return cfg.replace(REQUEST_DU, du), port
    cfg = cfg.replace('loadmodule "tm.so"\n', 'loadmodule "tm.so"\nloadmodule "rr.so"\n')
    cfg = cfg.replace(REQUEST_DU, LOOSE_ROUTE + du)
    fork = SERIAL_FORK.replace("{second}", f"sip:127.0.0.1:{second_uas}")
    return cfg.replace(FAILURE_LOG, FAILURE_LOG + fork), port


def route_lines(log: str, route: str) -> int:
    return len(re.findall(rf"<kemi\.script> (?:<script>: )?===== {route} - {TAG}", log))


def test_native_example_checks() -> None:
    import subprocess

    from kemi_core.testing.process import kemi_executable

    out = subprocess.run([*kemi_executable(), "check", "-f", str(EXAMPLE)], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "engine native" in out.stdout


def test_native_example_relays_calls(start_kemi: Callable[..., KemiProcess], tmp_path: Path) -> None:
    uas_port = free_port()
    cfg, port = example_variant(tmp_path, uas_port)
    srv = start_kemi(cfg)
    with SippUas(tmp_path, uas_port, UAS, name="uas"):
        result = run_sipp(f"127.0.0.1:{port}", tmp_path, scenario="uac", calls=500, rate=100,
                          timeout=60, name="uac")
        assert (result.returncode, result.successful, result.failed) == (0, 500, 0), \
            (result.stdout[-3000:], srv.log()[-3000:])
        stats = srv.wait_tm_settled(1000)  # the callee up for the last BYEs
    log = srv.log()
    assert route_lines(log, "request") >= 1500  # INVITE, ACK, BYE
    assert route_lines(log, "branch route") >= 1000  # the INVITE and BYE branches
    assert route_lines(log, "onreply route") >= 1000
    assert route_lines(log, "response") >= 1000
    assert route_lines(log, "failure route") == 0
    assert "Traceback" not in log
    assert stats["created"] >= 1000 and stats["2xx"] >= 1000


def test_native_example_failure_route_runs(start_kemi: Callable[..., KemiProcess],
                                           tmp_path: Path) -> None:
    uas_port = free_port()
    cfg, port = example_variant(tmp_path, uas_port)
    srv = start_kemi(cfg)
    with SippUas(tmp_path, uas_port, SCENARIOS / "uas_busy.xml", name="uas_busy"):
        result = run_sipp(f"127.0.0.1:{port}", tmp_path, scenario=SCENARIOS / "uac_expect_486.xml",
                          calls=20, rate=20, timeout=30, name="uac486")
    log = srv.log()
    assert (result.successful, result.failed) == (20, 0), (result.stdout[-3000:], log[-3000:])
    assert route_lines(log, "failure route") == 20
    assert route_lines(log, "onreply route") >= 20
    assert "Traceback" not in log


def test_native_failure_route_serial_fork(start_kemi: Callable[..., KemiProcess],
                                          tmp_path: Path) -> None:
    busy, answering = free_port(), free_port()
    cfg, port = example_variant(tmp_path, busy, second_uas=answering)
    srv = start_kemi(cfg)
    with SippUas(tmp_path, busy, SCENARIOS / "uas_busy.xml", name="uas_busy"), \
            SippUas(tmp_path, answering, SCENARIOS / "native_uas_rr.xml", calls=50,
                    name="uas_ok") as uas:
        result = run_sipp(f"127.0.0.1:{port}", tmp_path, scenario=SCENARIOS / "native_uac_rr.xml",
                          calls=50, rate=25, timeout=60, name="uac_fork")
        callee = uas.wait()  # SIPp's final statistics, once its 50 calls have ended
    log = srv.log()
    assert (result.returncode, result.successful, result.failed) == (0, 50, 0), \
        (result.stdout[-3000:], log[-3000:])
    assert route_lines(log, "failure route") == 50
    assert log.count(f"===== serial fork after 486 to sip:127.0.0.1:{answering}") == 50
    assert log.count("===== in-dialog ACK to sip:127.0.0.1:") == 50
    assert log.count("===== in-dialog BYE to sip:127.0.0.1:") == 50
    assert "Traceback" not in log
    # The second callee took every call through to its BYE (ACK and BYE loose-routed to it).
    assert callee.get("SuccessfulCall(C)") == "50", callee
