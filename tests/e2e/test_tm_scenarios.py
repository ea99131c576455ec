"""tm through real processes: kemi (Lua script) between SIPp callers and callees.

Serial forking from the failure route, 408 on timeouts, CANCEL, MESSAGE/OPTIONS, packet loss
and in-dialog requests routed by Record-Route. Every port is a free one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.sipp import SippUas, run_sipp

from .conftest import needs_sipp

pytestmark = [pytest.mark.e2e, pytest.mark.sipp, needs_sipp]

SCENARIOS = Path(__file__).parent / "scenarios"

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
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "app_lua.so"
modparam("tm", "fr_timer", {fr})
modparam("tm", "fr_inv_timer", {fr_inv})
modparam("tm", "wt_timer", {wt})
modparam("app_lua", "load", "{script}")
cfgengine "lua"
"""

SCRIPT = """
function ksr_request_route()
    if KSR.maxfwd.process_maxfwd(10) < 0 then
        KSR.sl.send_reply(483, "Too Many Hops")
        return
    end
    local in_dialog = KSR.pv.get("$tt") ~= nil
    if in_dialog then
        if {use_rr} then
            local lr = KSR.rr.loose_route()
            KSR.info("in-dialog " .. KSR.pv.get("$rm") .. " loose_route " .. lr .. "\\n")
        end
    else
        if {use_rr} then KSR.rr.record_route() end
        KSR.pv.sets("$du", "sip:127.0.0.1:{uas1}")
        KSR.tm.t_on_failure("ksr_failure_serial")
        KSR.tm.t_on_branch_failure("ksr_branch_failed")
    end
    if KSR.tm.t_relay() < 0 then
        KSR.sl.send_reply(500, "Server error")
    end
end

function ksr_failure_serial()
    local code = KSR.pv.get("$T_reply_code")
    KSR.info("failure route: code " .. tostring(code) .. " canceled " .. KSR.tm.t_is_canceled()
             .. " timeout " .. KSR.tm.t_branch_timeout() .. "\\n")
    if KSR.tm.t_is_canceled() > 0 then return end
    if code == 486 and {uas2} > 0 then
        KSR.pv.sets("$du", "sip:127.0.0.1:{uas2}")
        KSR.tm.t_relay()
    end
end

function ksr_branch_failed()
    KSR.info("branch failure: " .. tostring(KSR.pv.get("$T_reply_code")) .. "\\n")
end
"""


def _server(start_kemi: Callable[..., KemiProcess], tmp_path: Path, *, uas1: int, uas2: int = 0,
            fr: int = 30000, fr_inv: int = 120000, wt: int = 5000,
            use_rr: bool = False) -> tuple[KemiProcess, int]:
    port = free_port()
    script = tmp_path / "tm_test.lua"
    script.write_text(SCRIPT.format(uas1=uas1, uas2=uas2, use_rr="true" if use_rr else "false"))
    # Started means every worker is in the SO_REUSEPORT group (the control socket opens only
    # then): a worker joining later would take over flows in the middle of their transactions.
    srv = start_kemi(CFG.format(port=port, fr=fr, fr_inv=fr_inv, wt=wt, script=script))
    return srv, port


def _uac(port: int, tmp_path: Path, scenario: str | Path, calls: int, rate: float = 20,
         timeout: float = 60, extra: list[str] | None = None, name: str = "uac"):  # type: ignore[no-untyped-def]
    return run_sipp(f"127.0.0.1:{port}", tmp_path, scenario=scenario, calls=calls, rate=rate,
                    local_port=free_port(), timeout=timeout, extra=extra, name=name)


def test_486_failure_route_forks_serially_to_second_callee(
        start_kemi: Callable[..., KemiProcess], tmp_path: Path) -> None:
    uas1, uas2 = free_port(), free_port()
    srv, port = _server(start_kemi, tmp_path, uas1=uas1, uas2=uas2)
    with SippUas(tmp_path, uas1, SCENARIOS / "uas_busy.xml", name="busy"), \
            SippUas(tmp_path, uas2, "uas", name="answer"):
        result = _uac(port, tmp_path, SCENARIOS / "uac_dialog.xml", calls=30)
    log = srv.log()
    assert result.successful == 30 and result.failed == 0, (result.stdout[-2500:], log[-3000:])
    srv.wait_log("failure route: code 486", 1)
    srv.wait_log("branch failure: 486", 1)


