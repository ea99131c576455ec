"""The call path's figures in one table (issue 13): runs the benchmarks, writes their JSON.

Runs, each as its own process (each prints one JSON object as its last line):
- ``callpath``: bench/callpath.py, CPU per call in process, per engine;
- ``callgrind``: bench/callpath.py --callgrind, instructions per call per engine (deterministic;
  the warm-up is longer than tm's wait timer, so transactions end inside the counted calls);
- ``stateful``: bench/stateful.py --interleave, kemi / Kamailio 5.6 CPU per call at 1,500 calls/s,
  one worker, per engine (median of the interleaved rounds; jsdt against app_jsdt, at the
  same rate as the others: kemi's CPU per call grows as the rate falls, Kamailio's much less);
- ``stateless``: bench/stateless.py --interleave, OPTIONS answered by the Lua script;
- ``tm_memory``: bytes per in-flight INVITE transaction beside Kamailio's shm;
- ``soak``: 100,000 calls, tm's transactions all freed, the worker's RSS flat.

Writes bench/figures/summary.json (with the date, the machine, the commit and the load) and
prints the table; bench/readme_perf.py puts the same table in the README. ``--before FILE``:
bench/callpath.py --callgrind JSON measured on an older commit (its "commit" key names it),
shown as the "before" row; make it with ``git worktree add`` of that commit and its own
``bench/callpath.py --callgrind --calls 300 --warmup 8000`` (the same settings as here), adding
the commit as ``"commit"`` when that version's output lacks it.

    python bench/summary.py [--only callgrind,stateful] [--before bench/figures/callgrind_before.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "figures"  # committed: the README is written from them
SUMMARY = RESULTS / "summary.json"
ENGINES = ("lua", "python", "native", "jsdt")
#: empty cells after a figure that fills one column of the table
REST = " |" * (len(ENGINES) - 1)

#: name -> the benchmark's arguments (run with this interpreter from the repository root)
STEPS: dict[str, list[str]] = {
    "callpath": ["bench/callpath.py", "--calls", "5000", "--rounds", "3",
                 "--engine", ",".join(ENGINES)],
    "callgrind": ["bench/callpath.py", "--callgrind", "--calls", "300", "--warmup", "8000",
                  "--engine", ",".join(ENGINES)],
    "stateful": ["bench/stateful.py", "--interleave", "3", "--rate", "1500", "--seconds", "10",
                 "--engine", ",".join(ENGINES)],
    "stateless": ["bench/stateless.py", "--interleave", "3", "--rate", "2000", "--seconds", "10"],
    "tm_memory": ["bench/tm_memory.py", "--transactions", "10000"],
    "soak": ["bench/soak.py", "--calls", "100000", "--rate", "1000"],
}

#: the goals of issues 13 and 19 (kemi / Kamailio 5.6 CPU ratios; jsdt: against app_jsdt)
GOALS = {"lua": 1.0, "python": 1.0, "native": 0.85, "jsdt": 1.0, "stateless": 0.8}


def machine() -> dict:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh
                        if line.startswith("model name")), "?")
    except OSError:
        pass
    return {"host": platform.node(), "cpu": cpu, "cores": os.cpu_count(),
            "python": platform.python_version(), "kernel": platform.release()}


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         cwd=HERE.parent)
    return out.stdout.strip() or "?"


def run_step(name: str) -> dict:
    """One benchmark; its last line's JSON (or the error)."""
    t0 = time.monotonic()
    load = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, *STEPS[name]], capture_output=True, text=True,
                          cwd=HERE.parent)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    try:
        figures = json.loads(lines[-1]) if lines else {"error": proc.stderr[-2000:]}
    except json.JSONDecodeError:
        figures = {"error": lines[-1][:2000]}
    figures["_run"] = {"seconds": round(time.monotonic() - t0), "load_average_1min_at_start":
                       round(load, 2), "exit": proc.returncode}
    return figures


def _get(d: dict, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _fmt(x: object, unit: str = "") -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.3g}{unit}" if x < 10 else f"{x:,.1f}{unit}"
    if isinstance(x, int):
        return f"{x:,}{unit}"
    return f"{x}{unit}"


