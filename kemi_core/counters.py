"""Counters that cross processes: ``core.counter(group, name)`` and ``core.gauge(...)``.

KEMI functions run in forked workers, RPC commands in the main process, so a module's counter
must be shared memory. Here every counter is a column in a block of anonymous shared memory
(``mmap``) made in the main process **before the fork**; each process adds to its own row (its
worker rank, 0 for the main process), so an increment is one unlocked 64-bit add, and reading
sums the rows. A worker that dies and is restarted keeps adding to its row.

That is why counters must be declared before the workers start: in ``mod_register`` or
``mod_init``. Declaring one later raises ModuleError (a worker would never see it).

Reset without locks: a last row holds each counter's *base*; ``value`` is the sum of the rows
minus the base, and ``reset()`` moves the base to the current sum, so an increment racing with a
reset is never lost or doubled.

This table is kemi's statistics: the statistics RPCs and metrics enumerate it (``iter(table)``
gives every counter and gauge with its group and name, in declaration order).
"""

from __future__ import annotations

import logging
import mmap
from collections.abc import Callable, Iterator
from typing import Literal

from kemi_core.errors import ModuleError

log = logging.getLogger("kemi.counters")

#: Counters per shared block; a block is (rows + 1) * BLOCK * 8 bytes.
BLOCK = 512

Kind = Literal["counter", "gauge"]


class Counter:
    """A 64-bit integer summed over every process: ``inc(n)`` anywhere, ``value`` anywhere.

    ``kind`` "counter" counts events (reset by the statistics reset RPC); "gauge" is a level that
    goes up and down (``inc(-1)``; never reset, like Kamailio's STAT_NO_RESET).
    """

    __slots__ = ("_base", "_column", "_rows", "_slot", "_stride", "_view", "doc", "group", "kind",
                 "name")

    def __init__(self, group: str, name: str, doc: str, kind: Kind, view: memoryview,
                 column: int, rows: int) -> None:
        self.group = group
        self.name = name
        self.doc = doc
        self.kind: Kind = kind
        self._view = view
        self._column = column
        self._rows = rows
        self._stride = BLOCK
        self._base = rows * BLOCK + column
        self._slot = column  # row 0 (main process) until bind()

    def inc(self, n: int = 1) -> None:
        """Add ``n`` (may be negative) in this process's slot: no lock, no system call."""
        self._view[self._slot] += n

    @property
    def value(self) -> int:
        """The sum over every process (since the last reset)."""
        view, col, stride = self._view, self._column, self._stride
        return sum(view[r * stride + col] for r in range(self._rows)) - view[self._base]

    def by_rank(self) -> dict[int, int]:
        """Raw counts per process rank (0: main process), since start, non-zero ones only."""
        view, col, stride = self._view, self._column, self._stride
        counts = {r: int(view[r * stride + col]) for r in range(self._rows)}
        return {r: v for r, v in counts.items() if v}

    def reset(self) -> int:
        """Start again from 0 (a gauge is left alone); returns the value before."""
        before = self.value
        if self.kind == "counter":
            self._view[self._base] += before
        return before

    def _bind(self, row: int) -> None:
        self._slot = row * self._stride + self._column

    def __repr__(self) -> str:
        return f"<Counter {self.group}:{self.name} = {self.value}>"


class Gauge:
    """A statistic computed when read, in the reading process: ``read()`` returns an int."""

    __slots__ = ("doc", "group", "kind", "name", "read")

    def __init__(self, group: str, name: str, read: Callable[[], int], doc: str) -> None:
        self.group = group
        self.name = name
        self.doc = doc
        self.kind: Kind = "gauge"
        self.read = read

    @property
    def value(self) -> int:
        return int(self.read())

    def reset(self) -> int:
        """Gauges are not reset; returns the current value."""
        return self.value

    def __repr__(self) -> str:
        return f"<Gauge {self.group}:{self.name}>"


Statistic = Counter | Gauge


