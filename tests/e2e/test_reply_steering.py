"""Several workers send from the listen port, as Kamailio does, and each reply still reaches the
worker holding its transaction (issues 14, 17).

children=2 and 4, SIPp calls relayed by tm to SIPp callees on several ports, chosen so that
the kernel's SO_REUSEPORT hash sends their datagrams to other workers than the caller's (the
one holding the calls' transactions): every call completes and tm relays every reply (no
reply forwarded statelessly). With the kernel's steering program (``transport.steer``) no
reply needs the mailbox; without it (``KEMI_REPLY_STEERING=off``) the replies that reached
another worker are handed over (``kemi:replies_handed_over``) and the calls complete all the
same. The INVITE a callee gets comes from the listen port with the Via one worker writes
(Kamailio's: tests/e2e/test_send_socket_vs_kamailio.py)."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from kemi_core.sip import parse_datagram
from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.sipp import SippUas, run_sipp, sipp_available
from kemi_core.testing.udp_client import request

from .ops_helpers import assert_no_traceback, port_served_by_other, serving_pid, workers_ready

pytestmark = [pytest.mark.e2e, pytest.mark.sipp,
              pytest.mark.skipif(not sipp_available(), reason="SIPp is not installed")]

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
children={children}
listen=udp:127.0.0.1:{port}
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "app_lua.so"
modparam("app_lua", "load", "{script}")
cfgengine "lua"
"""

# the callee's port is the R-URI's user: uas<port>
LUA = """
function ksr_request_route()
    if KSR.hdr.is_present("X-Probe") > 0 then
        KSR.sl.send_reply(200, "pid " .. KSR.pv.get("$pp"))
        return
    end
    local user = KSR.pv.get("$rU") or ""
    KSR.pv.sets("$du", "sip:127.0.0.1:" .. string.sub(user, 4))
    KSR.tm.t_relay()
end
"""

CALLS = 4
VIA = re.compile(r"SIP/2\.0/UDP 127\.0\.0\.1:(\d+);branch=z9hG4bK[A-Za-z0-9.]+")


def start(start_kemi: Callable[..., KemiProcess], tmp_path: Path, children: int,
          steering: bool) -> tuple[KemiProcess, int]:
    port = free_port()
    script = tmp_path / "relay.lua"
    script.write_text(LUA)
    env = {} if steering else {"KEMI_REPLY_STEERING": "off"}
    srv = start_kemi(CFG.format(children=children, port=port, script=script), env=env)
    workers_ready(srv, children)
    return srv, port


def callee_ports(port: int, caller_pid: int, count: int) -> list[int]:
    """Free ports whose datagrams the kernel's hash gives to a worker other than the caller's."""
    found: list[int] = []
    while len(found) < count:
        candidate = port_served_by_other(port, caller_pid)
        if candidate not in found:
            found.append(candidate)
    return found


@pytest.mark.parametrize("children", [2, 4])
@pytest.mark.parametrize("steering", [True, False], ids=["kernel", "mailbox"])
def test_replies_from_other_flows_reach_the_transaction_worker(
        start_kemi: Callable[..., KemiProcess], tmp_path: Path, children: int,
        steering: bool) -> None:
    srv, port = start(start_kemi, tmp_path, children, steering)
    caller_port = free_port()
    caller_pid = serving_pid(port, caller_port)
    uases = [SippUas(tmp_path, p, "uas", calls=CALLS, name=f"uas{p}")
             for p in callee_ports(port, caller_pid, 3)]
    try:
        for uas in uases:
            uas.start()
        for uas in uases:
            result = run_sipp(f"127.0.0.1:{port}", tmp_path, scenario="uac", calls=CALLS,
                              rate=20, local_port=caller_port, timeout=30,
                              name=f"uac{uas.port}", extra=["-s", f"uas{uas.port}"])
            assert (result.successful, result.failed) == (CALLS, 0), srv.log()[-3000:]
        done = [uas.wait(30) for uas in uases]
    finally:
        for uas in uases:
            uas.stop()
    assert [d.get("SuccessfulCall(C)") for d in done] == [str(CALLS)] * len(uases)
    tm = srv.wait_tm_settled(2 * CALLS * len(uases))  # each call's INVITE and BYE
    assert tm["2xx"] >= 2 * CALLS * len(uases), tm
    stats = srv.rpc("stats.get_statistics", "core:fwd_replies", "kemi:replies_handed_over")
    counts = {line.split(" = ")[0]: int(line.split(" = ")[1]) for line in stats}
    assert counts["core:fwd_replies"] == 0, counts  # every reply relayed by its transaction
    handed = counts["kemi:replies_handed_over"]
    # each callee's 180, 200 (INVITE) and 200 (BYE) reached another worker by the hash
    assert handed == 0 if steering else handed >= 3 * CALLS * len(uases), counts
    assert_no_traceback(srv)


@pytest.mark.parametrize("children", [1, 2])
def test_a_relayed_request_leaves_from_the_listen_port_with_one_workers_via(
        start_kemi: Callable[..., KemiProcess], tmp_path: Path, children: int) -> None:
    srv, port = start(start_kemi, tmp_path, children, True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as callee, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as caller:
        callee.bind(("127.0.0.1", 0))
        caller.bind(("127.0.0.1", 0))
        callee.settimeout(5)
        seen = []
        for n in range(4):
            me = caller.getsockname()[1]
            caller.sendto(request("OPTIONS", f"sip:uas{callee.getsockname()[1]}@127.0.0.1",
                                  me, call_id=f"via-{n}"), ("127.0.0.1", port))
            data, (_, src_port) = callee.recvfrom(65535)
            assert parse_datagram(data).call_id == f"via-{n}"
            top = next(line for line in data.decode().split("\r\n") if line.startswith("Via: "))
            found = VIA.fullmatch(top[len("Via: "):])
            seen.append((src_port, found.group(1) if found else top))
    # the listen port, named in a Via with nothing but the branch (no worker parameter)
    assert seen == [(port, str(port))] * 4, (seen, srv.log()[-2000:])
