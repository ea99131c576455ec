"""Instructions per call of a whole running kemi server (all its processes, event loop and
syscall wrappers included) under valgrind's callgrind, driven by SIPp on real sockets: the
deterministic counterpart of bench/stateful.py's CPU per call, usable on a loaded machine and on
any kemi build (pass its ``kemi`` executable, e.g. an old checkout's .venv/bin/kemi).

Two copies of the server run side by side under callgrind (bench/stateful.py's cfg and script,
valgrind is ~50x slower, so a low call rate): both get the same warm-up, then a window of the
same wall time in which one gets ``--calls`` calls and the other none; both are stopped and
write their processes' instruction counts. (busy - idle) / calls is one call's instructions,
start-up and idle ticks cancelled out. (callgrind_control cannot reach a forked worker, so the
counts are read from the files the processes write at exit.)

``--register floor|memory`` runs bench/register.py's config instead (the floor's bare 200, or
usrloc in memory), driven by a client here that sends ``--burst`` REGISTERs at a time from one
socket and waits for their answers: under valgrind the worker then reads each burst in one
event, as the real server at 2,000/s reads ~5 per wake-up (SIPp's pacing would give one per
event at valgrind's speed). Every user is registered once in the warm-up (later ones refresh),
as bench/register_profile.py does, so the figure compares with its ``--callgrind`` one.

    python bench/server_callgrind.py --kemi .venv/bin/kemi [--engine lua] [--calls 400]
    python bench/server_callgrind.py --kemi .venv/bin/kemi --register memory [--burst 5]
                                     [--children 1]

``--children N`` (with ``--register``): N workers; the client's one socket lands on one of them
(``busiest_per_call``: that process's instructions per REGISTER, busy run minus the idle run's
busiest process: the warm-up and the REGISTERs come from one address, so one worker takes
both and is the busiest in each run).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import register as register_bench  # noqa: E402
from callpath import callgrind_total_or_none  # noqa: E402
from common import Proc, kamailio_args, wait_udp_answer  # noqa: E402
from register_profile import REGISTER  # noqa: E402
from stateful import write_setup  # noqa: E402

from kemi_core.testing.process import free_port  # noqa: E402
from kemi_core.testing.sipp import SippUas, run_sipp  # noqa: E402


def total_instructions(work: Path) -> dict[str, int]:
    """Instructions of each process, from the callgrind files written when it exited."""
    totals = {f.name: callgrind_total_or_none(f) for f in work.glob("cg.*")}
    return {name: n for name, n in totals.items() if n is not None}


def wait_out_window(t0: float, window: float, key: str) -> None:
    """Sleep out the rest of the measured window begun at ``t0`` (busy and idle runs must
    last the same wall time: their difference is the work), warning when it was too short."""
    left = window - (time.monotonic() - t0)
    if left < 6:
        print(f"  {key}: the window is too short ({left:.1f} s left)", flush=True)
    time.sleep(max(left, 0))


def keep_counts(work: Path, keep: Path | None, key: str) -> None:
    """Move the run's callgrind files to ``keep`` (named after ``key``), when asked."""
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
        for f in work.glob("cg.*"):
            f.rename(keep / f"{key}.{f.name}")


def calls(port: int, work: Path, name: str, n: int, rate: int) -> int:
    res = run_sipp(f"127.0.0.1:{port}", work, scenario="uac", calls=n, rate=rate,
                   timeout=n / rate * 4 + 60, name=name, extra=["-d", "0", "-l", str(rate * 4)])
    if res.failed:
        print(f"  {name}: {res.failed} calls failed", flush=True)
    return res.successful


def registers(port: int, first: int, n: int, users: int, burst: int,
              local_port: int = 0) -> int:
    """``n`` REGISTERs (serials from ``first``, users in turn), ``burst`` sent at a time from one
    socket (on ``local_port``: with several workers, the same one each time) before their
    answers are read; how many got a 200."""
    ok = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", local_port))
        sock.settimeout(60)
        for start in range(first, first + n, burst):
            sent = range(start, min(start + burst, first + n))
            for serial in sent:
                user = f"user{serial % users:06d}"
                sock.sendto(REGISTER.format(n=serial, user=user, cseq=serial + 1, auth="")
                            .replace("127.0.0.1:5060", f"127.0.0.1:{port}").encode(),
                            ("127.0.0.1", port))
            for _ in sent:
                ok += sock.recv(65536).startswith(b"SIP/2.0 200 ")
    return ok