class CounterTable:
    """Every counter and gauge of one server, by (group, name), in declaration order."""

    def __init__(self, processes: int) -> None:
        #: Rows of counts: one per process rank, 0 (main) to ``processes`` (the last worker).
        self.rows = max(processes, 1) + 1
        self._stats: dict[tuple[str, str], Statistic] = {}
        self._blocks: list[memoryview] = []
        self._used = BLOCK  # columns used in the last block (full: a new block is needed)
        self._row = 0
        self.sealed = False

    # ---- declaring (main process, before the fork) ---------------------------------------
    def counter(self, group: str, name: str, doc: str = "", kind: Kind = "counter") -> Counter:
        self._check_new(group, name)
        if kind not in ("counter", "gauge"):
            raise ModuleError(f"counter {group}:{name}: kind must be 'counter' or 'gauge'")
        if self._used == BLOCK:
            mm = mmap.mmap(-1, (self.rows + 1) * BLOCK * 8)  # MAP_SHARED | MAP_ANONYMOUS
            self._blocks.append(memoryview(mm).cast("q"))
            self._used = 0
        counter = Counter(group, name, doc, kind, self._blocks[-1], self._used, self.rows)
        counter._bind(self._row)
        self._used += 1
        self._stats[(group, name)] = counter
        return counter

    def gauge(self, group: str, name: str, read: Callable[[], int], doc: str = "") -> Gauge:
        self._check_new(group, name)
        gauge = Gauge(group, name, read, doc)
        self._stats[(group, name)] = gauge
        return gauge

    def _check_new(self, group: str, name: str) -> None:
        if self.sealed:
            raise ModuleError(
                f"counter {group}:{name} declared after the workers started: declare counters "
                "in mod_register or mod_init (they live in memory shared before the fork)")
        for part in (group, name):
            if not part or any(c in part for c in ": \t\r\n"):
                raise ModuleError(f"counter {group!r}:{name!r}: group and name must be non-empty, "
                                  "without ':' or blanks")
        if (group, name) in self._stats:
            raise ModuleError(f"counter {group}:{name} is declared twice")

    # ---- after the fork ----------------------------------------------------------------
    def bind(self, rank: int) -> None:
        """This process is worker ``rank`` (0: the main process): count in its row from now."""
        row = rank
        if not 0 <= rank < self.rows:
            log.error("worker rank %d has no counter row (only %d workers were planned): "
                      "its counts go to the main process's row", rank, self.rows - 1)
            row = 0
        self._row = row
        if rank != 0:
            self.sealed = True
        for stat in self._stats.values():
            if isinstance(stat, Counter):
                stat._bind(row)

    def seal(self) -> None:
        """The workers are forked: no more declarations (the main process calls this)."""
        self.sealed = True

    # ---- reading (any process; the statistics RPCs run in the main one) -----------------
    def __iter__(self) -> Iterator[Statistic]:
        return iter(list(self._stats.values()))

    def __len__(self) -> int:
        return len(self._stats)

    def get(self, group: str, name: str) -> Statistic | None:
        return self._stats.get((group, name))

    def groups(self) -> list[str]:
        """Group names in declaration order."""
        return list(dict.fromkeys(g for g, _ in self._stats))

    def select(self, group: str | None = None, name: str | None = None) -> list[Statistic]:
        """Statistics matching ``group`` and/or ``name`` (None matches all)."""
        return [s for (g, n), s in self._stats.items()
                if (group is None or g == group) and (name is None or n == name)]

    def reset(self, group: str | None = None, name: str | None = None) -> int:
        """Reset the matching counters (gauges stay); returns how many were reset."""
        picked = [s for s in self.select(group, name) if s.kind == "counter"]
        for stat in picked:
            stat.reset()
        return len(picked)

    def snapshot(self) -> dict[str, int]:
        """``{"group:name": value}`` of every statistic, in declaration order."""
        return {f"{s.group}:{s.name}": s.value for s in self._stats.values()}