def test_no_answer_gives_408_after_fr_inv_timer_and_cancels_downstream(
        start_kemi: Callable[..., KemiProcess], tmp_path: Path) -> None:
    uas1 = free_port()
    srv, port = _server(start_kemi, tmp_path, uas1=uas1, fr=2000, fr_inv=1500)
    with SippUas(tmp_path, uas1, SCENARIOS / "uas_ring_then_cancel.xml", calls=5,
                 name="ringer") as uas:
        result = _uac(port, tmp_path, SCENARIOS / "uac_expect_408.xml", calls=5, rate=5)
        callee = uas.wait()  # the callee's last CANCEL/487/ACK may come after the caller's end
    log = srv.log()
    assert result.successful == 5 and result.failed == 0, (result.stdout[-2500:], log[-3000:])
    assert int(callee.get("SuccessfulCall(C)", 0)) == 5  # each got its CANCEL and ACKed 487
    srv.wait_log("failure route: code 408 canceled -1 timeout 1", 1)


def test_no_reply_at_all_gives_408_after_fr_timer(
        start_kemi: Callable[..., KemiProcess], tmp_path: Path) -> None:
    silent = free_port()  # nothing listens there
    srv, port = _server(start_kemi, tmp_path, uas1=silent, fr=1500)
    result = _uac(port, tmp_path, SCENARIOS / "uac_expect_408.xml", calls=3, rate=3)
    assert result.successful == 3, (result.stdout[-2500:], srv.log()[-3000:])


def test_caller_cancel_gives_487_and_cancel_downstream(
        start_kemi: Callable[..., KemiProcess], tmp_path: Path) -> None:
    uas1 = free_port()
    srv, port = _server(start_kemi, tmp_path, uas1=uas1)
    with SippUas(tmp_path, uas1, SCENARIOS / "uas_ring_then_cancel.xml", calls=20,
                 name="ringer") as uas:
        result = _uac(port, tmp_path, SCENARIOS / "uac_cancel.xml", calls=20)
        callee = uas.wait()  # the callee's last CANCEL/487/ACK may come after the caller's end
    log = srv.log()
    assert result.successful == 20 and result.failed == 0, (result.stdout[-2500:], log[-3000:])
    assert int(callee.get("SuccessfulCall(C)", 0)) == 20
    srv.wait_log("failure route: code 487 canceled 1", 1)


def test_message_and_options_through_tm(start_kemi: Callable[..., KemiProcess],
                                        tmp_path: Path) -> None:
    uas1 = free_port()
    srv, port = _server(start_kemi, tmp_path, uas1=uas1)
    with SippUas(tmp_path, uas1, SCENARIOS / "uas_message_options.xml", name="mo"):
        result = _uac(port, tmp_path, SCENARIOS / "uac_message_options.xml", calls=50, rate=50)
        assert result.successful == 50 and result.failed == 0, \
            (result.stdout[-2500:], srv.log()[-3000:])
        stats = srv.wait_tm_settled(100)
    assert stats["created"] >= 100 and stats["2xx"] >= 100


#: SIPp's error log line for a call it gave up: "Aborting call on <why> for Call-Id '<id>'".
_ABORTED = re.compile(r"Aborting call on (unexpected message|UDP retransmission timeout) "
                      r"for Call-I[dD] '([^']+)'")


def _aborted_calls(errors: Path, why: str | None = None) -> set[str]:
    """The Call-IDs a SIPp instance aborted (for ``why`` only, if given), from its -error_file."""
    text = errors.read_text(errors="replace") if errors.exists() else ""
    return {m[2] for m in _ABORTED.finditer(text) if why is None or m[1] == why}


