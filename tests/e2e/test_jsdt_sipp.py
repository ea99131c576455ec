"""The jsdt engine as a server: a JavaScript routing file (the seed's Lua example's logic) proxies
SIPp calls statefully through tm with its branch, onreply, failure and reply callbacks; reload
through cfgengine.reload and app_jsdt.reload reaches both workers and a broken file is refused
with file:line; a script error answers 500 and logs file:line with the JS stack."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from kemi_core.rpc.client import RpcError
from kemi_core.sip import SipMsg, parse_datagram
from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.sipp import SippUas, run_sipp
from kemi_core.testing.udp_client import request

from .conftest import needs_sipp

pytestmark = [pytest.mark.e2e]

SCENARIOS = Path(__file__).parent / "scenarios"
TIMEOUT = 5.0

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=2
auto_aliases=no
listen=udp:127.0.0.1:{port}
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "xlog.so"
loadmodule "app_jsdt.so"
modparam("tm", "failure_reply_mode", 3)
modparam("app_jsdt", "load", "{script}")
cfgengine "jsdt"
"""

#: The seed's Lua example's logic in JavaScript, relaying to the callee on CALLEE_PORT.
SEED_JS = """// the seed's example, in JavaScript
function ksr_request_route() {
  KSR.info("===== request - from kamailio js script\\n");
  if (KSR.maxfwd.process_maxfwd(10) < 0) {
    KSR.sl.send_reply(483, "Too Many Hops");
    return;
  }
  if (KSR.is_OPTIONS() && KSR.pv.get("$rU") == "ping") {
    KSR.sl.send_reply(200, "VERSION " + KSR.pv.get("$pp"));
    KSR.x.exit();
  }
  if (KSR.is_INVITE() && KSR.pv.get("$rU") == "broken") {
    fails_here();
  }
  KSR.pv.sets("$du", "sip:127.0.0.1:CALLEE_PORT");
  KSR.tm.t_on_branch("ksr_branch_route_one");
  KSR.tm.t_on_reply("ksr_onreply_route_one");
  KSR.tm.t_on_failure("ksr_failure_route_one");
  if (KSR.tm.t_relay() < 0) {
    KSR.sl.send_reply(500, "Server error");
  }
}

function fails_here() {
  var missing = null;
  return missing.member;
}

function ksr_reply_route() {
  KSR.info("===== response - from kamailio js script\\n");
}

function ksr_branch_route_one() {
  KSR.info("===== branch route - from kamailio js script\\n");
}

function ksr_onreply_route_one() {
  KSR.info("===== onreply route - from kamailio js script " + KSR.pv.get("$rs") + "\\n");
}

function ksr_failure_route_one() {
  KSR.info("===== failure route - from kamailio js script\\n");
}
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[KemiProcess, Path, int, int]]:
    port, callee = free_port(), free_port()
    script = tmp_path / "kamailio.js"
    script.write_text(SEED_JS.replace("CALLEE_PORT", str(callee)))
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CFG.format(port=port, script=script))
    srv = KemiProcess(cfg, tmp_path).start()
    try:
        yield srv, script, port, callee
    finally:
        srv.stop()


def _ask(port: int, user: str, method: str = "OPTIONS") -> SipMsg:
    """One request from a fresh socket (so SO_REUSEPORT spreads them over the workers); its
    first final reply."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(TIMEOUT)
        sock.sendto(request(method, f"sip:{user}@127.0.0.1:{port}", sock.getsockname()[1]),
                    ("127.0.0.1", port))
        while True:
            reply = parse_datagram(sock.recvfrom(65535)[0])
            if reply.status is not None and reply.status >= 200:
                return reply


def _versions(port: int, n: int) -> tuple[set[str], set[str]]:
    """The versions the script answers ``ping`` with, and the worker pids that answered."""
    reasons = [_ask(port, "ping").reason for _ in range(n)]
    return {r.split()[0] + " " for r in reasons}, {r.split()[1] for r in reasons}


@needs_sipp
@pytest.mark.sipp
def test_js_script_relays_calls_with_branch_onreply_and_reply_routes(
        server: tuple[KemiProcess, Path, int, int], tmp_path: Path) -> None:
    srv, _script, port, callee = server
    with SippUas(tmp_path, callee, "uas", name="uas"):
        result = run_sipp(f"127.0.0.1:{port}", tmp_path, scenario="uac", calls=20, rate=20,
                          local_port=free_port(), timeout=60, name="uac")
        assert result.successful == 20 and result.failed == 0, \
            (result.stdout[-2000:], srv.log()[-3000:])
        stats = srv.wait_tm_settled(40)  # the callee up for the last BYEs
    log = srv.log()
    assert "===== request - from kamailio js script" in log
    assert "===== branch route - from kamailio js script" in log
    assert "===== onreply route - from kamailio js script 200" in log
    assert "===== response - from kamailio js script" in log
    assert "Traceback" not in log
    assert stats["created"] >= 40 and stats["2xx"] >= 40  # an INVITE and a BYE per call


@needs_sipp
@pytest.mark.sipp
def test_js_failure_route_runs(server: tuple[KemiProcess, Path, int, int], tmp_path: Path) -> None:
    srv, _script, port, callee = server
    with SippUas(tmp_path, callee, SCENARIOS / "uas_busy.xml", name="uas_busy"):
        result = run_sipp(f"127.0.0.1:{port}", tmp_path, scenario=SCENARIOS / "uac_expect_486.xml",
                          calls=10, rate=10, local_port=free_port(), timeout=30, name="uac486")
    log = srv.log()
    assert result.successful == 10, (result.stdout[-2000:], log[-3000:])
    assert "===== failure route - from kamailio js script" in log
    assert "===== onreply route - from kamailio js script 486" in log


def test_reload_reaches_every_worker_and_a_broken_file_is_refused(
        server: tuple[KemiProcess, Path, int, int]) -> None:
    srv, script, port, _callee = server
    versions, workers = _versions(port, 30)
    assert versions == {"VERSION "} and len(workers) == 2, workers
    text = script.read_text()

    script.write_text(text.replace('"VERSION "', '"V2 "'))
    answer = srv.rpc("cfgengine.reload")
    assert (answer["engine"], answer["new"]) == ("jsdt", answer["old"] + 1)
    versions, workers = _versions(port, 30)
    assert versions == {"V2 "} and len(workers) == 2, workers

    script.write_text(text.replace('"VERSION "', '"V3 "'))
    answer = srv.rpc("app_jsdt.reload")
    assert answer["engine"] == "jsdt"
    versions, workers = _versions(port, 30)
    assert versions == {"V3 "} and len(workers) == 2, workers

    script.write_text(text.replace('"VERSION "', '"V4 "') + "\nfunction broken( {\n")
    with pytest.raises(RpcError, match=rf"{re.escape(str(script))}:\d+: SyntaxError"):
        srv.rpc("app_jsdt.reload")
    versions, workers = _versions(port, 30)
    assert versions == {"V3 "} and len(workers) == 2, workers


def test_a_script_error_answers_500_and_logs_file_line_and_stack(
        server: tuple[KemiProcess, Path, int, int]) -> None:
    srv, script, port, _callee = server
    reply = _ask(port, "broken", "INVITE")
    assert reply.status == 500
    log = srv.log()
    assert f"{script}:26: TypeError: cannot read property 'member' of null" in log
    assert f"at fails_here ({script}:26:" in log
    assert f"at ksr_request_route ({script}:13:" in log
    # the worker goes on
    assert _ask(port, "ping").status == 200
