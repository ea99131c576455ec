"""CPU per REGISTER against how many REGISTERs a server gets per wake-up, in the real server.

bench/register.py's config (``floor``: a bare 200, ``memory``: usrloc in memory) runs in a real
server (kemi, or Kamailio 5.6 with ``--kamailio``); a client here sends REGISTERs in bursts of
``k`` from one socket, waits for each burst's answers, then pauses ``--gap-us`` (300 us) so that
the server sleeps: it wakes once per burst and reads ``k`` datagrams (without the pause a fast
server finds the next burst already there at k=1 and sleeps for only some of them). Printed per ``k``: the server's CPU per REGISTER (all its processes
and threads, from /proc/PID/task/*/schedstat: exact, not ticks) and its voluntary context
switches per REGISTER (~1/k: its sleeps). The rounds alternate the order of the ``k`` values.

Why: a REGISTER costs kemi the same instructions in the real server as in process
(bench/server_callgrind.py --register vs bench/register_profile.py --callgrind), yet about twice
the time at 2,000/s. The difference is what each wake-up costs: after a sleep (another process
ran on the CPU) and the kernel's network path, the interpreter's code and data are refilled into
the caches. The fit ``cpu(k) = per_request + per_wake / k`` splits the two; SIPp at a steady
rate gives the server as many wake-ups as the machine's load lets it take (bench/register.py).

    python bench/register_wakes.py [--mode floor|memory] [--ks 1,5,50] [--count 3000]
                                   [--rounds 3] [--gap-us 300] [--kamailio] [--children 1]

``--children N``: the cfg's workers (the client's one socket lands on one of them); printed
beside the tree's CPU, the busiest process's (``busy``: the worker the flow hashes to).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import register as register_bench  # noqa: E402
from common import Proc, cpu_by_pid, kamailio_args, wait_udp_answer  # noqa: E402
from register_profile import REGISTER  # noqa: E402

from kemi_core.testing.process import kemi_executable  # noqa: E402


def tree_cpu_and_sleeps(root: int) -> tuple[int, int]:
    """(ns on a CPU, voluntary context switches) of every thread of ``root``'s process tree."""
    per, sleeps = cpu_by_pid(root)
    return sum(per.values()), sleeps


class Client:
    """REGISTERs for ``users`` users in turn, sent ``k`` at a time from one socket."""

    def __init__(self, port: int, users: int, gap_us: int = 0) -> None:
        self.port, self.users, self.serial, self.gap = port, users, 0, gap_us / 1e6
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(10)

    def send(self, count: int, k: int) -> int:
        """``count`` REGISTERs in bursts of ``k``, each burst's answers read before the next
        is sent; how many were answered 200."""
        ok = 0
        for start in range(0, count, k):
            burst = min(k, count - start)
            for _ in range(burst):
                n = self.serial
                self.serial += 1
                text = REGISTER.format(n=n, user=f"user{n % self.users:06d}", cseq=n + 1,
                                       auth="").replace("127.0.0.1:5060",
                                                        f"127.0.0.1:{self.port}")
                self.sock.sendto(text.encode(), ("127.0.0.1", self.port))
            for _ in range(burst):
                ok += self.sock.recv(65536).startswith(b"SIP/2.0 200 ")
            if self.gap:
                time.sleep(self.gap)
        return ok


def measure(args: list[str], port: int, work: Path, ks: list[int], count: int, rounds: int,
            users: int, gap_us: int) -> dict[int, list[tuple[float, float, float]]]:
    """(us of CPU, voluntary switches, us of CPU of the busiest process) per REGISTER of the
    server, for each k, each round."""
    proc = Proc(args, work / "server.log", cwd=work)
    out: dict[int, list[tuple[float, float, float]]] = {k: [] for k in ks}
    try:
        if not wait_udp_answer(port):
            raise RuntimeError("the server did not answer: "
                               + (work / "server.log").read_text()[-2000:])
        Client(port, users).send(users, 10)  # every user registered once: later ones refresh
        client = Client(port, users, gap_us)
        for r in range(rounds):
            for k in ks if r % 2 == 0 else ks[::-1]:
                per0, sleeps0 = cpu_by_pid(proc.pid)
                ok = client.send(count, k)
                per1, sleeps1 = cpu_by_pid(proc.pid)
                ns0, ns1 = sum(per0.values()), sum(per1.values())
                busiest = max(per1[pid] - per0.get(pid, 0) for pid in per1)
                if ok != count:
                    print(f"  k={k}: {count - ok} REGISTERs not answered 200", flush=True)
                out[k].append(((ns1 - ns0) / max(ok, 1) / 1e3, (sleeps1 - sleeps0) / max(ok, 1),
                               busiest / max(ok, 1) / 1e3))
    finally:
        proc.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["floor", "memory"], default="floor")
    parser.add_argument("--ks", default="1,5,50")
    parser.add_argument("--count", type=int, default=3000, help="REGISTERs per k and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--gap-us", type=int, default=300,
                        help="pause after each burst's answers (us; 0: none)")
    parser.add_argument("--kamailio", action="store_true", help="Kamailio 5.6 on the same cfg")
    parser.add_argument("--children", type=int, default=1, help="the cfg's workers")
    opts = parser.parse_args()
    ks = [int(x) for x in opts.ks.split(",")]
    with tempfile.TemporaryDirectory(prefix="kemi-register-wakes-") as tmp:
        work = Path(tmp)
        server = "kamailio" if opts.kamailio else "kemi"
        cfg, port = register_bench.write_cfg(opts.mode, f"{server}_{opts.mode}", work,
                                                opts.children)
        args = (kamailio_args(work)(cfg) if opts.kamailio
                else [*kemi_executable(), "run", "-f", str(cfg)])
        runs = measure(args, port, work, ks, opts.count, opts.rounds, opts.users, opts.gap_us)
    result: dict = {"server": server, "mode": opts.mode, "count": opts.count,
                    "children": opts.children,
                    "gap_us": opts.gap_us, "k": {}}
    for k, values in runs.items():
        best = min(cpu for cpu, _, _ in values)
        sleeps = sum(s for _, s, _ in values) / len(values)
        busy = min(b for _, _, b in values)
        print(f"{server} {opts.mode} k={k:3}: us CPU per REGISTER "
              + " ".join(f"{cpu:.1f}" for cpu, _, _ in values)
              + f" (best {best:.1f}; busiest process {busy:.1f}), sleeps per REGISTER"
              f" {sleeps:.3f}", flush=True)
        result["k"][k] = {"cpu_us": [round(cpu, 1) for cpu, _, _ in values],
                          "best_cpu_us": round(best, 1), "sleeps_per_register": round(sleeps, 3),
                          "busy_cpu_us": [round(b, 1) for _, _, b in values]}
    if len(ks) >= 2:
        lo, hi = min(ks), max(ks)
        a, b = result["k"][lo]["best_cpu_us"], result["k"][hi]["best_cpu_us"]
        per_wake = (a - b) / (1 / lo - 1 / hi)
        result["fit"] = {"per_wake_us": round(per_wake, 1),
                         "per_request_us": round(b - per_wake / hi, 1)}
    result["load"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
