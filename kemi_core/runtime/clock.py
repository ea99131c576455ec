"""The clock and timers of one process: ``core.clock``, what every module uses for "now" and for
"run this at time T".

For module authors::

    clock = core.clock
    clock.now()                                  # monotonic seconds (never read time.monotonic())
    clock.wall()                                 # Unix time, for timestamps stored or shown
    t = clock.call_at(deadline, fn, *args)       # fn(*args) once, at ``deadline`` on now()'s scale
    t = clock.call_later(delay, fn, *args)       # the same, ``delay`` seconds from now
    t = clock.call_every(interval, fn, *args)    # periodic work (expiry sweeps, probing)
    t.cancel()

Timers run in the process that owns them, between messages, never concurrently. A timer made in
``mod_init`` (main process, before the fork) is copied into every worker with the rest of the
module's state, so per-worker work (each worker's transactions) goes there or in
``child_init(rank)``. Work that must happen once for the whole server (sweeping state the workers
share, e.g. expired registrations) is ``core.add_housekeeping(fn, interval)``: the main process
runs it, and a test router runs it on its clock. Expiry stamps kept in shared tables or databases
use ``clock.wall()``. A timer callback that raises is logged and the others go on (a periodic one
stays scheduled).

Two clocks implement this:

* :class:`Clock` (workers, ``kemi run``): ``now()`` is ``time.monotonic()``; the worker's event
  loop drives it (:func:`drive_with_loop`).
* :class:`VirtualClock` (tests: ``kemi_router``, ``TmHarness``): time stands still until the test
  calls ``advance(seconds)``, which fires every timer due on the way, in deadline order, each seeing
  ``now()`` equal to its own deadline.

For whoever drives a clock: ``next_deadline()`` is the earliest pending deadline, ``run_due()``
fires what is due, and ``on_deadline_changed(listener)`` calls ``listener(deadline)`` whenever a
new timer becomes the earliest. A driver that arms one loop timer at ``next_deadline()`` re-arms it
from the listener and after each ``run_due()``; a cancelled timer never moves the deadline later by
itself (the driver wakes once for nothing and re-arms).
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import operator
import time
from collections.abc import Callable
from typing import Any, cast

log = logging.getLogger("kemi.clock")

#: Timers one ``run_due`` call fires at most (a timer re-arming itself at the same instant must
#: not hold the process forever).
MAX_FIRED_PER_RUN = 100_000


class Timer:
    """A scheduled call; ``cancel()`` it to drop it (cancelling twice, or after it ran, is fine)."""

    __slots__ = ("when", "callback", "args", "interval", "cancelled")

    def __init__(self, when: float, callback: Callable[..., Any], args: tuple[Any, ...],
                 interval: float | None) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.interval = interval
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __repr__(self) -> str:
        every = f" every {self.interval}s" if self.interval else ""
        return f"<Timer {getattr(self.callback, '__qualname__', self.callback)} at {self.when:.3f}{every}>"


class Clock:
    """Time and timers of one process, on a monotonic scale (see the module docstring)."""

    #: ``now()``: monotonic seconds, the scale of every deadline. ``wall()``: Unix time (seconds
    #: since the epoch), for timestamps kept in tables or databases. Both are the time sources
    #: themselves (``time.monotonic`` in a worker), not methods that call them: modules read
    #: the time several times per message, and this saves a Python call each time.
    now: Callable[[], float]
    wall: Callable[[], float]

    def __init__(self, time_source: Callable[[], float] = time.monotonic,
                 wall_source: Callable[[], float] = time.time) -> None:
        self.now = time_source
        self.wall = wall_source
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._listeners: list[Callable[[float], None]] = []

    # ---- scheduling -----------------------------------------------------------------------
    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run ``callback(*args)`` once at ``when`` (a ``now()`` value)."""
        return self._push(Timer(float(when), callback, args, None))

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run ``callback(*args)`` once, ``delay`` seconds from now."""
        return self.call_at(self.now() + delay, callback, *args)

    def call_every(self, interval: float, callback: Callable[..., Any], *args: Any,
                   first: float | None = None) -> Timer:
        """Run ``callback(*args)`` every ``interval`` seconds (first at ``now() + interval``, or
        at ``first``) until the returned timer is cancelled. Runs missed while the process was
        busy are skipped, not queued."""
        if interval <= 0:
            raise ValueError("call_every needs an interval > 0")
        when = self.now() + interval if first is None else float(first)
        return self._push(Timer(when, callback, args, float(interval)))

    def _push(self, timer: Timer) -> Timer:
        earliest = self.next_deadline()
        heapq.heappush(self._heap, (timer.when, next(self._seq), timer))
        if earliest is None or timer.when < earliest:
            for listener in self._listeners:
                listener(timer.when)
        return timer

    # ---- driving (workers' loops, VirtualClock.advance) -----------------------------------
    def on_deadline_changed(self, listener: Callable[[float], None]) -> None:
        """``listener(deadline)`` is called whenever a new timer becomes the earliest one."""
        self._listeners.append(listener)

    def next_deadline(self) -> float | None:
        """The earliest pending deadline (cancelled timers skipped), or None."""
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pending(self) -> int:
        """How many timers are scheduled (not cancelled)."""
        return sum(1 for _, _, t in self._heap if not t.cancelled)

    def run_due(self, now: float | None = None) -> int:
        """Fire every timer due at ``now`` (default: ``now()``), earliest first, including those
        scheduled for ``<= now`` by the callbacks themselves; returns how many ran."""
        if now is None:
            now = self.now()
        heap = self._heap
        fired = 0
        while heap and heap[0][0] <= now and fired < MAX_FIRED_PER_RUN:
            _, _, timer = heapq.heappop(heap)
            if timer.cancelled:
                continue
            fired += 1
            if timer.interval is not None:
                nxt = timer.when + timer.interval
                timer.when = nxt if nxt > now else now + timer.interval
                heapq.heappush(heap, (timer.when, next(self._seq), timer))
            else:
                timer.cancelled = True  # it ran: cancel() from now on is a no-op
            try:
                timer.callback(*timer.args)
            except Exception:  # one failing timer never stops the others
                log.exception("timer %r failed", timer)
        return fired


class VirtualClock(Clock):
    """A clock that moves only when told to (``advance``): tests drive timers with no waiting.

    ``now()`` starts at ``start``; ``wall()`` starts at the real wall time and moves with it.
    """

    def __init__(self, start: float = 1000.0) -> None:
        #: the time, in a one-item list: ``now`` reads it with no Python frame (as
        #: ``time.monotonic`` does in a worker), so a harness on this clock pays what a
        #: worker pays per reading
        self._time = [float(start)]
        self._wall_start = time.time() - start
        read = cast(Callable[[], float], functools.partial(operator.getitem, self._time, 0))
        super().__init__(read, self._read_wall)

    @property
    def _now(self) -> float:
        return self._time[0]

    @_now.setter
    def _now(self, value: float) -> None:
        self._time[0] = value

    def _read_wall(self) -> float:
        return self._wall_start + self._now

    def advance(self, seconds: float, max_fired: int = 1_000_000) -> int:
        """Move time ``seconds`` forward, firing each timer due on the way at its own deadline
        (timers the callbacks schedule inside the window fire too); returns how many ran."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        end = self._now + seconds
        fired = 0
        while True:
            deadline = self.next_deadline()
            if deadline is None or deadline > end:
                break
            self._now = max(self._now, deadline)
            fired += self.run_due(self._now)
            if fired > max_fired:
                raise RuntimeError(f"more than {max_fired} timers fired in {seconds} s: a timer "
                                   "re-arms itself without moving forward?")
        self._now = end
        return fired


