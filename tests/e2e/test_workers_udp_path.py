"""Several workers take a lone worker's UDP path: a children=2 server answers SIPp's REGISTERs
and calls, and every request reaches the script from the compiled read-ahead event
(``_fast.udp_event`` called by the loop itself: no Python frame of udp.py under the route),
its shared listen socket reading a burst's datagrams ahead (their sends held by the outbox
while the burst is routed), as one worker's listen socket does.

The script says what it sees on its own stack and in the outbox module, per request, in a log
line: the worker's real state while it routes."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.sipp import SippUas, run_sipp, sipp_available
from kemi_core.testing.udp_client import UdpClient, request

pytestmark = [pytest.mark.e2e, pytest.mark.sipp,
              pytest.mark.skipif(not sipp_available(), reason="SIPp is not installed")]

BASIC = Path(__file__).parent / "scenarios" / "basic_example"

CFG = """#!KAMAILIO
children=2
listen=udp:127.0.0.1:{port}
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "app_python3.so"
modparam("app_python3", "load", "{script}")
cfgengine "python"
"""

SCRIPT = """
import sys
import time

import KSR
from kemi_core.transport import outbox


def udp_frames():
    # the functions of kemi_core/transport/udp.py on the stack under this route
    names, frame = [], sys._getframe()
    while frame is not None:
        if frame.f_code.co_filename.endswith("transport/udp.py"):
            names.append(frame.f_code.co_name)
        frame = frame.f_back
    return ",".join(names) or "none"


class Handler:
    def ksr_request_route(self, msg):
        held = "held" if outbox.holding is not None else "alone"
        KSR.info("UDPPATH %s frames=%s %s pid=%s\\n" % (KSR.pv.get("$rm"), udp_frames(), held,
                                                      KSR.pv.get("$pp")))
        if KSR.pv.get("$tt") is not None:
            if KSR.rr.loose_route() > 0:
                KSR.tm.t_relay()
            elif KSR.is_ACK():
                KSR.tm.t_check_trans()
            else:
                KSR.sl.send_reply(404, "Not here")
            return 1
        if KSR.is_REGISTER():
            KSR.registrar.save("location", 0)
            return 1
        if KSR.is_OPTIONS():
            KSR.sl.send_reply(200, "Fine")
            pause = KSR.hdr.get("X-Sleep")
            if pause:  # answered, then the worker pauses
                time.sleep(float(pause))
            return 1
        if KSR.is_INVITE():
            KSR.rr.record_route()
        if KSR.registrar.lookup("location") < 0:
            KSR.sl.send_reply(404, "Not Found")
            return 1
        KSR.tm.t_relay()
        return 1


def mod_init():
    return Handler()
"""

LINE = re.compile(r"UDPPATH (\S+) frames=(\S+) (held|alone) pid=(\d+)")


def test_two_workers_answer_sipp_from_the_compiled_read_ahead_event(
        start_kemi: Callable[..., KemiProcess], tmp_path: Path, port: int) -> None:
    script = tmp_path / "path.py"
    script.write_text(SCRIPT)
    proc = start_kemi(CFG.format(port=port, script=script))
    uas_port = free_port()
    registers = run_sipp(f"127.0.0.1:{port}", tmp_path, scenario=BASIC / "register.xml",
                         calls=20, rate=50, timeout=30, name="register",
                         extra=["-s", "alice", "-key", "uas_port", str(uas_port),
                                "-key", "expires", "600"])
    assert (registers.successful, registers.failed) == (20, 0), proc.log()[-3000:]
    with SippUas(tmp_path, uas_port, BASIC / "call_uas.xml", calls=5, name="callee",
                 extra=["-s", "alice"]) as uas:
        calls = run_sipp(f"127.0.0.1:{port}", tmp_path, scenario=BASIC / "call_uac.xml",
                         calls=5, rate=10, timeout=30, name="caller", extra=["-s", "alice"])
        callee = uas.wait(30)
    assert (calls.successful, calls.failed) == (5, 0), proc.log()[-3000:]
    assert callee.get("SuccessfulCall(C)") == "5"
    # a burst from one socket (one worker: the kernel hashes its flow to one of them) that
    # waits while the worker pauses in the first request: one event reads it all
    with UdpClient() as ua:
        ua.send(request("OPTIONS", f"sip:first@127.0.0.1:{port}", ua.port,
                        extra="X-Sleep: 0.3\r\n"), port)
        assert ua.recv_final(5) is not None
        for n in range(4):
            ua.send(request("OPTIONS", f"sip:b{n}@127.0.0.1:{port}", ua.port), port)
        assert all(ua.recv_final(5) is not None for _ in range(4))
    seen = LINE.findall(proc.log())
    methods = {method for method, *_ in seen}
    assert {"REGISTER", "INVITE", "ACK", "BYE", "OPTIONS"} <= methods, methods
    # every request from the compiled event, in both workers alike
    assert {frames for _, frames, _, _ in seen} == {"none"}, seen
    burst = [held for method, _, held, _ in seen[-4:] if method == "OPTIONS"]
    assert burst == ["held"] * 4, seen[-5:]
