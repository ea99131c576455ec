"""Instructions per authenticated REGISTER or call of a whole running kemi server under
valgrind's callgrind, driven by SIPp (-au/-ap) on real sockets: the deterministic counterpart
of bench/auth.py's CPU per unit, usable on a loaded machine and on any kemi build (pass its
``kemi`` executable, e.g. another tree's .venv/bin/kemi).

bench/auth.py's cfg, Lua script and subscriber table; its units (REGISTER, 401, REGISTER, 200
or INVITE, 407, ACK, INVITE, 100/180/200, ACK, BYE, 200). As in bench/server_callgrind.py, two
copies of the server run side by side under callgrind (valgrind is ~50x slower, so a low
rate): both get the same warm-up, then a window of the same wall time in which one gets
``--units`` units and the other none; both are stopped and write their processes' instruction
counts. (busy - idle) / units is one unit's instructions, start-up and idle ticks cancelled.

    python bench/auth_callgrind.py --kemi .venv/bin/kemi [--unit call] [--units 300]
                                   [--children 1]

``--children N``: N workers (bench/auth.py's ``--children``); ``busiest_per_unit`` is the
instructions per unit of the process that did the most work in the busy run, minus the idle
run's busiest process (SIPp's one socket lands on one worker; replies from the UAS may land on
another one and be handed over).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from auth import CFG, LUA, PASSWORD, UNITS, USER, make_db  # noqa: E402
from common import KAMAILIO_MPATH, Proc, kamailio_args, wait_udp_answer  # noqa: E402
from server_callgrind import keep_counts, total_instructions, wait_out_window  # noqa: E402

from kemi_core.testing.process import free_port  # noqa: E402
from kemi_core.testing.sipp import SippUas, run_sipp  # noqa: E402

HERE = Path(__file__).resolve().parent


def units(port: int, work: Path, unit: str, name: str, n: int, rate: int) -> int:
    res = run_sipp(f"127.0.0.1:{port}", work, scenario=HERE / "scenarios" / UNITS[unit],
                   calls=n, rate=rate, timeout=n / rate * 4 + 60, name=name,
                   extra=["-l", str(rate * 4), "-au", USER, "-ap", PASSWORD, "-s", USER])
    if res.failed:
        print(f"  {name}: {res.failed} units failed", flush=True)
    return res.successful


def server_run(exe: Path, unit: str, warmup: int, n: int, rate: int, window: float,
               results: dict, key: str, keep: Path | None, kamailio: bool = False,
               start_timeout: float = 900, children: int = 1) -> None:
    """One server under callgrind: ``warmup`` units, then a window of ``window`` seconds in
    which ``n`` units are run (0: idle), then SIGTERM; its processes' instructions."""
    with tempfile.TemporaryDirectory(prefix="kemi-authcg-") as tmp:
        work = Path(tmp)
        db = work / "auth.db"
        make_db(db)
        port, uas_port = free_port(), free_port()
        script = work / "auth.lua"
        script.write_text(LUA.replace("{uas_port}", str(uas_port)))
        cfg = work / "auth.cfg"
        cfg.write_text(CFG.format(port=port, mpath=KAMAILIO_MPATH, db=f"/{db}", script=script,
                                  children=children))
        env = dict(os.environ, KEMI_CTL=f"unix:{work}/kemi_ctl", PYTHONHASHSEED="0")
        server = (kamailio_args(work)(cfg) if kamailio
                  else [str(exe.parent / "python"), str(exe), "run", "-f", str(cfg)])
        args = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={work}/cg.%p", *server]
        with SippUas(work, uas_port, HERE / "scenarios" / "rr_uas.xml", name="uas"):
            proc = Proc(args, work / "server.log", cwd=work, env=env)
            try:
                if not wait_udp_answer(port, timeout=start_timeout):
                    raise RuntimeError("the server under valgrind did not answer: "
                                       + (work / "server.log").read_text()[-2000:])
                if warmup:
                    units(port, work, unit, "warmup", warmup, rate)
                t0 = time.monotonic()
                ok = units(port, work, unit, "units", n, rate) if n else 0
                wait_out_window(t0, window, key)
            finally:
                # valgrind writes its counts at exit: on a loaded machine that takes longer
                # than Proc.stop's grace before SIGKILL (which loses them)
                proc.popen.send_signal(signal.SIGTERM)
                try:
                    proc.popen.wait(timeout=start_timeout)
                except subprocess.TimeoutExpired:
                    pass
                proc.stop()
        results[key] = {"units": ok, "instructions": total_instructions(work)}
        keep_counts(work, keep, key)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kemi", required=True, help="the kemi executable of the build")
    parser.add_argument("--unit", choices=sorted(UNITS), default="call")
    parser.add_argument("--units", type=int, default=300)
    parser.add_argument("--rate", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--window", type=float, default=0.0,
                        help="seconds of each server's measured window (default units/rate + 20)")
    parser.add_argument("--keep", type=Path, help="keep the callgrind files here")
    parser.add_argument("--start-timeout", type=float, default=900,
                        help="seconds a server under valgrind may take to answer (a loaded "
                             "machine: several minutes)")
    parser.add_argument("--kamailio", action="store_true",
                        help="measure Kamailio 5.6 (its processes) on the same cfg and script")
    parser.add_argument("--children", type=int, default=1, help="workers of the server")
    opts = parser.parse_args()
    exe = Path(opts.kemi).absolute()  # the server runs in its own directory
    window = opts.window or opts.units / opts.rate + 20
    results: dict = {}
    runs = [threading.Thread(target=server_run, args=(exe, opts.unit, opts.warmup, n, opts.rate,
                                                      window, results, key, opts.keep,
                                                      opts.kamailio, opts.start_timeout,
                                                      opts.children))
            for key, n in (("busy", opts.units), ("idle", 0))]
    for t in runs:
        t.start()
    for t in runs:
        t.join()
    if len(results) != 2 or not results["busy"]["units"]:
        print(json.dumps({"error": "a run failed (see above)", "runs": results}), flush=True)
        return 1
    busy, idle = (sum(results[k]["instructions"].values()) for k in ("busy", "idle"))
    out = {"kemi": str(exe), "unit": opts.unit, "units": results["busy"]["units"],
           "rate": opts.rate, "window_s": window,
           "instructions_per_unit": round((busy - idle) / results["busy"]["units"]),
           "idle_run_instructions": idle, "children": opts.children, "runs": results}
    most = [max(results[k]["instructions"].values()) for k in ("busy", "idle")]
    out["busiest_per_unit"] = round((most[0] - most[1]) / results["busy"]["units"])
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
