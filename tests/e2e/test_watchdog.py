"""The watchdog: a worker stuck on one message (a Lua or Python route that never returns) is
reported with its route and file:line, killed and replaced, while SIPp calls go on through
the other worker; core.workers tells why. A worker past worker_rss_limit is recycled."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.sipp import SippUas, run_sipp
from kemi_core.testing.wait import wait_until

from .conftest import needs_sipp
from .ops_helpers import (
    assert_no_traceback,
    options,
    port_served_by_other,
    serving_pid,
    udp_ask,
    workers_ready,
)

pytestmark = [pytest.mark.e2e]

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=2
watchdog_timeout=2
listen=udp:127.0.0.1:{port}
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "{engine_mod}"
modparam("{engine}", "load", "{script}")
cfgengine "{engine_name}"
"""

LUA = """
function ksr_request_route()
    if KSR.hdr.is_present("X-Stuck") > 0 then
        local n = 0
        while true do
            n = n + 1
        end
    end
    if KSR.hdr.is_present("X-Probe") > 0 then
        KSR.sl.send_reply(200, "pid " .. KSR.pv.get("$pp"))
        return
    end
    KSR.pv.sets("$du", "sip:127.0.0.1:{uas}")
    KSR.tm.t_relay()
end
"""

PYTHON = """
import KSR


class Router:
    def ksr_request_route(self, msg):
        if KSR.hdr.is_present("X-Stuck") > 0:
            n = 0
            while True:
                n += 1
        if KSR.hdr.is_present("X-Probe") > 0:
            KSR.sl.send_reply(200, "pid %d" % KSR.pv.get("$pp"))
            return 1
        KSR.pv.sets("$du", "sip:127.0.0.1:{uas}")
        KSR.tm.t_relay()
        return 1


def mod_init():
    return Router()
"""

ENGINES = {
    # engine: loadmodule, modparam module, cfgengine, script, file name, the loop's lines
    "lua": ("app_lua.so", "app_lua", "lua", LUA, "stuck.lua", (5, 6)),
    "python": ("app_python3.so", "app_python3", "python", PYTHON, "stuck.py", (9, 10)),
}


@needs_sipp
@pytest.mark.sipp
@pytest.mark.parametrize("engine", ["lua", "python"])
def test_stuck_route_is_killed_and_replaced_while_calls_go_on(
        engine: str, start_kemi: Callable[..., KemiProcess], tmp_path: Path) -> None:
    mod, param_mod, name, source, filename, loop_lines = ENGINES[engine]
    port, uas, uac_port = free_port(), free_port(), free_port()
    script = tmp_path / filename
    script.write_text(source.replace("{uas}", str(uas)))
    srv = start_kemi(CFG.format(port=port, engine_mod=mod, engine=param_mod, script=script,
                                engine_name=name))
    workers_ready(srv, 2)
    caller_pid = serving_pid(port, uac_port)
    stuck_port = port_served_by_other(port, caller_pid)
    with SippUas(tmp_path, uas, "uas", name="callee"):
        import threading

        result: list[object] = []
        calls = threading.Thread(target=lambda: result.append(run_sipp(
            f"127.0.0.1:{port}", tmp_path, scenario="uac", calls=60, rate=10,
            local_port=uac_port, timeout=60, name="caller")))
        calls.start()
        # Calls are flowing (transactions through tm), then the other worker is pinned.
        wait_until(lambda: srv.rpc("tm.stats")["created"] >= 2, 20, "calls through tm")
        sent_at = time.monotonic()
        udp_ask(port, options(port, stuck_port, "X-Stuck: 1"), timeout=0.1)
        log = srv.wait_log("watchdog: worker", timeout=20)
        def replaced() -> bool:
            report = srv.rpc("core.workers")
            return report["totals"]["watchdog_kills"] == 1 and all(
                w["state"] == "ready" and w["pid"] for w in report["workers"])
        wait_until(replaced, 15, "the stuck worker replaced")
        recovered_at = time.monotonic()
        calls.join(timeout=90)
    res = result[0]
    assert res.successful == 60 and res.failed == 0, (res.stdout[-2000:], srv.log()[-3000:])  # type: ignore[attr-defined]
    line = next(x for x in log.splitlines() if "watchdog: worker" in x)
    where = re.search(rf"{name} route ksr_request_route at {re.escape(str(script))}:(\d+);", line)
    assert where is not None and int(where.group(1)) in loop_lines, line
    assert re.search(r"spent [0-9.]+ s on one message", line), line
    report = srv.rpc("core.workers")
    last = [w["last_restart"] for w in report["workers"] if w["last_restart"]]
    assert len(last) == 1 and last[0]["reason"] == "watchdog"
    assert f"{script}:{where.group(1)}" in last[0]["detail"]
    assert report["totals"]["watchdog_kills"] == 1 and report["totals"]["restarts"] == 1
    # service is back for the flow that was stuck
    reply = udp_ask(port, options(port, stuck_port, "X-Probe: 1"))
    assert reply is not None and reply.startswith(b"SIP/2.0 200 pid ")
    print(f"\n{engine}: stuck at +0.00 s, replaced at +{recovered_at - sent_at:.2f} s "
          f"(watchdog_timeout 2 s)")
    assert_no_traceback(srv)


