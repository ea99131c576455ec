"""Counters that cross processes: ``core.counter(group, name)`` and ``core.gauge(...)``.

KEMI functions run in forked workers, RPC commands in the main process, so a module's counter
must live in shared memory. The Core maps two blocks of anonymous shared memory when it is made
(before any fork): a table of counter **names** and a table of **values** with one row per
process (worker rank; 0 is the main process) and one column per counter. An increment adds to
this process's own slot: one unlocked 64-bit add, no system call. Reading sums the rows.

``core.counter(group, name)`` returns the same counter however often, wherever it is called: the
first call anywhere takes a column under a lock and writes the name into the shared table, so a
counter declared in a worker is seen by the main process too (and enumerated by the statistics).
Declaring counters in ``mod_register`` or ``mod_init`` and keeping the object is the cheap way
(a later call costs a dict lookup, a first call in a process a short scan of the names).
There is room for ``CAPACITY`` counters per server.

Reset without losing increments: a last row holds each counter's *base*; ``value`` is the sum of
the rows minus the base, and ``reset()`` moves the base to the current sum.

This table is kemi's statistics: the statistics RPCs and metrics enumerate it (``iter(table)``:
every counter, whichever process declared it, and the gauges of this process, with group and
name, in declaration order).
"""

from __future__ import annotations

import logging
import mmap
import multiprocessing
import struct
from collections.abc import Callable, Iterator
from typing import Literal

from kemi_core.errors import ModuleError

log = logging.getLogger("kemi.counters")

#: Counters one server can hold.
CAPACITY = 4096
#: Bytes per name entry: 1 (kind) + 1 (length) + ``group:name`` in UTF-8.
_ENTRY = 96
_COUNT = struct.Struct("q")  # entries in use, at the start of the name table

Kind = Literal["counter", "gauge"]
_KIND_CODE = {"counter": b"c", "gauge": b"g"}
_CODE_KIND: dict[int, Kind] = {ord("c"): "counter", ord("g"): "gauge"}


class Counter:
    """A 64-bit integer summed over every process: ``inc(n)`` anywhere, ``value`` anywhere.

    ``kind`` "counter" counts events (reset by the statistics reset RPC); "gauge" is a level that
    goes up and down (``inc(-1)``; never reset, like Kamailio's STAT_NO_RESET).
    """

    __slots__ = ("_base", "_column", "_parts", "_rows", "_stride", "doc", "group", "kind", "name",
                 "slot", "view")

    def __init__(self, group: str, name: str, doc: str, kind: Kind, view: memoryview,
                 column: int, rows: int, stride: int, row: int) -> None:
        self.group = group
        self.name = name
        self.doc = doc
        self.kind: Kind = kind
        #: the shared table of counts, and this process's place in it: ``view[slot] += n`` is
        #: what ``inc(n)`` does, for a hot caller that keeps ``view`` and saves the call
        #: (``slot`` moves when the process binds its row after the fork: read it each time)
        self.view = view
        self._column = column
        self._rows = rows
        self._stride = stride
        self._base = rows * stride + column
        self.slot = row * stride + column
        self._parts: tuple[Counter, ...] = ()

    def inc(self, n: int = 1) -> None:
        """Add ``n`` (may be negative) in this process's slot: no lock, no system call."""
        self.view[self.slot] += n

    def sum_of(self, parts: list[Counter]) -> None:
        """Count every event the ``parts`` count, too: a family's total (all requests, all
        replies by class) without a second increment per event on the message path. Its own
        ``inc`` still counts (the events no part takes), and its reset moves its own base only
        (a part's reset does not touch the total, as with two separate counters)."""
        self._parts = tuple(parts)

    def _raw(self, rank: int | None = None) -> int:
        """Increments since start (no reset applied): every process's, or one rank's."""
        view, col, stride = self.view, self._column, self._stride
        if rank is not None:
            return int(view[rank * stride + col]) + sum(p._raw(rank) for p in self._parts)
        return (sum(view[r * stride + col] for r in range(self._rows))
                + sum(p._raw() for p in self._parts))

    @property
    def value(self) -> int:
        """The sum over every process (since the last reset)."""
        return self._raw() - self.view[self._base]

    def by_rank(self) -> dict[int, int]:
        """Raw counts per process rank (0: main process), since start, non-zero ones only."""
        counts = {r: self._raw(r) for r in range(self._rows)}
        return {r: v for r, v in counts.items() if v}

    def reset(self) -> int:
        """Start again from 0 (a gauge is left alone); returns the value before."""
        before = self.value
        if self.kind == "counter":
            self.view[self._base] += before
        return before

    def _bind(self, row: int) -> None:
        self.slot = row * self._stride + self._column

    def __repr__(self) -> str:
        return f"<Counter {self.group}:{self.name} = {self.value}>"


