"""Signals: SIGHUP never stops the server; SIGTERM stops it at once when idle, and under load
lets the transactions in progress finish (new requests get 503, retransmissions of requests in
progress are tm's) before it exits; the pid file and the control socket are gone afterwards. A worker killed by a signal is replaced and
its transactions leave tm.stats' "current"."""

from __future__ import annotations

import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.sipp import SippUas, run_sipp
from kemi_core.testing.udp_client import request
from kemi_core.testing.wait import wait_until

from .conftest import needs_sipp
from .ops_helpers import assert_no_traceback, options, workers_ready

pytestmark = [pytest.mark.e2e]

SCENARIOS = Path(__file__).parent / "scenarios"

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=2
listen=udp:127.0.0.1:{port}
listen=tcp:127.0.0.1:{port}
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "app_lua.so"
modparam("tm", "fr_timer", 3000)
modparam("tm", "fr_inv_timer", 5000)
modparam("app_lua", "load", "{script}")
cfgengine "lua"
"""

SCRIPT = """
function ksr_request_route()
    if KSR.is_OPTIONS() then
        KSR.sl.send_reply(200, "OK")
        return
    end
    KSR.pv.sets("$du", "sip:127.0.0.1:{uas}")
    KSR.tm.t_relay()
end
"""


def _start(start_kemi: Callable[..., KemiProcess], tmp_path: Path, uas: int,
           args: list[str] | None = None) -> tuple[KemiProcess, int]:
    port = free_port()
    script = tmp_path / "route.lua"
    script.write_text(SCRIPT.replace("{uas}", str(uas)))
    srv = start_kemi(CFG.format(port=port, script=script), args=args)
    workers_ready(srv, 2)
    return srv, port


def _stop_timed(srv: KemiProcess) -> tuple[int | None, float]:
    assert srv.proc is not None
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    code = srv.proc.wait(timeout=30)
    return code, time.monotonic() - t0


def _ctl_path(srv: KemiProcess) -> Path:
    return Path(srv.ctl.removeprefix("unix:"))


@needs_sipp
@pytest.mark.sipp
def test_sighup_is_logged_and_calls_go_on(start_kemi: Callable[..., KemiProcess],
                                          tmp_path: Path) -> None:
    uas = free_port()
    srv, port = _start(start_kemi, tmp_path, uas)
    before = sorted(w["pid"] for w in srv.rpc("core.workers")["workers"])
    assert srv.proc is not None
    for i in range(3):  # one at a time: signals sent together may arrive as one
        srv.proc.send_signal(signal.SIGHUP)
        srv.wait_log("SIGHUP: logging to stderr, nothing to reopen", i + 1)
    with SippUas(tmp_path, uas, "uas", name="callee"):
        result = run_sipp(f"127.0.0.1:{port}", tmp_path, scenario="uac", calls=20, rate=20,
                          timeout=30, name="caller")
    assert result.successful == 20 and result.failed == 0, result.stdout[-2000:]
    assert srv.proc.poll() is None
    assert sorted(w["pid"] for w in srv.rpc("core.workers")["workers"]) == before
    assert srv.stop() == 0
    assert_no_traceback(srv)


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGUSR2], ids=["USR1", "USR2"])
def test_sigusr_to_the_main_process_logs_the_workers_and_never_stops(
        start_kemi: Callable[..., KemiProcess], tmp_path: Path, sig: signal.Signals) -> None:
    """Kamailio's main process logs its memory on SIGUSR1/SIGUSR2: the same habit on kemi's
    main process logs each worker (state, memory, restarts) and the server goes on."""
    srv, port = _start(start_kemi, tmp_path, free_port())
    before = sorted(w["pid"] for w in srv.rpc("core.workers")["workers"])
    assert srv.proc is not None
    name = signal.Signals(sig).name
    for i in range(2):  # one at a time: signals sent together may arrive as one
        srv.proc.send_signal(sig)
        srv.wait_log(f"{name}: 2 workers", i + 1)
    for pid in before:
        srv.wait_log(f"pid {pid} ready")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # the workers still answer
        s.bind(("127.0.0.1", 0))
        s.settimeout(5)
        s.sendto(options(port, s.getsockname()[1]), ("127.0.0.1", port))
        assert s.recv(65535).startswith(b"SIP/2.0 200 ")
    assert srv.proc.poll() is None
    assert sorted(w["pid"] for w in srv.rpc("core.workers")["workers"]) == before
    assert srv.stop() == 0
    assert_no_traceback(srv)


def test_sigterm_when_idle_exits_at_once_and_cleans_up(start_kemi: Callable[..., KemiProcess],
                                                       tmp_path: Path) -> None:
    pid_file = tmp_path / "kemi.pid"
    srv, _ = _start(start_kemi, tmp_path, free_port(), args=["-P", str(pid_file)])
    assert pid_file.exists() and _ctl_path(srv).exists()
    code, took = _stop_timed(srv)
    print(f"\nSIGTERM, idle: exited in {took:.3f} s")
    assert code == 0
    assert took < 1.0, took
    assert not pid_file.exists() and not _ctl_path(srv).exists()
    log = srv.log()
    for phase in ("shutdown: SIGTERM received", "shutdown: all workers stopped",
                  "shutdown: done"):
        assert log.count(phase) == 1, log[-2000:]
    assert_no_traceback(srv)


def _invite(port: int, local_port: int, call_id: str | None = None, cseq: int = 1) -> bytes:
    return request("INVITE", f"sip:callee@127.0.0.1:{port}", local_port, call_id=call_id,
                   cseq=cseq)


def _replies(sock: socket.socket, finals: int, timeout: float) -> list[bytes]:
    """Every reply received on ``sock`` until ``finals`` final ones (status >= 200) or timeout."""
    out: list[bytes] = []
    deadline = time.monotonic() + timeout
    while sum(not r.startswith(b"SIP/2.0 1") for r in out) < finals \
            and (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            out.append(sock.recv(65535))
        except TimeoutError:
            break
    return out


def _finals(sock: socket.socket, count: int, timeout: float) -> list[bytes]:
    """The final replies (status >= 200) received on ``sock`` until ``count`` or timeout."""
    return [r for r in _replies(sock, count, timeout) if not r.startswith(b"SIP/2.0 1")]


@needs_sipp
@pytest.mark.sipp
def test_sigterm_lets_transactions_in_progress_finish(start_kemi: Callable[..., KemiProcess],
                                                      tmp_path: Path) -> None:
    uas = free_port()
    pid_file = tmp_path / "kemi.pid"
    srv, port = _start(start_kemi, tmp_path, uas, args=["-P", str(pid_file)])
    with SippUas(tmp_path, uas, SCENARIOS / "uas_slow_answer.xml", name="slow"), \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as caller, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as late:
        caller.bind(("127.0.0.1", 0))
        late.bind(("127.0.0.1", 0))
        invites = [_invite(port, caller.getsockname()[1], f"drain-{i}") for i in range(5)]
        for data in invites:
            caller.sendto(data, ("127.0.0.1", port))
        # every INVITE is ringing: 5 transactions wait for the callee's 200 (1.5 s)
        ringing = 0
        caller.settimeout(5)
        while ringing < 5:
            if caller.recv(65535).startswith(b"SIP/2.0 180"):
                ringing += 1
        assert srv.proc is not None
        stopped: list[tuple[int | None, float]] = []
        waiter = threading.Thread(target=lambda: stopped.append(_stop_timed(srv)))
        waiter.start()
        srv.wait_log("shutdown: SIGTERM received")
        # the main process logs before it signals the workers: wait until the worker holding
        # the calls drains and the idle one is gone, so the late INVITE can only meet a
        # draining worker (one that has not got its SIGTERM yet would route it)
        wait_until(lambda: sorted(w["state"] for w in srv.rpc("core.workers")["workers"])
                   == ["down", "draining"], 5, "one worker draining, the other gone")
        # a retransmission of a ringing INVITE is tm's (the 180 again), never a 503; a new
        # INVITE - even in the same call (new branch, next CSeq) - is refused
        caller.sendto(invites[0], ("127.0.0.1", port))
        late.sendto(_invite(port, late.getsockname()[1], "drain-0", cseq=2), ("127.0.0.1", port))
        refused = _finals(late, 1, 5)
        replies = _replies(caller, 5, 10)
        waiter.join(timeout=30)
    assert refused and refused[0].startswith(b"SIP/2.0 503 "), refused
    answered = [r for r in replies if not r.startswith(b"SIP/2.0 1")]
    assert len(answered) == 5 and all(r.startswith(b"SIP/2.0 200 ") for r in answered), replies
    again = [r for r in replies if r.startswith(b"SIP/2.0 180 ")]
    assert len(again) == 1 and b"Call-ID: drain-0\r\n" in again[0], replies
    code, took = stopped[0]
    print(f"\nSIGTERM with 5 calls ringing (answered 1.5 s after the INVITE): exited in {took:.3f} s")
    assert code == 0 and took < 8, (code, took, srv.log()[-3000:])
    assert not pid_file.exists() and not _ctl_path(srv).exists()
    log = srv.log()
    assert "waiting for" in log and "transactions in progress" in log
    assert_no_traceback(srv)


@needs_sipp
@pytest.mark.sipp
def test_sigterm_under_sipp_load(start_kemi: Callable[..., KemiProcess], tmp_path: Path) -> None:
    uas = free_port()
    srv, port = _start(start_kemi, tmp_path, uas)
    with SippUas(tmp_path, uas, "uas", name="callee"):
        result: list[object] = []
        load = threading.Thread(target=lambda: result.append(run_sipp(
            f"127.0.0.1:{port}", tmp_path, scenario="uac", calls=2000, rate=100, timeout=8,
            name="caller")))
        load.start()
        wait_until(lambda: srv.rpc("tm.stats")["created"] > 100, 20, "calls flowing")
        code, took = _stop_timed(srv)
        load.join(timeout=40)
    print(f"\nSIGTERM under SIPp load (100 calls/s): exited in {took:.3f} s")
    assert code == 0 and took < 3, (code, took)
    assert not _ctl_path(srv).exists()
    assert_no_traceback(srv)


def _first_503(port: int, sockets: int, timeout: float) -> bytes | None:
    """OPTIONS from ``sockets`` fresh source ports at once (SO_REUSEPORT spreads them over the
    workers' listen sockets); the first 503 any of them gets within ``timeout``, else None."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(sockets)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            s.sendto(options(port, s.getsockname()[1]), ("127.0.0.1", port))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select(socks, [], [], left)
            for s in readable:
                data = s.recv(65535)
                if data.startswith(b"SIP/2.0 503 "):
                    return data
        return None
    finally:
        for s in socks:
            s.close()


def test_a_stopping_worker_stays_until_every_worker_drains(
        start_kemi: Callable[..., KemiProcess], tmp_path: Path) -> None:
    """A worker with nothing in progress does not leave while another has not taken the stop:
    leaving would close its share of the listen port, and the kernel would hand the flows it
    held to a worker still routing new requests (seen under SIPp load: an in-dialog BYE routed
    after SIGTERM by the other worker, its reply sent by the UAS to the gone worker's port)."""
    srv, port = _start(start_kemi, tmp_path, free_port())
    assert srv.proc is not None
    late = next(w for w in srv.rpc("core.workers")["workers"] if w["rank"] == 2)
    os.kill(late["pid"], signal.SIGSTOP)  # it cannot take its SIGTERM until continued
    try:
        srv.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: next(w["state"] for w in srv.rpc("core.workers")["workers"]
                                if w["rank"] == 1) in ("draining", "down"), 5,
                   "worker 1 draining")
        # worker 1 has nothing in progress, yet it still answers its share of the port
        refused = _first_503(port, 16, 5)
        states = {w["rank"]: w["state"] for w in srv.rpc("core.workers")["workers"]}
    finally:
        os.kill(late["pid"], signal.SIGCONT)
    assert refused is not None, srv.log()[-2000:]
    assert states == {1: "draining", 2: "ready"}, states
    code = srv.proc.wait(timeout=10)
    assert code == 0
    assert_no_traceback(srv)


