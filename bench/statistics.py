"""Cost of kemi's statistics on the message path, in nanoseconds per call.

- ``inc``: one ``core.counter(...).inc()`` (an unlocked add in this process's shared slot);
- ``request``: ``CoreStats.request(method)``, what the dispatcher does per request received
  (core:rcv_requests and core:rcv_requests_<method>);
- ``reply``: ``CoreStats.reply(180, "INVITE")`` per reply received (total, class, 18x, class by
  method);
- ``sent``: ``CoreStats.sent(data)`` per message sent (kemi:sent_replies and its class);
- ``null_inc``: the call with KEMI_STATISTICS=off (counts nothing): what "off" still pays.

Best of several rounds over a fixed number of calls, the empty loop subtracted. The last line
printed is one JSON object with every figure.

    python bench/statistics.py [--calls 1000000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from counters import best_ns  # noqa: E402 - the same timing loop as the counter bench

from kemi_core.config.model import CoreConfig
from kemi_core.runtime.core import Core
from kemi_core.stats import CoreStats, NullCounter


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    core = Core(CoreConfig(children=8))
    stats = CoreStats(core)
    core.worker_rank = 1  # count as a worker does
    inc = stats.rcv_requests.inc
    null_inc = NullCounter("bench", "null").inc
    request, reply, sent = stats.request, stats.reply, stats.sent
    data = b"SIP/2.0 180 Ringing\r\n"

    def loop(n: int) -> None:
        for _ in range(n):
            pass

    def run(fn: Callable[[], object]) -> Callable[[int], None]:
        def go(n: int) -> None:
            for _ in range(n):
                fn()
        return go

    base = best_ns(loop, args.calls, args.rounds)
    out = {}
    for name, fn in (("inc", run(inc)), ("null_inc", run(null_inc)),
                     ("request", run(lambda: request("INVITE"))),
                     ("reply", run(lambda: reply(180, "INVITE"))),
                     ("sent", run(lambda: sent(data)))):
        out[name] = round(best_ns(fn, args.calls, args.rounds) - base, 1)
    for name, ns in out.items():
        print(f"{name:9} {ns:8.1f} ns/call")
    print(json.dumps({"ns_per_call": out}))


if __name__ == "__main__":
    main()
