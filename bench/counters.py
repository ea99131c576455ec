"""Cost of ``core.counter(...).inc()`` on the hot path, in nanoseconds per call.

Measures, best of several rounds with time.perf_counter_ns over a fixed number of calls:

- ``loop``: the empty loop (subtracted from the others);
- ``inc``: ``counter.inc()`` (a shared-memory slot of this process, no lock);
- ``inc_n``: ``counter.inc(3)``;
- ``dict``: ``d["x"] += 1`` on a plain per-process dict (what the dispatcher's counters cost);
- ``value``: reading ``counter.value`` (sums every process's slot; main process, RPC side).

The last line printed is one JSON object with every figure.

    python bench/counters.py [--calls 1000000] [--rounds 5] [--children 8]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from kemi_core.api import Core, CoreConfig


def best_ns(fn: Callable[[int], None], calls: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        fn(calls)
        best = min(best, (time.perf_counter_ns() - t0) / calls)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--children", type=int, default=8)
    args = ap.parse_args()
    core = Core(CoreConfig(children=args.children))
    counter = core.counter("bench", "calls")
    core.worker_rank = 1  # count as a worker does
    inc = counter.inc
    d = {"x": 0}

    def loop(n: int) -> None:
        for _ in range(n):
            pass

    def run_inc(n: int) -> None:
        for _ in range(n):
            inc()

    def run_inc_n(n: int) -> None:
        for _ in range(n):
            inc(3)

    def run_dict(n: int) -> None:
        for _ in range(n):
            d["x"] += 1

    def run_value(n: int) -> None:
        for _ in range(n):
            counter.value  # noqa: B018

    base = best_ns(loop, args.calls, args.rounds)
    out = {"loop": round(base, 1)}
    for name, fn, calls in (("inc", run_inc, args.calls), ("inc_n", run_inc_n, args.calls),
                            ("dict", run_dict, args.calls), ("value", run_value, args.calls // 10)):
        out[name] = round(best_ns(fn, calls, args.rounds) - base, 1)
    for name, ns in out.items():
        print(f"{name:6} {ns:8.1f} ns/call")
    print(json.dumps({"children": args.children, "ns_per_call": out}))


if __name__ == "__main__":
    main()