def register_run(exe: Path, mode: str, users: int, n: int, burst: int, window: float,
                 results: dict, key: str, keep: Path | None, children: int = 1) -> None:
    """One server on bench/register.py's ``mode`` cfg under callgrind: every user registered
    once, then ``n`` REGISTERs in bursts of ``burst`` within ``window`` s (0: idle)."""
    with tempfile.TemporaryDirectory(prefix="kemi-srvcg-") as tmp:
        work = Path(tmp)
        cfg, port = register_bench.write_cfg(mode, f"reg_{mode}", work, children)
        env = dict(os.environ, KEMI_CTL=f"unix:{work}/kemi_ctl", PYTHONHASHSEED="0")
        args = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={work}/cg.%p",
                str(exe.parent / "python"), str(exe), "run", "-f", str(cfg)]
        proc = Proc(args, work / "server.log", cwd=work, env=env)
        ok = 0
        try:
            if not wait_udp_answer(port, timeout=900):
                raise RuntimeError("the server under valgrind did not answer: "
                                   + (work / "server.log").read_text()[-2000:])
            # the warm-up and the measured REGISTERs from one address: one worker takes both
            local = free_port()
            registers(port, 0, users, users, burst, local)
            t0 = time.monotonic()
            ok = registers(port, users, n, users, burst, local) if n else 0
            wait_out_window(t0, window, key)
        finally:
            proc.stop()
        results[key] = {"calls": ok, "instructions": total_instructions(work)}
        keep_counts(work, keep, key)


def server_run(exe: Path, engine: str, warmup: int, n: int, rate: int, window: float,
               results: dict, key: str, keep: Path | None, kamailio: bool = False) -> None:
    """One server under callgrind: ``warmup`` calls, then a window of ``window`` seconds in
    which ``n`` calls are made (0: idle), then SIGTERM; its processes' instructions."""
    with tempfile.TemporaryDirectory(prefix="kemi-srvcg-") as tmp:
        work = Path(tmp)
        cfg, port, uas_port = write_setup(engine, f"srv_{engine}", work)
        env = dict(os.environ, KEMI_CTL=f"unix:{work}/kemi_ctl", PYTHONHASHSEED="0")
        server = (kamailio_args(work)(cfg) if kamailio
                  else [str(exe.parent / "python"), str(exe), "run", "-f", str(cfg)])
        args = ["valgrind", "--tool=callgrind",
                f"--callgrind-out-file={work}/cg.%p", *server]
        with SippUas(work, uas_port, name="uas", extra=["-aa"]):
            proc = Proc(args, work / "server.log", cwd=work, env=env)
            try:
                if not wait_udp_answer(port, timeout=300):
                    raise RuntimeError("the server under valgrind did not answer: "
                                       + (work / "server.log").read_text()[-2000:])
                if warmup:
                    calls(port, work, "warmup", warmup, rate)
                t0 = time.monotonic()
                ok = calls(port, work, "calls", n, rate) if n else 0
                wait_out_window(t0, window, key)
            finally:
                proc.stop()
        results[key] = {"calls": ok, "instructions": total_instructions(work)}
        keep_counts(work, keep, key)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kemi", required=True, help="the kemi executable of the build")
    parser.add_argument("--engine", default="lua")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rate", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--window", type=float, default=0.0,
                        help="seconds of each server's measured window (default calls/rate + 20)")
    parser.add_argument("--keep", type=Path, help="keep the callgrind files here")
    parser.add_argument("--kamailio", action="store_true",
                        help="measure Kamailio 5.6 (its processes) on the same cfg and script")
    parser.add_argument("--register", choices=["floor", "memory"],
                        help="bench/register.py's cfg, REGISTERs in bursts (--calls of them)")
    parser.add_argument("--burst", type=int, default=5, help="with --register")
    parser.add_argument("--users", type=int, default=1000, help="with --register")
    parser.add_argument("--children", type=int, default=1, help="with --register: workers")
    opts = parser.parse_args()
    exe = Path(opts.kemi).absolute()
    window = opts.window or opts.calls / opts.rate + 20
    results: dict = {}
    if opts.register:
        runs = [threading.Thread(target=register_run, args=(exe, opts.register, opts.users, n,
                                                            opts.burst, window, results, key,
                                                            opts.keep, opts.children))
                for key, n in (("busy", opts.calls), ("idle", 0))]
    else:
        runs = [threading.Thread(target=server_run, args=(exe, opts.engine, opts.warmup, n,
                                                          opts.rate, window, results, key,
                                                          opts.keep, opts.kamailio))
                for key, n in (("busy", opts.calls), ("idle", 0))]
    for t in runs:
        t.start()
    for t in runs:
        t.join()
    busy, idle = (sum(results[k]["instructions"].values()) for k in ("busy", "idle"))
    out = {"kemi": str(exe), "engine": opts.register or opts.engine, "burst": opts.burst, "calls": results["busy"]["calls"],
           "rate": opts.rate, "window_s": window,
           "instructions_per_call": round((busy - idle) / results["busy"]["calls"]),
           "idle_run_instructions": idle, "children": opts.children, "runs": results}
    if opts.register:
        most = [max(results[k]["instructions"].values()) for k in ("busy", "idle")]
        out["busiest_per_call"] = round((most[0] - most[1]) / results["busy"]["calls"])
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
