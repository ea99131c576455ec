"""The Lua engine's C bridge (KSR calls as Lua C closures, route runs as C calls) against
lupa's path (``KEMI_LUA_CBRIDGE=0``, the reference), end to end: the same script on a real
server each way, the same requests over UDP, and the same replies on the wire, the same log
lines (script errors with their file:line) and the same counters, through the error cases:
KSR.x.exit, KSR.x.drop, a Python exception raised by an export's binding (a wrong argument, a
wrong argument count), an argument only lupa converts (a table), an unknown function, and the
script reloaded in the running worker."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.udp_client import UdpClient, request

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=1
auto_aliases=no
listen=udp:127.0.0.1:{port}
loadmodule "sl.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "app_lua.so"
modparam("app_lua", "load", "{script}")
cfgengine "lua"
"""

SCRIPT = """
function ksr_request_route()
    if KSR.maxfwd.process_maxfwd(10) < 0 then
        KSR.sl.send_reply(483, "Too Many Hops")
        return
    end
    local case = KSR.pv.get("$rU")
    KSR.xlog.xinfo("VERSION case $rU from $si cseq $cs\\n")
    if KSR.is_OPTIONS() then
        KSR.sl.send_reply(200, "OK " .. (case or "probe"))
        return
    end
    if case == "exit" then
        KSR.sl.send_reply(202, "exiting")
        KSR.x.exit()
    elseif case == "drop" then
        KSR.x.drop()
    elseif case == "table" then
        KSR.pv.sets("$var(x)", {})
    elseif case == "wrongtype" then
        KSR.sl.send_reply("two hundred", "OK")
    elseif case == "wrongcount" then
        KSR.sl.send_reply(200)
    elseif case == "unknown" then
        KSR.nosuch.func()
    elseif case == "edit" then
        KSR.textops.remove_hf("Subject")
        KSR.pv.sets("$var(n)", "caf\\xc3\\xa9 " .. KSR.pv.get("$hdr(X-Value)"))
        KSR.sl.send_reply(200, KSR.pv.get("$var(n)") .. " " .. tostring(KSR.is_method_in("IM")))
        return
    end
    KSR.sl.send_reply(404, "Not here " .. (case or "nil"))
end
"""

CASES = ["plain", "exit", "drop", "table", "wrongtype", "wrongcount", "unknown", "edit",
         "plain"]


def _normalise(data: bytes) -> str:
    """A datagram without what differs from run to run (branch, tags, ports, Call-ID)."""
    text = data.decode("utf-8", "replace")
    text = re.sub(r"branch=[^;\r\n]+", "branch=B", text)
    text = re.sub(r";tag=[^;\r\n>]+", ";tag=T", text)
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:P", text)
    text = re.sub(r"rport=\d+", "rport=P", text)
    return text


def _exchange(port: int, method: str, case: str, n: int) -> list[str]:
    """What the server sent back for one request: every datagram until the answer to the
    OPTIONS probe that follows it (one worker: the probe is handled after the request)."""
    with UdpClient() as ua:
        ua.send(request(method, f"sip:{case}@127.0.0.1:{port}", ua.port, cseq=n,
                        call_id=f"case-{n}", extra="Subject: s\r\nX-Value: v"), port)
        ua.send(request("OPTIONS", f"sip:probe@127.0.0.1:{port}", ua.port, cseq=n,
                        call_id=f"probe-{n}"), port)
        got: list[str] = []
        for _ in range(10):
            data = ua.recv(10)
            assert data is not None, f"no answer to the probe after {case}"
            if b"probe-" in data:
                return got
            got.append(_normalise(data))
    raise AssertionError(f"{case}: the probe's answer never came")


def _log_lines(log: str) -> list[str]:
    """The worker's log lines of the script and the engine, without times and pids."""
    out = []
    for line in log.splitlines():
        if re.search(r"v\d case|app_lua|ERROR|error", line):
            line = re.sub(r"^.*?(INFO|ERROR|WARNING|NOTICE|DEBUG|CRITICAL)", r"\1", line)
            out.append(re.sub(r"\[\d+\]", "[PID]", line))
    return out


def _run(start_kemi: Callable[..., KemiProcess], tmp_path: Path, env: dict[str, str]) -> Any:
    port = free_port()
    script = tmp_path / "route.lua"
    script.write_text(SCRIPT.replace("VERSION", "v1"))
    srv = start_kemi(CFG.format(port=port, script=script), env=env)
    replies = [_exchange(port, "MESSAGE", case, n) for n, case in enumerate(CASES)]
    script.write_text(SCRIPT.replace("VERSION", "v2"))
    srv.rpc("app_lua.reload")
    replies += [_exchange(port, "MESSAGE", case, 100 + n) for n, case in enumerate(CASES)]
    stats = srv.rpc("stats.get_statistics", "sl:", "core:")
    srv.stop()
    log = _log_lines(srv.log().replace(str(tmp_path), "DIR"))
    return replies, log, stats


def test_c_bridge_and_lupa_path_answer_and_log_the_same(
        start_kemi: Callable[..., KemiProcess], tmp_path: Path) -> None:
    (tmp_path / "lupa").mkdir()
    (tmp_path / "c").mkdir()
    reference = _run(start_kemi, tmp_path / "lupa", {"KEMI_LUA_CBRIDGE": "0"})
    bridged = _run(start_kemi, tmp_path / "c", {})
    assert bridged[0] == reference[0]
    assert bridged[1] == reference[1]
    assert bridged[2] == reference[2]
    replies, log, _ = reference
    firsts = [r[0].split("\r\n", 1)[0] if r else None for r in replies]
    # the reference says what the cases are (the comparison is not of two blanks)
    failed = "SIP/2.0 500 Server Internal Error"
    assert firsts[:9] == ["SIP/2.0 404 Not here plain", "SIP/2.0 202 exiting", None, failed,
                          failed, failed, failed, "SIP/2.0 200 café v true",
                          "SIP/2.0 404 Not here plain"]
    assert firsts[9:] == firsts[:9]  # after the reload
    text = "\n".join(log)
    for line, why in ((19, "got _LuaTable"), (21, "got string 'two hundred'"),
                      (23, "expected 2 arguments, got 1"), (25, "field 'nosuch'")):
        assert f"DIR/route.lua:{line}: " in text and why in text, text
    assert "v2 case plain" in text
    assert "core:rcv_requests = 36" in reference[2] and "sl:sent_replies = 26" in reference[2]