class Gauge:
    """A statistic computed when read, in the process that declared it (the main process for
    one declared in mod_register/mod_init): ``read()`` returns an int."""

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

    def __init__(self, processes: int, capacity: int = CAPACITY) -> None:
        #: Rows of counts: one per process rank, 0 (main) to ``processes`` (the last worker).
        self.rows = max(processes, 1) + 1
        self.capacity = capacity
        values = mmap.mmap(-1, (self.rows + 1) * capacity * 8)  # MAP_SHARED | MAP_ANONYMOUS
        self._values = memoryview(values).cast("q")
        self._names = mmap.mmap(-1, _COUNT.size + capacity * _ENTRY)
        self._lock = multiprocessing.get_context("fork").Lock()  # taken to add a name only
        self._counters: dict[tuple[str, str], Counter] = {}  # this process's view
        self._order: list[Counter] = []  # by column, as far as this process has read
        self._gauges: dict[tuple[str, str], Gauge] = {}
        self._row = 0

    # ---- declaring (any process) ---------------------------------------------------------
    def counter(self, group: str, name: str, doc: str = "", kind: Kind = "counter") -> Counter:
        """The counter ``group:name``, made on first use (see the module docstring)."""
        key = (group, name)
        found = self._counters.get(key)
        if found is None:
            _check_name(group, name)
            if kind not in _KIND_CODE:
                raise ModuleError(f"counter {group}:{name}: kind must be 'counter' or 'gauge'")
            if key in self._gauges:
                raise ModuleError(f"statistic {group}:{name} is a computed gauge already")
            found = self._claim(group, name, doc, kind)
        if found.kind != kind:
            raise ModuleError(f"counter {group}:{name} is a {found.kind}, not a {kind}")
        if doc and not found.doc:
            found.doc = doc
        return found

    def gauge(self, group: str, name: str, read: Callable[[], int], doc: str = "") -> Gauge:
        """A statistic computed by ``read()`` in this process when read."""
        _check_name(group, name)
        self._sync()
        if (group, name) in self._counters or (group, name) in self._gauges:
            raise ModuleError(f"statistic {group}:{name} is declared twice")
        gauge = Gauge(group, name, read, doc)
        self._gauges[(group, name)] = gauge
        return gauge

    def _claim(self, group: str, name: str, doc: str, kind: Kind) -> Counter:
        with self._lock:
            self._sync()
            found = self._counters.get((group, name))
            if found is not None:
                return found
            column = len(self._order)
            if column >= self.capacity:
                raise ModuleError(f"counter {group}:{name}: all {self.capacity} counters are "
                                  "in use")
            text = f"{group}:{name}".encode()
            entry = _KIND_CODE[kind] + bytes([len(text)]) + text
            start = _COUNT.size + column * _ENTRY
            self._names[start:start + len(entry)] = entry
            _COUNT.pack_into(self._names, 0, column + 1)  # last: the entry is complete
        return self._adopt(column, group, name, kind, doc)

    def _sync(self) -> None:
        """Read the names other processes added since this one last looked."""
        (count,) = _COUNT.unpack_from(self._names, 0)
        for column in range(len(self._order), count):
            start = _COUNT.size + column * _ENTRY
            kind = _CODE_KIND[self._names[start]]
            size = self._names[start + 1]
            group, _, name = self._names[start + 2:start + 2 + size].decode().partition(":")
            self._adopt(column, group, name, kind, "")

    def _adopt(self, column: int, group: str, name: str, kind: Kind, doc: str) -> Counter:
        counter = Counter(group, name, doc, kind, self._values, column, self.rows,
                          self.capacity, self._row)
        self._counters[(group, name)] = counter
        self._order.append(counter)
        return counter

    # ---- after the fork ----------------------------------------------------------------
    def bind(self, rank: int) -> None:
        """This process is worker ``rank`` (0: the main process): count in its row from now."""
        row = rank
        if not 0 <= rank < self.rows:
            log.error("worker rank %d has no counter row (only %d workers were planned): "
                      "its counts go to the main process's row", rank, self.rows - 1)
            row = 0
        self._row = row
        for counter in self._counters.values():
            counter._bind(row)

    # ---- reading (any process; the statistics RPCs run in the main one) -----------------
    def __iter__(self) -> Iterator[Statistic]:
        self._sync()
        stats: list[Statistic] = [*self._order, *self._gauges.values()]
        return iter(stats)

    def __len__(self) -> int:
        self._sync()
        return len(self._order) + len(self._gauges)

    def get(self, group: str, name: str) -> Statistic | None:
        self._sync()
        return self._counters.get((group, name)) or self._gauges.get((group, name))

    def groups(self) -> list[str]:
        """Group names in declaration order."""
        return list(dict.fromkeys(s.group for s in self))

    def select(self, group: str | None = None, name: str | None = None) -> list[Statistic]:
        """Statistics matching ``group`` and/or ``name`` (None matches all)."""
        return [s for s in self if (group is None or s.group == group)
                and (name is None or s.name == name)]

    def reset(self, group: str | None = None, name: str | None = None) -> int:
        """Reset the matching counters (gauges stay); returns how many were reset."""
        picked = [s for s in self.select(group, name) if s.kind == "counter"]
        for stat in picked:
            stat.reset()
        return len(picked)

    def snapshot(self) -> dict[str, int]:
        """``{"group:name": value}`` of every statistic, in declaration order."""
        return {f"{s.group}:{s.name}": s.value for s in self}


def _check_name(group: str, name: str) -> None:
    for part in (group, name):
        if not part or any(c in part for c in ": \t\r\n"):
            raise ModuleError(f"counter {group!r}:{name!r}: group and name must be non-empty, "
                              "without ':' or blanks")
    if len(f"{group}:{name}".encode()) > _ENTRY - 2:
        raise ModuleError(f"counter {group}:{name}: the name is longer than {_ENTRY - 2} bytes")
