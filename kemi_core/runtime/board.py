"""The worker board: one slot per worker rank in shared memory, made before the fork.

Each worker writes its own slot; the main process reads all of them (the watchdog, the
``core.workers`` RPC). On every message a worker stores "busy since" (a ``time.monotonic()``
value, system-wide on Linux) and clears it when done: two stores into an mmap, ~90 ns with the
wrapper. A worker asked where it is stuck writes a short report (route, file:line) there too.
No locks: each field has one writer, and a torn read of a report is caught by its sequence.
"""

from __future__ import annotations

import mmap
import time
from typing import Any

import attrs

#: Slot layout: float64 fields, then int64 fields, then the report text.
_F_BUSY, _F_BEAT = 0, 1  # busy since; the last heartbeat (the worker's loop turning)
_N_FLOATS = 2
_I_PID, _I_STATE, _I_REPORT_SEQ, _I_REPORT_LEN, _I_LOG_GEN, _I_RETIRE = 0, 1, 2, 3, 4, 5
_N_INTS = 6
REPORT_SIZE = 472
SLOT_SIZE = 8 * (_N_FLOATS + _N_INTS) + REPORT_SIZE  # a multiple of 8

#: Worker states.
STARTING, READY, DRAINING = 1, 2, 3
STATE_NAMES = {0: "down", STARTING: "starting", READY: "ready", DRAINING: "draining"}


@attrs.frozen
class SlotView:
    """What the main process reads of one worker's slot."""

    rank: int
    pid: int
    state: str
    busy_since: float  # 0.0 when idle
    beat: float  # the worker's last heartbeat (time.monotonic())
    report_seq: int
    report: str


class WorkerBoard:
    """Slots for ranks 0..n (0: the main process, unused by workers)."""

    def __init__(self, workers: int) -> None:
        self.slots = workers + 1
        self._mm = mmap.mmap(-1, self.slots * SLOT_SIZE)
        self._f = memoryview(self._mm).cast("d")
        self._i = memoryview(self._mm).cast("q")

    def _fi(self, rank: int, field: int) -> int:
        return rank * (SLOT_SIZE // 8) + field

    def _ii(self, rank: int, field: int) -> int:
        return rank * (SLOT_SIZE // 8) + _N_FLOATS + field

    def _check(self, rank: int) -> None:
        if not 0 < rank < self.slots:
            raise IndexError(f"no board slot for worker rank {rank}")

    # ---- the worker's side ----------------------------------------------------------------
    def start(self, rank: int, pid: int) -> None:
        """A (new) worker takes its slot: everything the last one left is cleared."""
        self._check(rank)
        base = rank * SLOT_SIZE
        self._mm[base:base + SLOT_SIZE] = bytes(SLOT_SIZE)
        self._i[self._ii(rank, _I_PID)] = pid
        self._i[self._ii(rank, _I_STATE)] = STARTING
        self._f[self._fi(rank, _F_BEAT)] = time.monotonic()

    def beat(self, rank: int) -> None:
        """The worker's event loop is turning (written when it answers its doorbell)."""
        self._f[self._fi(rank, _F_BEAT)] = time.monotonic()

    def set_state(self, rank: int, state: int) -> None:
        self._i[self._ii(rank, _I_STATE)] = state

    def busy_cell(self, rank: int) -> tuple[Any, int]:
        """(float64 view, index) of the worker's busy-since: the message path writes it
        directly (``view[index] = time.monotonic()`` at the start, ``0.0`` at the end)."""
        self._check(rank)
        return self._f, self._fi(rank, _F_BUSY)

    def retire_requested(self, rank: int) -> bool:
        return bool(self._i[self._ii(rank, _I_RETIRE)])

    def write_report(self, rank: int, text: str) -> None:
        data = text.encode("utf-8", "replace")[:REPORT_SIZE]
        base = rank * SLOT_SIZE + 8 * (_N_FLOATS + _N_INTS)
        self._mm[base:base + len(data)] = data
        self._i[self._ii(rank, _I_REPORT_LEN)] = len(data)
        self._i[self._ii(rank, _I_REPORT_SEQ)] += 1

    # ---- the main process's side ------------------------------------------------------------
    def read(self, rank: int) -> SlotView:
        self._check(rank)
        size = min(max(self._i[self._ii(rank, _I_REPORT_LEN)], 0), REPORT_SIZE)
        base = rank * SLOT_SIZE + 8 * (_N_FLOATS + _N_INTS)
        return SlotView(rank=rank, pid=self._i[self._ii(rank, _I_PID)],
                        state=STATE_NAMES.get(self._i[self._ii(rank, _I_STATE)], "?"),
                        busy_since=self._f[self._fi(rank, _F_BUSY)],
                        beat=self._f[self._fi(rank, _F_BEAT)],
                        report_seq=self._i[self._ii(rank, _I_REPORT_SEQ)],
                        report=self._mm[base:base + size].decode("utf-8", "replace"))

    def answers_doorbell(self, rank: int) -> bool:
        """Whether the worker of ``rank`` answers its doorbell (doorbell.py): ready or draining
        (a starting worker looks at its slot once it does)."""
        return self._i[self._ii(rank, _I_STATE)] in (READY, DRAINING)

    def pulse(self, rank: int) -> tuple[float, float, int, int]:
        """(busy since, last heartbeat, state, report sequence) of ``rank``: what the watchdog
        reads of each worker at each look, without the rest of ``read``."""
        f, i = self._fi(rank, 0), self._ii(rank, 0)
        return (self._f[f + _F_BUSY], self._f[f + _F_BEAT], self._i[i + _I_STATE],
                self._i[i + _I_REPORT_SEQ])

    def request_retire(self, rank: int) -> None:
        """Ask the worker to finish its transactions and exit (it is then replaced)."""
        self._i[self._ii(rank, _I_RETIRE)] = 1

    def clear(self, rank: int) -> None:
        """The worker of ``rank`` is gone: its slot reads as down and idle."""
        self._check(rank)
        self._i[self._ii(rank, _I_STATE)] = 0
        self._i[self._ii(rank, _I_PID)] = 0
        self._f[self._fi(rank, _F_BUSY)] = 0.0

    # ---- the server stops (slot 0's state, written by the main process) -----------------------
    def mark_stopping(self) -> None:
        """The server is stopping: set by the main process before it signals the workers."""
        self._i[self._ii(0, _I_STATE)] = DRAINING

    def stopping(self) -> bool:
        return self._i[self._ii(0, _I_STATE)] == DRAINING

    def still_routing(self, rank: int) -> list[int]:
        """The other workers that have not taken the stop yet (starting or ready): they still
        route new requests."""
        return [r for r in range(1, self.slots) if r != rank
                and self._i[self._ii(r, _I_STATE)] in (STARTING, READY)]

    # ---- log reopening (SIGHUP) ---------------------------------------------------------------
    def bump_log_generation(self) -> int:
        """Ask every worker to reopen its log files (slot 0's counter: each worker reads it
        when its doorbell rings, and once as it starts)."""
        self._i[self._ii(0, _I_LOG_GEN)] += 1
        return int(self._i[self._ii(0, _I_LOG_GEN)])

    def log_generation(self) -> int:
        return int(self._i[self._ii(0, _I_LOG_GEN)])