@pytest.mark.soak
def test_calls_complete_with_10_percent_packet_loss(start_kemi: Callable[..., KemiProcess],
                                                    tmp_path: Path) -> None:
    uas1 = free_port()
    # wt_timer as RFC 3261 Timer J (64*T1): Kamailio's 5 s default is shorter than the time a
    # caller keeps retransmitting a BYE whose 200s it keeps losing; past it a late
    # retransmission is a new transaction (as in Kamailio).
    srv, port = _server(start_kemi, tmp_path, uas1=uas1, wt=32000)
    with SippUas(tmp_path, uas1, SCENARIOS / "uas_lossy.xml", name="lossy_uas",
                 extra=["-lost", "10"]):
        result = _uac(port, tmp_path, SCENARIOS / "uac_dialog.xml", calls=50, rate=10, timeout=120,
                      extra=["-lost", "10"])
    evidence = (result.stdout[-2500:], srv.log()[-3000:])
    assert result.successful + result.failed == 50, evidence
    # Every call must complete but those SIPp's callee gave up by its own scenario rules: it is
    # a scenario, not a transaction layer, and aborts a call on a message that crosses its
    # state (the proxy's INVITE retransmission after a lost 180 and 200 racing our ACK, or
    # arriving where SIPp expects the ACK: uas_lossy.xml). A call kemi loses (no relay, no
    # retransmission, a wrong 408) is in the caller's log and not among the callee's aborts.
    failed = _aborted_calls(tmp_path / "uac_errors.log")
    callee_rule = _aborted_calls(tmp_path / "lossy_uas_errors.log", "unexpected message")
    assert len(failed) == result.failed, (sorted(failed), evidence)
    assert not failed - callee_rule, (sorted(failed - callee_rule), evidence)
    # That rule needs the callee's 180 and 200 both lost (1% of calls at 10% loss) and then a
    # crossing: 3 calls in 1,500 here (2 in 500 before uas_lossy.xml resent its 200 on the
    # INVITE retransmission); 4 or more of 50 calls is no chance (p < 0.001 at 0.4% a call).
    assert len(failed) <= 3, (sorted(failed), evidence)


def test_in_dialog_requests_follow_record_route(start_kemi: Callable[..., KemiProcess],
                                                tmp_path: Path) -> None:
    uas1 = free_port()
    srv, port = _server(start_kemi, tmp_path, uas1=uas1, use_rr=True)
    with SippUas(tmp_path, uas1, SCENARIOS / "uas_dialog.xml", name="rr_uas"):
        result = _uac(port, tmp_path, SCENARIOS / "uac_dialog.xml", calls=20)
    assert result.successful == 20 and result.failed == 0, (result.stdout[-2500:], srv.log()[-3000:])
    log = srv.wait_log("in-dialog BYE loose_route 1", 20)
    assert log.count("in-dialog ACK loose_route 1") == 20
    assert "loose_route -1" not in log


def test_rpc_t_uac_start_sends_a_request_statefully(start_kemi: Callable[..., KemiProcess],
                                                   tmp_path: Path) -> None:
    import socket

    from kemi_core.sip import build_reply, parse_datagram

    srv, _ = _server(start_kemi, tmp_path, uas1=free_port())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as callee:
        callee.bind(("127.0.0.1", 0))
        callee.settimeout(5)
        target = f"sip:probe@127.0.0.1:{callee.getsockname()[1]}"
        answer = srv.rpc("tm.t_uac_start", "OPTIONS", target, ".", ".", "X-From-Rpc: yes\r\n")
        assert answer["sent"] is True
        first, addr = callee.recvfrom(65535)
        req = parse_datagram(first)
        assert req.method == "OPTIONS" and req.header("X-From-Rpc") == "yes"
        callee.sendto(build_reply(req, 200, "OK", to_tag="p"), addr)
        callee.settimeout(1.5)
        try:  # no retransmission once the 200 arrived (T1 is 0.5 s)
            again = callee.recvfrom(65535)[0]
        except TimeoutError:
            again = b""
    assert again == b""
    srv.wait_log("tm: local OPTIONS request got 200", 1)
