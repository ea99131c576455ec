"""Two (or more) kemi builds and Kamailio 5.6 in ONE interleaved stateful run: is a later kemi
slower than an earlier one, measured the same way on the same machine at the same time?

Each kemi build is a ``kemi`` executable (e.g. the .venv of a git worktree checked out at an old
commit). All servers get the same kamailio.cfg and script (bench/stateful.py's), their own SIPp
UAS, and are up for the whole run; SIPp runs at one fixed rate rotate between them round after
round (the order shifts each round), so a change of the machine's load touches all alike. CPU is
user + system of each server's whole process tree, read from /proc, split per process so one
can see which process costs what.

    python bench/versions.py --kemi old=/work/wt/old/.venv/bin/kemi \\
        --kemi new=.venv/bin/kemi --rate 1500 --seconds 10 --rounds 3 [--engine lua]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Proc, kamailio_args, per_process_cpu, wait_udp_answer  # noqa: E402
from interleave import median  # noqa: E402
from stateful import write_setup  # noqa: E402

from kemi_core.testing.sipp import SippUas, run_sipp  # noqa: E402


def one_run(name: str, port: int, work: Path, rate: int, seconds: int, pid: int) -> dict:
    """One SIPp run of ``rate * seconds`` calls; CPU per successful call, split per process."""
    before, t0 = per_process_cpu(pid), time.monotonic()
    res = run_sipp(f"127.0.0.1:{port}", work, scenario="uac", calls=rate * seconds, rate=rate,
                   timeout=seconds * 3 + 30, name=name,
                   extra=["-d", "0", "-l", str(max(rate * 4, 100))])
    after, t1 = per_process_cpu(pid), time.monotonic()
    ok = res.successful
    split = {p: round((after[p] - before.get(p, 0.0)) / max(ok, 1) * 1e6, 1) for p in after}
    total = sum(after.values()) - sum(before.get(p, 0.0) for p in after)
    return {"ok": ok, "failed": res.failed, "calls_per_s": round(ok / (t1 - t0), 1),
            "cpu_us_per_call": round(total / ok * 1e6, 1) if ok else None,
            "per_process_us": split}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kemi", action="append", required=True, metavar="LABEL=EXECUTABLE")
    parser.add_argument("--engine", default="lua")
    parser.add_argument("--rate", type=int, default=1500)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-kamailio", action="store_true")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kemi-versions-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        servers = [(label, [exe, "run", "-f"]) for label, exe in
                   (k.split("=", 1) for k in opts.kemi)]
        if not opts.no_kamailio:
            servers.append(("kamailio", kamailio_args(work)(Path("CFG"))))
        procs = {}
        for label, cmd in servers:
            cfg, port, uas_port = write_setup(opts.engine, f"{label}_{opts.engine}", work)
            args = [str(cfg) if a == "CFG" else a for a in cmd]
            if label != "kamailio":
                args.append(str(cfg))
            stack.enter_context(SippUas(work, uas_port, name=f"uas_{label}", extra=["-aa"]))
            # each kemi its own control socket (the default one may be another server's)
            env = dict(os.environ, KEMI_CTL=f"unix:{work / label}_ctl")
            proc = Proc(args, work / f"{label}.log", cwd=work, env=env)
            stack.callback(proc.stop)
            if not wait_udp_answer(port, timeout=90):
                raise RuntimeError(f"{label} did not answer; see {work / (label + '.log')}")
            procs[label] = (proc, port)
        runs: dict[str, list[dict]] = {label: [] for label, _ in servers}
        load = [os.getloadavg()[0]]
        labels = [label for label, _ in servers]
        for i in range(opts.rounds):
            order = labels[i % len(labels):] + labels[:i % len(labels)]
            for label in order:
                proc, port = procs[label]
                r = one_run(f"{label}_r{i}", port, work, opts.rate, opts.seconds, proc.pid)
                runs[label].append(r)
                print(f"  round {i} {label:10} {r['calls_per_s']:8}/s ok {r['ok']} failed "
                      f"{r['failed']}  {r['cpu_us_per_call']} us CPU/call  "
                      f"{r['per_process_us']}", flush=True)
            load.append(os.getloadavg()[0])
    summary = {label: median([r["cpu_us_per_call"] for r in rs if r["cpu_us_per_call"]])
               for label, rs in runs.items()}
    out: dict = {"rate": opts.rate, "seconds": opts.seconds, "engine": opts.engine,
                 "median_cpu_us_per_call": summary,
                 "load_average_1min": [round(x, 2) for x in load], "runs": runs}
    if "kamailio" in runs:
        out["median_ratio_vs_kamailio"] = {
            label: median([a["cpu_us_per_call"] / b["cpu_us_per_call"]
                           for a, b in zip(rs, runs["kamailio"], strict=True)
                           if a["cpu_us_per_call"] and b["cpu_us_per_call"]])
            for label, rs in runs.items() if label != "kamailio"}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
