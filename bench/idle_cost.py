"""What a server costs with no traffic: CPU of its whole process tree per second, kemi beside
Kamailio 5.6 on bench/register.py's cfg (usrloc in memory) with ``--children`` workers.

An idle kemi worker does not wake at all: no heartbeat, no parent poll (its doorbell,
runtime/doorbell.py, rings when there is something for it), timers armed at their deadlines.
The main process wakes for its supervision (once a second with the default watchdog_timeout:
it asks /proc where each worker sleeps, runtime/idle_probe.py) and its housekeeping tasks.
Kamailio's timer processes tick on their own. Each server is started, answers one OPTIONS,
settles for ``--settle`` seconds, then its tree's CPU (all processes and threads, from
/proc/PID/task/*/schedstat) and its wake-ups (voluntary context switches: each is a sleep, so
a wake-up to come; they do not depend on the machine's load) are read over ``--seconds``,
with the main process's (kemi) or the first process's (Kamailio) share. The servers
alternate, ``--rounds`` times each. The last line printed is one JSON object.

    python bench/idle_cost.py [--children 2,8] [--seconds 20] [--settle 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import register as register_bench  # noqa: E402
from common import Proc, cpu_by_pid, kamailio_args, kamailio_available, wait_udp_answer  # noqa: E402

from kemi_core.testing.process import kemi_executable  # noqa: E402


def idle_cost(server: str, children: int, work: Path, settle: float,
              seconds: float) -> dict[str, float]:
    """us of CPU per second of the idle tree, of its first process, wake-ups per second, and
    how many processes it has."""
    cfg, port = register_bench.write_cfg("memory", f"{server}_idle{children}", work, children)
    args = (kamailio_args(work)(cfg) if server == "kamailio"
            else [*kemi_executable(), "run", "-f", str(cfg)])
    proc = Proc(args, work / f"{server}_idle{children}.log", cwd=work)
    try:
        if not wait_udp_answer(port, timeout=60):
            raise RuntimeError(f"{server} did not answer")
        time.sleep(settle)
        per0, sleeps0 = cpu_by_pid(proc.pid)
        t0 = time.monotonic()
        time.sleep(seconds)
        per1, sleeps1 = cpu_by_pid(proc.pid)
        elapsed = time.monotonic() - t0
    finally:
        proc.stop()
    spent = sum(per1.values()) - sum(per0.get(pid, 0) for pid in per1)
    first = per1.get(proc.pid, 0) - per0.get(proc.pid, 0)
    return {"us_per_s": spent / 1e3 / elapsed, "first_us_per_s": first / 1e3 / elapsed,
            "wakes_per_s": (sleeps1 - sleeps0) / elapsed, "processes": len(per1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--children", default="2,8")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    opts = parser.parse_args()
    servers = ["kemi", "kamailio"] if kamailio_available() else ["kemi"]
    out: dict = {"seconds": opts.seconds, "children": {}}
    keys = ("us_per_s", "first_us_per_s", "wakes_per_s")
    with tempfile.TemporaryDirectory(prefix="kemi-bench-idle-") as tmp:
        work = Path(tmp)
        for children in (int(x) for x in opts.children.split(",")):
            runs: dict[str, dict[str, list[float]]] = {s: {k: [] for k in keys} for s in servers}
            procs: dict[str, int] = {}
            for r in range(opts.rounds):
                for server in servers if r % 2 == 0 else servers[::-1]:
                    got = idle_cost(server, children, work, opts.settle, opts.seconds)
                    procs[server] = int(got["processes"])
                    for k in keys:
                        runs[server][k].append(round(got[k], 1))
                    print(f"children={children} {server}: {got['us_per_s']:.1f} us CPU per s idle "
                          f"({procs[server]} processes; the first {got['first_us_per_s']:.1f}), "
                          f"{got['wakes_per_s']:.1f} wake-ups per s", flush=True)
            out["children"][children] = {s: {**runs[s], "processes": procs[s]} for s in servers}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
