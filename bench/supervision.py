"""What the watchdog costs per message: the busy mark around each message, and app_lua's count
hook (installed when watchdog_timeout > 0).

Drives the real Dispatcher in-process with a null transport (as bench/engines.py does) and
measures CPU per message (time.process_time), interleaving the variants round by round so that
machine noise hits them alike; each figure is the best round.

- ``mark``: a trivial native route (OPTIONS -> 200) with and without the worker's EntryGate
  (busy-since written to the shared board before and after each message);
- ``lua_hook``: the realistic Lua route of bench/engines.py with and without the count hook.

    python bench/supervision.py [--messages 30000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import engines  # noqa: E402 - bench/ is not a package


def _best_interleaved(variants: dict[str, Callable[[Any, Any], None]], pool: list[bytes],
                      rcv: Any, messages: int, rounds: int) -> dict[str, float]:
    best = dict.fromkeys(variants, float("inf"))
    npool = len(pool)
    for _ in range(rounds):
        for name, fn in variants.items():
            t0 = time.process_time()
            for i in range(messages):
                fn(pool[i % npool], rcv)
            best[name] = min(best[name], time.process_time() - t0)
    return {name: round(t / messages * 1e6, 3) for name, t in best.items()}


def bench_mark(messages: int, rounds: int) -> dict[str, float]:
    from kemi_core.runtime.board import WorkerBoard
    from kemi_core.runtime.context import RecvInfo
    from kemi_core.runtime.drain import EntryGate
    from kemi_core.testing.udp_client import request
    from kemi_core.transport.receiver import deliver_datagram

    with tempfile.TemporaryDirectory(prefix="kemi-bench-sup-") as tmp:
        dispatcher, _ = engines.build("native", "trivial", Path(tmp))
        board = WorkerBoard(1)
        busy, index = board.busy_cell(1)
        gated = EntryGate(dispatcher.core, busy, index).receiver(dispatcher)
        rcv = RecvInfo("udp", "127.0.0.1", 40000, "127.0.0.1", 5060)
        pool = [request("OPTIONS", "sip:bob@127.0.0.1", 40000) for _ in range(200)]

        def marked(data: bytes, rcv: RecvInfo) -> None:
            deliver_datagram(gated, data, rcv, dispatcher.limits)

        for data in pool:
            marked(data, rcv)
        return _best_interleaved({"plain": dispatcher.on_data, "marked": marked}, pool, rcv,
                                 messages, rounds)


def bench_lua_hook(messages: int, rounds: int) -> dict[str, float]:
    import attrs

    from kemi_core.runtime.context import RecvInfo
    from kemi_core.testing.udp_client import request
    from kemi_engine_lua.runtime import WATCH_COUNT

    variants: dict[str, Callable[[Any, Any], None]] = {}
    with tempfile.TemporaryDirectory(prefix="kemi-bench-sup-") as tmp:
        for name, count in (("no_hook", 0), ("hook", WATCH_COUNT)):
            work = Path(tmp) / name
            work.mkdir()
            dispatcher, _ = engines.build("lua", "realistic", work)
            engine = dispatcher.core.engine
            engine.settings = attrs.evolve(engine.settings, watch_count=count)
            engine.load()  # a new Lua runtime, with or without the hook
            variants[name] = dispatcher.on_data
        rcv = RecvInfo("udp", "127.0.0.1", 40000, "127.0.0.1", 5060)
        pool = [request(engines.METHODS[i % len(engines.METHODS)], "sip:bob@127.0.0.1", 40000)
                for i in range(600)]
        for fn in variants.values():
            for data in pool:
                fn(data, rcv)
        return _best_interleaved(variants, pool, rcv, messages, rounds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=30000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    logging.disable(logging.INFO)
    mark = bench_mark(args.messages, args.rounds)
    hook = bench_lua_hook(args.messages, args.rounds)
    print(f"busy mark: {mark['plain']:.2f} us/msg plain, {mark['marked']:.2f} marked "
          f"(+{mark['marked'] - mark['plain']:.2f} us)")
    print(f"lua count hook: {hook['no_hook']:.2f} us/msg without, {hook['hook']:.2f} with "
          f"(+{hook['hook'] - hook['no_hook']:.2f} us)")
    print(json.dumps({"mark": mark, "lua_hook": hook}))


if __name__ == "__main__":
    main()