def test_killed_worker_is_replaced_and_its_transactions_forgotten(
        start_kemi: Callable[..., KemiProcess], tmp_path: Path) -> None:
    blackhole = free_port()  # nobody answers there: the INVITE transactions stay in progress
    srv, port = _start(start_kemi, tmp_path, blackhole)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as caller:
        caller.bind(("127.0.0.1", 0))
        for _ in range(3):
            caller.sendto(_invite(port, caller.getsockname()[1]), ("127.0.0.1", port))
        wait_until(lambda: srv.rpc("tm.stats")["current"] == 3, 10, "3 current transactions")
    per_worker = srv.rpc("tm.list")["current_per_worker"]
    holder = next(w for w in srv.rpc("core.workers")["workers"]
                  if per_worker.get(str(w["rank"]), 0) == 3)
    os.kill(holder["pid"], signal.SIGKILL)
    srv.wait_log(f"worker {holder['rank']} (pid {holder['pid']}) exited: killed by SIGKILL")
    workers_ready(srv, 2)
    stats = srv.rpc("tm.stats")
    assert stats["current"] == 0 and stats["created"] == 3, stats
    report = srv.rpc("core.workers")
    assert report["totals"]["crashes"] == 1
    entry = next(w for w in report["workers"] if w["rank"] == holder["rank"])
    assert entry["last_restart"]["reason"] == "crash"
    assert entry["last_restart"]["detail"] == "killed by SIGKILL"
    assert srv.stop() == 0


def test_sighup_has_each_worker_reopen_its_logs_at_once(start_kemi: Callable[..., KemiProcess],
                                                        tmp_path: Path) -> None:
    """The main process rings the workers' doorbells: no worker waits for a periodic look."""
    port = free_port()
    script = tmp_path / "route.lua"
    script.write_text(SCRIPT.replace("{uas}", str(free_port())))
    srv = start_kemi(CFG.replace("debug=2", "debug=3").format(port=port, script=script))
    workers_ready(srv, 2)
    assert srv.proc is not None
    for i in range(2):  # one at a time: signals sent together may arrive as one
        srv.proc.send_signal(signal.SIGHUP)
        for rank in (1, 2):
            srv.wait_log(f"worker {rank}: SIGHUP: 0 log files reopened", i + 1)
    assert srv.proc.poll() is None
    assert srv.stop() == 0
