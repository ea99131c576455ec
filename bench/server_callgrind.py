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

    python bench/server_callgrind.py --kemi .venv/bin/kemi [--engine lua] [--calls 400]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from callpath import callgrind_total_or_none  # noqa: E402
from common import Proc, kamailio_args, wait_udp_answer  # noqa: E402
from stateful import write_setup  # noqa: E402

from kemi_core.testing.sipp import SippUas, run_sipp  # noqa: E402


def total_instructions(work: Path) -> dict[str, int]:
    """Instructions of each process, from the callgrind files written when it exited."""
    totals = {f.name: callgrind_total_or_none(f) for f in work.glob("cg.*")}
    return {name: n for name, n in totals.items() if n is not None}


def calls(port: int, work: Path, name: str, n: int, rate: int) -> int:
    res = run_sipp(f"127.0.0.1:{port}", work, scenario="uac", calls=n, rate=rate,
                   timeout=n / rate * 4 + 60, name=name, extra=["-d", "0", "-l", str(rate * 4)])
    if res.failed:
        print(f"  {name}: {res.failed} calls failed", flush=True)
    return res.successful


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
                left = window - (time.monotonic() - t0)
                if left < 6:
                    print(f"  {key}: the window is too short ({left:.1f} s left)", flush=True)
                time.sleep(max(left, 0))
            finally:
                proc.stop()
        results[key] = {"calls": ok, "instructions": total_instructions(work)}
        if keep:
            keep.mkdir(parents=True, exist_ok=True)
            for f in work.glob("cg.*"):
                f.rename(keep / f"{key}.{f.name}")


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
    opts = parser.parse_args()
    exe = Path(opts.kemi)
    window = opts.window or opts.calls / opts.rate + 20
    results: dict = {}
    runs = [threading.Thread(target=server_run, args=(exe, opts.engine, opts.warmup, n,
                                                      opts.rate, window, results, key, opts.keep,
                                                      opts.kamailio))
            for key, n in (("busy", opts.calls), ("idle", 0))]
    for t in runs:
        t.start()
    for t in runs:
        t.join()
    busy, idle = (sum(results[k]["instructions"].values()) for k in ("busy", "idle"))
    out = {"kemi": str(exe), "engine": opts.engine, "calls": results["busy"]["calls"],
           "rate": opts.rate, "window_s": window,
           "instructions_per_call": round((busy - idle) / results["busy"]["calls"]),
           "idle_run_instructions": idle, "runs": results}
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
