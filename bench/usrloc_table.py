"""usrloc's records in the LMDB shared store vs the C shared-memory table, in process.

Registers ``--users`` users through bench/register_profile.py's memory config (a router, the
real registrar and usrloc), then times, on the records that left:

- ``store``: the record change a refresh REGISTER makes (``update_never`` with usrloc's
  update_one change, the contact's CSeq raised), users in turn: on the LMDB SharedTable
  (begin, get, decode or the remembered value, pickle, put, commit) and on a ShmTable holding
  the same records (lock, find, pickle, copy, unlock);
- ``collect``: the timer's work per tick when nothing is due: MemDomain.collect as usrloc runs
  it (whichever table it has), and the two tables' reads behind it (every record unpickled, and
  the ShmTable's due walk).

CPU time (process_time_ns) per operation, median of ``--rounds`` rounds. In process and warm:
a real worker at one REGISTER per wake-up pays more for each (colder caches); see
bench/wake_ceiling.py --save for the compiled save's own C, cold and warm.

    python bench/usrloc_table.py [--users 1000,10000] [--rounds 5] [--changes 20000]

Run from another tree (``PYTHONPATH`` of main's, as bench/register.py's ``--kemi-b``) it gives
that tree's collect; the C table's columns are empty where it has none.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import register_profile as rp  # noqa: E402

from kemi_core.runtime.context import RecvInfo  # noqa: E402


def _registered(work: Path, users: int) -> Any:
    """A router whose usrloc holds ``users`` AORs (one contact each); its location domain."""
    import kemi_usrloc

    router = rp._router("memory", work)
    sink = rp.Sink(router.wire.listen)
    router.core.attach_transport(sink)
    rcv = RecvInfo("udp", "127.0.0.1", 5070, "127.0.0.1", 5060)
    for data in rp._messages("memory", router, sink, users, users, offline=True)(0):
        router.dispatcher.on_data(data, rcv)
    ul = kemi_usrloc._state.ul
    assert ul is not None
    return router, ul.domain("location")


def _per_op(fn: Any, n: int) -> float:
    start = time.process_time_ns()
    fn(n)
    return (time.process_time_ns() - start) / n / 1000


def _refresh(old: Any, arg: Any) -> Any:
    return old._replace(cseq=old.cseq + 1)


def run(users: int, rounds: int, changes: int) -> dict[str, float]:
    from kemi_usrloc.domain import _CHANGE_ONE

    with tempfile.TemporaryDirectory(prefix="kemi-usrloc-table-") as tmp:
        router, dom = _registered(Path(tmp), users)
        records = dom.table.items()
        assert len(records) == users, (len(records), users)
        store = dom.table.store
        lmdb_table = store.table("bench:lmdb")
        lmdb_table.keep_decoded()
        # (None: a tree without the C table, e.g. --kemi-b's main for collect's "before")
        shm = store.shm_table("bench:shm", 3) if hasattr(store, "shm_table") else None
        tables = [lmdb_table] if shm is None else [lmdb_table, shm]
        for table in tables:
            table.keep_decoded()
            for key, raw in records:
                table.put(key, raw)
        keys = [k for k, _ in records]
        arg = (_refresh, None)

        def changes_on(table: Any) -> Any:
            def loop(n: int) -> None:
                for i in range(n):
                    table.update_never(keys[i % users], _CHANGE_ONE, arg)
            return loop

        now = router.core.clock.wall()
        out: dict[str, list[float]] = {k: [] for k in (
            "store_lmdb", "store_shm", "collect", "items_lmdb", "items_shm", "due_shm")}
        for _ in range(rounds):
            out["store_lmdb"].append(_per_op(changes_on(lmdb_table), changes))
            out["collect"].append(_per_op(lambda n: [dom.collect(now) for _ in range(n)], 3))
            out["items_lmdb"].append(_per_op(lambda n: [lmdb_table.items() for _ in range(n)], 3))
            if shm is not None:
                out["store_shm"].append(_per_op(changes_on(shm), changes))
                out["items_shm"].append(_per_op(lambda n: [shm.items() for _ in range(n)], 3))
                out["due_shm"].append(_per_op(lambda n: [shm.due(now) for _ in range(n)], 3))
        return {k: round(sorted(v)[len(v) // 2], 2) if v else float("nan")
                for k, v in out.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="1000,10000")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--changes", type=int, default=20000)
    opts = parser.parse_args()
    print(f"{'users':>6} {'store lmdb':>11} {'store shm':>10} {'collect':>10} "
          f"{'items lmdb':>11} {'items shm':>10} {'due shm':>9}   (us of CPU each)")
    for users in (int(u) for u in opts.users.split(",")):
        r = run(users, opts.rounds, opts.changes)
        print(f"{users:>6} {r['store_lmdb']:>11} {r['store_shm']:>10} {r['collect']:>10} "
              f"{r['items_lmdb']:>11} {r['items_shm']:>10} {r['due_shm']:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
