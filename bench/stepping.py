"""Stepping a SIPp load up until the server no longer keeps up (the stateful and REGISTER
benchmarks): one SIPp run per rate, the server's CPU per unit of work (a call, a REGISTER), and
the comparison of two servers at the highest rate both sustained."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from common import Proc, tree_cpu_seconds, wait_udp_answer

from kemi_core.testing.sipp import run_sipp

#: A step is sustained when this share of the units succeeded ...
MIN_SUCCESS = 0.995
#: ... at this share of the asked rate.
MIN_RATE = 0.95


def sipp_step(name: str, port: int, work: Path, rate: int, seconds: int, pid: int,
              scenario: str | Path, extra: list[str], unit: str) -> dict:
    """One SIPp run of ``rate * seconds`` units against 127.0.0.1:port; the server's CPU (its
    process tree ``pid``) per successful unit."""
    cpu0, t0 = tree_cpu_seconds(pid), time.monotonic()
    res = run_sipp(f"127.0.0.1:{port}", work, scenario=scenario, calls=rate * seconds,
                   rate=rate, timeout=seconds * 3 + 30, name=f"{name}_{rate}", extra=extra)
    cpu1, t1 = tree_cpu_seconds(pid), time.monotonic()
    ok, failed = res.successful, res.failed
    total = ok + failed
    achieved = ok / (t1 - t0)
    good = (total > 0 and ok / max(total, rate * seconds) >= MIN_SUCCESS
            and achieved >= MIN_RATE * rate)
    return {"rate": rate, "ok": ok, "failed": failed, f"{unit}s_per_s": round(achieved, 1),
            f"cpu_us_per_{unit}": round((cpu1 - cpu0) / ok * 1e6, 1) if ok else None,
            "sustained": good}


def step_up(name: str, args: list[str], port: int, work: Path, rates: list[int],
            run_step: Callable[[int, int], dict], unit: str, pause: float = 0.0,
            env: dict[str, str] | None = None) -> dict:
    """Start the server, then ``run_step(rate, pid)`` for each rate until one is not
    sustained (or the server died); ``pause`` seconds between steps."""
    proc = Proc(args, work / f"{name}.log", cwd=work, env=env)
    steps = []
    try:
        if not wait_udp_answer(port):
            raise RuntimeError(f"{name} did not answer; see {work / (name + '.log')}")
        for rate in rates:
            r = run_step(rate, proc.pid)
            steps.append(r)
            print(f"  {name:16} {rate:6}/s asked: {r['ok']:7} ok {r['failed']:6} failed "
                  f"{r[f'{unit}s_per_s']:8}/s  {r[f'cpu_us_per_{unit}']} us CPU/{unit}  "
                  f"{'ok' if r['sustained'] else 'NOT sustained'}", flush=True)
            if not r["sustained"] or not proc.alive():
                break
            time.sleep(pause)
    finally:
        proc.stop()
    held = [s["rate"] for s in steps if s["sustained"]]
    return {"server": name, "steps": steps, f"max_sustained_{unit}s_per_s": max(held, default=0)}


def compare(kemi: dict, other: dict, unit: str) -> dict:
    """Ratios kemi / other: max sustained rate, and CPU per unit at the highest rate both held."""
    out: dict = {}
    best = f"max_sustained_{unit}s_per_s"
    if other[best]:
        out["rate_ratio"] = round(kemi[best] / other[best], 2)
    both = {s["rate"] for s in kemi["steps"] if s["sustained"]} & {
        s["rate"] for s in other["steps"] if s["sustained"]}
    if both:
        rate = max(both)
        key = f"cpu_us_per_{unit}"
        kc = next(s[key] for s in kemi["steps"] if s["rate"] == rate)
        oc = next(s[key] for s in other["steps"] if s["rate"] == rate)
        out["cpu_compared_at_rate"] = rate
        out["cpu_ratio"] = round(kc / oc, 2) if kc and oc else None
    return out
