"""Cost of the shared store between two processes (what a worker pays per lookup and write).

Two forked processes use one store in /dev/shm, as two workers do: while one of them hammers
the store (writes, or reads), the other times its own operations. Values are registrations
shaped like usrloc's (a list of contact dicts pickled per AOR).

    .venv/bin/python bench/shared_store.py [--n 50000]
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from collections.abc import Callable

from kemi_core.shared import SharedStore, SharedTable

KEYS = 10_000


def contact(i: int) -> list[dict[str, object]]:
    return [{"aor": f"user{i}", "c": f"sip:user{i}@10.0.{i % 250}.{i % 199}:5060;transport=udp",
             "received": None, "path": None, "expires": time.time() + 3600, "q": -1,
             "callid": f"{i:08x}-callid@host", "cseq": i, "flags": 0, "cflags": 0,
             "user_agent": "SIPp bench", "socket": "udp:127.0.0.1:5060", "methods": -1,
             "ruid": f"uloc-{i:x}", "instance": None, "reg_id": 0, "last_modified": 0}]


def per_op_us(fn: Callable[[int], object], n: int) -> tuple[float, float]:
    """Wall and CPU microseconds per call of ``fn(i)`` over ``n`` calls."""
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        fn(i)
    return ((time.perf_counter() - w0) / n * 1e6, (time.process_time() - c0) / n * 1e6)


def background(table: SharedTable, kind: str) -> int:
    """A second process doing ``kind`` (writes/reads) until killed."""
    pid = os.fork()
    if pid:
        return pid
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    i = 0
    try:
        while True:
            key = f"user{i % KEYS}"
            if kind == "writes":
                table.put(key, contact(i % KEYS))
            else:
                table.get(key)
            i += 1
    finally:
        os._exit(0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    args = ap.parse_args()
    n = args.n
    store = SharedStore.create()
    table = store.table("location")
    counters = store.table("counters")
    for i in range(KEYS):
        table.put(f"user{i}", contact(i))
    print(f"shared store at {store.path} (LMDB {'.'.join(map(str, store.env().lib_version()))})")
    print(f"{KEYS} AORs of {len(contact(1)[0])} fields; {n} operations per row; 2 processes")
    print(f"{'operation':44} {'other process':14} {'wall us/op':>11} {'cpu us/op':>10}")
    ops: list[tuple[str, Callable[[int], object]]] = [
        ("get (hit, unpickle a contact list)", lambda i: table.get(f"user{i % KEYS}")),
        ("get (miss)", lambda i: table.get(f"nobody{i}")),
        ("put (pickle a contact list)", lambda i: table.put(f"user{i % KEYS}", contact(i % KEYS))),
        ("update (read-modify-write of a record)",
         lambda i: table.update(f"user{i % KEYS}", lambda v: v)),
        ("incr (counter)", lambda i: counters.incr("c")),
        ("put with ttl (expiry index kept)",
         lambda i: counters.put(f"n{i % KEYS}", i, ttl=600)),
    ]
    try:
        for other in ("idle", "writes", "reads"):
            pid = background(table, other) if other != "idle" else 0
            try:
                time.sleep(0.2)
                for name, fn in ops:
                    wall, cpu = per_op_us(fn, n)
                    print(f"{name:44} {other:14} {wall:11.2f} {cpu:10.2f}")
            finally:
                if pid:
                    os.kill(pid, signal.SIGTERM)
                    os.waitpid(pid, 0)
        wall, cpu = per_op_us(lambda i: table.items("user1"), 20)
        print(f"{'items(prefix) over 1,111 of 10,000 AORs':44} {'idle':14} {wall:11.2f} {cpu:10.2f}")
    finally:
        store.remove()


if __name__ == "__main__":
    main()
