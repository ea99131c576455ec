"""tm statistics in shared memory, readable from the main process (the tm.stats RPC).

Kamailio keeps tm's counters in shared memory. Here the array is created in mod_init, before
the workers are forked, so every process maps the same pages. Each process writes only its own
row (its worker rank), so no lock is needed; the RPC adds the rows up. A worker that dies and is
restarted keeps adding to its row; transactions it held when it died stay counted as current.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any

FIELDS = ("created", "freed", "replied_locally", "relayed_replies", "2xx", "3xx", "4xx",
          "5xx", "6xx", "rpl_received", "uac_sent")
_INDEX = {name: i for i, name in enumerate(FIELDS)}
_NFIELDS = len(FIELDS)


class SharedStats:
    def __init__(self, processes: int) -> None:
        self.rows = max(processes, 1) + 1  # row 0: main process / offline use
        self._data: Any = multiprocessing.RawArray("q", self.rows * len(FIELDS))
        #: this process's row: the worker rank (the core sets worker_rank after fork)
        self.rank_of: Callable[[], int] = lambda: 0

    def _at(self, name: str) -> int:
        rank = self.rank_of()
        row = rank if 0 <= rank < self.rows else 0
        return row * len(FIELDS) + _INDEX[name]

    def incr(self, name: str, by: int = 1) -> None:
        rank = self.rank_of()
        row = rank if 0 <= rank < self.rows else 0
        self._data[row * _NFIELDS + _INDEX[name]] += by  # (inlined _at: on every message)

    def final(self, status: int) -> None:
        cls = status // 100
        if 2 <= cls <= 6:
            self.incr(f"{cls}xx")

    def row(self, rank: int) -> dict[str, int]:
        base = rank * len(FIELDS)
        return {name: int(self._data[base + i]) for i, name in enumerate(FIELDS)}

    def totals(self) -> dict[str, int]:
        out = dict.fromkeys(FIELDS, 0)
        for rank in range(self.rows):
            for name, value in self.row(rank).items():
                out[name] += value
        out["current"] = out["created"] - out["freed"]
        return out