LEAK_CFG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=2
worker_rss_limit={limit}
listen=udp:127.0.0.1:{port}
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "app_lua.so"
modparam("app_lua", "load", "{script}")
cfgengine "lua"
"""

LEAK_LUA = """
leak = {}
function ksr_request_route()
    if KSR.hdr.is_present("X-Leak") > 0 then
        for i = 1, 200000 do leak[#leak + 1] = "some text " .. #leak end
    end
    KSR.sl.send_reply(200, "pid " .. KSR.pv.get("$pp"))
end
"""


def test_worker_over_rss_limit_is_recycled(start_kemi: Callable[..., KemiProcess],
                                           tmp_path: Path) -> None:
    port = free_port()
    script = tmp_path / "leak.lua"
    script.write_text(LEAK_LUA)
    srv = start_kemi(LEAK_CFG.format(port=port, script=script, limit=80))
    workers_ready(srv, 2)
    before = {w["rank"]: w["pid"] for w in srv.rpc("core.workers")["workers"]}
    local = free_port()
    pid = serving_pid(port, local)
    asked = "over worker_rss_limit 80 MB: replacing it once its transactions are done"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", local))  # the same flow: the same worker grows
        for _ in range(10):  # ~15 MB of Lua strings each, until the supervisor notices
            reply = udp_ask(port, options(port, local, "X-Leak: 1"), sock, timeout=10)
            assert reply is not None
            if asked in srv.log():
                break
    srv.wait_log(asked)
    assert f"(pid {pid}) uses" in srv.log()
    def recycled() -> bool:
        report = srv.rpc("core.workers")
        return (report["totals"]["memory_recycles"] == 1
                and pid not in {w["pid"] for w in report["workers"]}
                and all(w["state"] == "ready" for w in report["workers"]))
    wait_until(recycled, 15, "the recycled worker replaced")
    after = srv.rpc("core.workers")
    rank = next(r for r, p in before.items() if p == pid)
    entry = next(w for w in after["workers"] if w["rank"] == rank)
    assert entry["last_restart"]["reason"] == "memory"
    assert entry["rss_mb"] is None or entry["rss_mb"] < 80
    assert udp_ask(port, options(port, free_port())) is not None
    assert_no_traceback(srv)


def test_a_stopped_worker_is_replaced(start_kemi: Callable[..., KemiProcess],
                                      tmp_path: Path) -> None:
    """SIGSTOP: no message in progress, but its loop no longer turns (no heartbeat)."""
    port = free_port()
    script = tmp_path / "stuck.lua"
    script.write_text(LUA.replace("{uas}", str(free_port())))
    srv = start_kemi(CFG.format(port=port, engine_mod="app_lua.so", engine="app_lua",
                                script=script, engine_name="lua"))
    workers_ready(srv, 2)
    victim = srv.rpc("core.workers")["workers"][0]
    os.kill(victim["pid"], signal.SIGSTOP)
    try:
        srv.wait_log(f"watchdog: worker {victim['rank']} (pid {victim['pid']}) has not run its "
                     "event loop", timeout=20)
    finally:
        try:
            os.kill(victim["pid"], signal.SIGCONT)
        except ProcessLookupError:
            pass
    def replaced() -> dict[str, Any] | None:
        entry = next(w for w in srv.rpc("core.workers")["workers"] if w["rank"] == victim["rank"])
        return entry if entry["pid"] not in (0, victim["pid"]) and entry["state"] == "ready" \
            else None
    entry = wait_until(replaced, 15, "the stopped worker replaced")
    assert entry["last_restart"]["reason"] == "watchdog"
    assert "no heartbeat" in entry["last_restart"]["detail"]
    assert udp_ask(port, options(port, free_port(), "X-Probe: 1")) is not None
    assert_no_traceback(srv)


OUTSIDE_PY = """
import asyncio
import time

import KSR


def spin():
    n = 0
    while True:
        n += 1


def block():
    time.sleep(3600)


class Router:
    def ksr_request_route(self, msg):
        # the callback runs after this message, on the worker's loop: no message is in progress
        if KSR.hdr.is_present("X-Spin") > 0:
            asyncio.get_event_loop().call_soon(spin)
        elif KSR.hdr.is_present("X-Block") > 0:
            asyncio.get_event_loop().call_soon(block)
        KSR.sl.send_reply(200, "pid %d" % KSR.pv.get("$pp"))
        return 1


def mod_init():
    return Router()
"""


@pytest.mark.parametrize("how", ["X-Spin", "X-Block"])
def test_a_loop_stuck_outside_a_message_is_replaced(how: str,
                                                    start_kemi: Callable[..., KemiProcess],
                                                    tmp_path: Path) -> None:
    """A callback on the worker's loop that never returns (a Python loop, a blocking call):
    no message is in progress and the worker no longer waits for events."""
    port = free_port()
    script = tmp_path / "outside.py"
    script.write_text(OUTSIDE_PY)
    srv = start_kemi(CFG.format(port=port, engine_mod="app_python3.so", engine="app_python3",
                                script=script, engine_name="python"))
    workers_ready(srv, 2)
    local = free_port()
    pid = serving_pid(port, local)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", local))  # the same flow: the same worker
        reply = udp_ask(port, options(port, local, f"{how}: 1"), sock)
    assert reply is not None and reply.startswith(f"SIP/2.0 200 pid {pid}".encode())
    srv.wait_log(f"(pid {pid}) has not run its event loop", timeout=20)
    def replaced() -> dict[str, Any] | None:
        for entry in srv.rpc("core.workers")["workers"]:
            last = entry["last_restart"]
            if last and last["pid"] == pid and entry["pid"] and entry["state"] == "ready":
                return dict(entry)
        return None
    entry = wait_until(replaced, 15, "the stuck worker replaced")
    assert entry["last_restart"]["reason"] == "watchdog"
    assert "no heartbeat" in entry["last_restart"]["detail"]
    assert serving_pid(port, local) == entry["pid"]  # its flow is served again
    assert_no_traceback(srv)


IDLE_CFG = CFG.replace("watchdog_timeout=2", "watchdog_timeout=1")


def test_idle_workers_sleep_through_several_watchdog_periods(
        start_kemi: Callable[..., KemiProcess], tmp_path: Path) -> None:
    """An idle worker is not woken to beat, and the watchdog leaves it alone: the kernel says
    it waits for events."""
    port = free_port()
    script = tmp_path / "idle.lua"
    script.write_text(LUA.replace("{uas}", str(free_port())))
    srv = start_kemi(IDLE_CFG.format(port=port, engine_mod="app_lua.so", engine="app_lua",
                                     script=script, engine_name="lua"))
    workers_ready(srv, 2)
    before = {w["rank"]: w["pid"] for w in srv.rpc("core.workers")["workers"]}
    assert udp_ask(port, options(port, free_port(), "X-Probe: 1")) is not None
    def slept() -> bool:  # no heartbeat for five watchdog periods: not woken, not killed
        workers = srv.rpc("core.workers")["workers"]
        return all(w["beat_age"] is not None and w["beat_age"] >= 5.0 for w in workers)
    wait_until(slept, 30, "workers idle for five watchdog periods")
    report = srv.rpc("core.workers")
    assert report["totals"]["watchdog_kills"] == 0 and report["totals"]["restarts"] == 0
    assert {w["rank"]: w["pid"] for w in report["workers"]} == before
    assert "watchdog:" not in srv.log()
    assert udp_ask(port, options(port, free_port(), "X-Probe: 1")) is not None
    assert_no_traceback(srv)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3] == b"Z"  # exited, not yet reaped


def test_workers_stop_when_the_main_process_dies(start_kemi: Callable[..., KemiProcess],
                                                 tmp_path: Path) -> None:
    """No worker polls its parent: the kernel rings its doorbell when the main process dies."""
    port = free_port()
    script = tmp_path / "orphan.lua"
    script.write_text(LUA.replace("{uas}", str(free_port())))
    srv = start_kemi(CFG.format(port=port, engine_mod="app_lua.so", engine="app_lua",
                                script=script, engine_name="lua"))
    workers_ready(srv, 2)
    pids = [w["pid"] for w in srv.rpc("core.workers")["workers"]]
    assert srv.proc is not None
    srv.proc.kill()
    srv.proc.wait(timeout=10)
    wait_until(lambda: all(_gone(pid) for pid in pids), 15, "the workers gone")
    srv.wait_log("the main process is gone; stopping", count=2)