def repeat(call_later: Callable[[float, Callable[[], None]], Any],
           fn: Callable[[], float | None], interval: float) -> None:
    """Run ``fn()`` every ``interval`` seconds through ``call_later`` (an asyncio loop's or a
    clock's). ``fn`` may return the delay before its next run instead (sooner when work is left);
    an exception is logged and the next run still comes."""

    def run() -> None:
        delay = interval
        try:
            asked = fn()
            if asked is not None:
                delay = asked
        except Exception:
            log.exception("periodic task %r failed", fn)
        call_later(delay, run)

    call_later(interval, run)


#: The step of the main process's grid (s): see ``on_grid``.
GRID = 1.0


def on_grid(loop: Any, grid: float = GRID) -> Callable[..., Any]:
    """``loop.call_later`` whose delays of a ``grid`` step or more end on the grid (multiples
    of ``grid`` on the loop's clock, the nearest to the deadline asked): periodic tasks of one
    process (the supervision, the housekeeping tasks: each once a second) then share their
    wake-ups instead of each waking the idle process on its own. Shorter delays (a task with
    work left) are kept as asked."""

    def call_later(delay: float, callback: Callable[..., Any], *args: Any) -> Any:
        if delay < grid:
            return loop.call_later(delay, callback, *args)
        now = loop.time()
        when = round((now + delay) / grid) * grid
        if when <= now:
            when += grid
        return loop.call_at(when, callback, *args)

    return call_later


def drive_with_loop(clock: Clock, loop: Any,
                    wrap: Callable[[Callable[[], Any]], Callable[[], Any]] | None = None) -> None:
    """Run ``clock``'s timers from an asyncio ``loop``: one loop timer stays armed at the
    clock's earliest deadline, re-armed when an earlier timer is scheduled and after each run,
    so the loop wakes only when a timer is due (an idle worker sleeps). ``wrap``, when given,
    wraps each run (e.g. to mark the worker busy while timers run)."""
    run = wrap(clock.run_due) if wrap is not None else clock.run_due
    LoopDriver(clock, loop, run)


class LoopDriver:
    """One loop timer at the clock's earliest deadline (see :func:`drive_with_loop`)."""

    def __init__(self, clock: Clock, loop: Any, run: Callable[[], Any]) -> None:
        self.clock = clock
        self.loop = loop
        self.run = run
        self.handle: Any = None  # the armed loop timer
        self.armed_at: float | None = None  # the clock deadline it is armed for
        clock.on_deadline_changed(self.deadline_changed)
        self.arm(clock.next_deadline())

    def arm(self, deadline: float | None) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self.armed_at = deadline
        if deadline is not None:
            self.handle = self.loop.call_later(max(deadline - self.clock.now(), 0.0), self.fire)

    def deadline_changed(self, deadline: float) -> None:
        armed = self.armed_at
        if armed is None or deadline < armed:
            self.arm(deadline)

    def fire(self) -> None:
        self.handle = None
        self.armed_at = None
        try:
            self.run()
        finally:
            # what is left (timers the run added, or one the loop woke a little early for)
            if self.handle is None:
                self.arm(self.clock.next_deadline())