def table(summary: dict) -> list[str]:
    """The summary as Markdown table rows (what `make bench` prints and the README shows)."""
    res = summary.get("results", {})
    before = summary.get("callgrind_before") or {}
    rows = ["| figure | " + " | ".join(ENGINES) + " |", "|---" * (len(ENGINES) + 1) + "|"]
    b_commit = before.get("commit", "?")
    rows.append(f"| instructions per call, in process (callgrind), before ({b_commit}) | "
                + " | ".join(_fmt(_get(before, "engines", e, "instructions_per_call"))
                             for e in ENGINES) + " |")
    now_commit = _get(res, "callgrind", "commit") or summary.get("commit")
    rows.append(f"| instructions per call, in process (callgrind), now ({now_commit}) | "
                + " | ".join(_fmt(_get(res, "callgrind", "engines", e, "instructions_per_call"))
                             for e in ENGINES) + " |")
    rows.append("| CPU per call in process (µs, best of 3) | "
                + " | ".join(_fmt(_get(res, "callpath", "engines", e, "us_per_call"))
                             for e in ENGINES) + " |")
    stateful = _get(res, "stateful", "interleaved") or {}
    cells = []
    for e in ENGINES:
        sec = stateful.get(e) if isinstance(stateful, dict) else None
        if not sec:
            cells.append("-")
            continue
        cpu = sec.get("cpu_us_per_call", {})
        kemi = [x for k, v in cpu.items() if k.startswith("kemi") for x in v]
        kam = [x for k, v in cpu.items() if k.startswith("kamailio") for x in v]
        cells.append(f"**{_fmt(sec.get('median_ratio'))}** (goal ≤ {GOALS[e]}; rounds "
                     f"{', '.join(_fmt(r) for r in sec.get('ratios', []))}; kemi "
                     f"{'/'.join(_fmt(x) for x in kemi)} µs, Kamailio "
                     f"{'/'.join(_fmt(x) for x in kam)} µs; load "
                     f"{'/'.join(_fmt(x) for x in sec.get('load_average_1min', []))})")
    rows.append("| stateful call, 1 worker, 1,500 calls/s: CPU kemi / Kamailio 5.6 (jsdt: "
                "app_jsdt), median of interleaved rounds | " + " | ".join(cells) + " |")
    sl = _get(res, "stateless", "interleaved") or {}
    if sl:
        rows.append(f"| stateless OPTIONS (Lua), 2,000 req/s: CPU kemi / Kamailio 5.6 | "
                    f"**{_fmt(sl.get('median_ratio'))}** (goal ≤ {GOALS['stateless']}; rounds "
                    f"{', '.join(_fmt(r) for r in sl.get('ratios', []))}; load "
                    f"{'/'.join(_fmt(x) for x in sl.get('load_average_1min', []))}) |{REST}")
    mem = res.get("tm_memory") or {}
    if mem and "error" not in mem:
        rows.append("| bytes per in-flight INVITE transaction (10,000): kemi in process / kemi "
                    "worker RSS / Kamailio shm | | | "
                    f"{_fmt(_get(mem, 'kemi_in_process', 'bytes_per_transaction'))} / "
                    f"{_fmt(mem.get('kemi_server_rss_bytes_per_transaction'))} / "
                    f"{_fmt(mem.get('kamailio_shm_bytes_per_transaction'))} |"
                    + " |" * (len(ENGINES) - 3))
    soak = res.get("soak") or {}
    if soak and "error" not in soak:
        rows.append(f"| soak: {_fmt(soak.get('calls'))} calls at {_fmt(soak.get('rate'))}/s "
                    f"(ok / failed; tm current after; worker RSS warm -> end) | "
                    f"{_fmt(soak.get('ok'))} / {_fmt(soak.get('failed'))}; "
                    f"{_fmt(soak.get('tm_current_after'))}; {_fmt(soak.get('rss_kb_warm'))} -> "
                    f"{_fmt(soak.get('rss_kb_end'))} kB |{REST}")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(STEPS), help=f"some of {', '.join(STEPS)}")
    ap.add_argument("--before", type=Path, default=RESULTS / "callgrind_before.json")
    ap.add_argument("--merge", action="store_true",
                    help="keep the figures of steps not run from the existing summary.json")
    ap.add_argument("--from", dest="given", action="append", default=[], metavar="STEP=FILE",
                    help="a step's figures from the output of its own run (its last JSON "
                         "line), e.g. callgrind=out.log: the slow callgrind run made apart")
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(STEPS)
    if unknown:
        ap.error(f"unknown step(s) {', '.join(sorted(unknown))}")
    old = json.loads(SUMMARY.read_text()) if args.merge and SUMMARY.exists() else {}
    results = dict(old.get("results", {}))
    given = dict(g.split("=", 1) for g in args.given)
    for name in names:
        if name in given:
            lines = [x for x in Path(given[name]).read_text().splitlines() if x.startswith("{")]
            results[name] = json.loads(lines[-1])
            continue
        print(f"== {name}: {' '.join(STEPS[name])}", flush=True)
        results[name] = run_step(name)
    summary = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit(),
               "machine": machine(), "results": results}
    if args.before.exists():
        summary["callgrind_before"] = json.loads(args.before.read_text())
    RESULTS.mkdir(exist_ok=True)
    SUMMARY.write_text(json.dumps(summary, indent=1) + "\n")
    print("\n".join(table(summary)))
    print(json.dumps({"summary": str(SUMMARY.relative_to(HERE.parent))}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
