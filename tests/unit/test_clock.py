"""core.clock: timers in deadline order, periodic timers, cancellation, the deadline listener,
the virtual clock tests advance, and a real clock driven by an asyncio loop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest

from kemi_core.config.model import CoreConfig
from kemi_core.runtime.clock import Clock, VirtualClock, drive_with_loop
from kemi_core.runtime.core import TIMER_TICK, Core


def test_timers_fire_in_deadline_order_each_at_its_own_time() -> None:
    clock = VirtualClock(start=100.0)
    seen: list[tuple[str, float]] = []
    clock.call_at(103.0, lambda: seen.append(("c", clock.now())))
    clock.call_later(1.0, lambda: seen.append(("a", clock.now())))
    clock.call_at(102.0, lambda: seen.append(("b", clock.now())))
    assert clock.next_deadline() == 101.0
    assert clock.advance(2.5) == 2
    assert seen == [("a", 101.0), ("b", 102.0)]
    assert clock.now() == 102.5
    clock.advance(10)
    assert seen[-1] == ("c", 103.0)
    assert clock.next_deadline() is None


def test_equal_deadlines_run_in_scheduling_order_and_args_are_passed() -> None:
    clock = VirtualClock()
    seen: list[int] = []
    for i in range(5):
        clock.call_later(1.0, seen.append, i)
    clock.advance(1.0)
    assert seen == [0, 1, 2, 3, 4]


def test_cancelled_timer_never_runs_and_cancel_is_idempotent() -> None:
    clock = VirtualClock()
    seen: list[str] = []
    t = clock.call_later(1.0, seen.append, "x")
    clock.call_later(2.0, seen.append, "y")
    t.cancel()
    t.cancel()
    assert clock.next_deadline() == clock.now() + 2.0
    clock.advance(5)
    assert seen == ["y"]
    assert clock.pending() == 0


def test_timers_scheduled_by_callbacks_inside_the_window_fire_in_the_same_advance() -> None:
    clock = VirtualClock(start=0.0)
    times: list[float] = []

    def retransmit(interval: float) -> None:  # doubles like RFC 3261 timer A
        times.append(clock.now())
        if interval < 8:
            clock.call_later(interval * 2, retransmit, interval * 2)

    clock.call_later(0.5, retransmit, 0.5)
    clock.advance(20)
    assert times == [0.5, 1.5, 3.5, 7.5, 15.5]


def test_call_every_runs_at_each_interval_until_cancelled() -> None:
    clock = VirtualClock(start=0.0)
    times: list[float] = []
    t = clock.call_every(2.0, lambda: times.append(clock.now()))
    clock.advance(7.0)
    assert times == [2.0, 4.0, 6.0]
    t.cancel()
    clock.advance(10)
    assert times == [2.0, 4.0, 6.0]
    with pytest.raises(ValueError):
        clock.call_every(0, lambda: None)


def test_periodic_timer_skips_runs_it_missed() -> None:
    now = [0.0]
    clock = Clock(lambda: now[0])
    runs: list[float] = []
    clock.call_every(1.0, lambda: runs.append(now[0]))
    now[0] = 10.0  # the process was busy for 10 s
    assert clock.run_due() == 1
    assert clock.next_deadline() == 11.0


def test_a_failing_timer_is_logged_and_the_others_run(caplog: pytest.LogCaptureFixture) -> None:
    clock = VirtualClock()
    seen: list[str] = []

    def boom() -> None:
        raise RuntimeError("broken module timer")

    clock.call_later(1.0, boom)
    clock.call_every(1.0, seen.append, "periodic")
    with caplog.at_level(logging.ERROR, logger="kemi.clock"):
        clock.advance(2.0)
    assert seen == ["periodic", "periodic"]
    assert "broken module timer" in caplog.text


def test_deadline_listener_hears_only_a_new_earliest_deadline() -> None:
    clock = VirtualClock(start=0.0)
    heard: list[float] = []
    clock.on_deadline_changed(heard.append)
    clock.call_at(10.0, lambda: None)
    clock.call_at(20.0, lambda: None)  # later: the armed deadline stands
    clock.call_at(5.0, lambda: None)
    assert heard == [10.0, 5.0]


def test_a_timer_rearming_itself_at_the_same_instant_is_stopped() -> None:
    clock = VirtualClock()

    def again() -> None:
        clock.call_later(0, again)

    clock.call_later(1.0, again)
    with pytest.raises(RuntimeError, match="re-arms itself"):
        clock.advance(2.0, max_fired=1000)


def test_virtual_wall_time_moves_with_advance() -> None:
    clock = VirtualClock()
    before = clock.wall()
    assert abs(before - time.time()) < 60
    clock.advance(3600)
    assert clock.wall() == pytest.approx(before + 3600)


def test_core_services_use_the_clock() -> None:
    clock = VirtualClock(start=50.0)
    core = Core(CoreConfig(), clock)
    ticks: list[float] = []
    fired: list[str] = []
    core.add_timer_handler(ticks.append)
    core.call_later(0.2, lambda: fired.append("later"))
    assert core.now() == 50.0
    clock.advance(0.2)
    assert fired == ["later"]
    assert ticks == pytest.approx([50.0 + TIMER_TICK * i for i in range(1, 5)])


def test_real_clock_driven_by_an_event_loop() -> None:
    loop = asyncio.new_event_loop()
    try:
        clock = Clock()
        done = loop.create_future()
        clock.call_later(0.01, lambda: done.set_result(clock.now()))
        runs: list[int] = []

        def counted(run: Callable[[], int]) -> Callable[[], int]:
            return lambda: runs.append(run()) or runs[-1]

        drive_with_loop(clock, loop, wrap=counted)
        started = clock.now()
        fired_at = loop.run_until_complete(asyncio.wait_for(done, 5))
        assert fired_at >= started
        assert 1 in runs  # the wrapped run fired the timer
    finally:
        loop.close()


def test_housekeeping_runs_once_per_server_on_the_main_loop_or_a_test_clock() -> None:
    clock = VirtualClock(start=0.0)
    core = Core(CoreConfig(), clock)
    runs: list[float] = []
    core.add_housekeeping(lambda: runs.append(core.now()) or None, 10.0)
    assert len(core.main_loop_hooks) == 1  # kemi run: started with the main process's loop
    core.run_housekeeping_on(clock)  # a test router instead
    late: list[float] = []

    def busy() -> float | None:
        late.append(clock.now())
        return 1.0 if len(late) < 3 else None  # asks to come back sooner while work is left

    core.add_housekeeping(busy, 5.0)
    clock.advance(20.0)
    assert runs == [10.0, 20.0]
    assert late == [5.0, 6.0, 7.0, 12.0, 17.0]


def test_housekeeping_on_a_real_loop() -> None:
    loop = asyncio.new_event_loop()
    try:
        core = Core(CoreConfig())
        done = loop.create_future()
        core.add_housekeeping(lambda: None if done.done() else done.set_result(True), 0.01)
        for hook in core.main_loop_hooks:
            hook(loop)
        assert loop.run_until_complete(asyncio.wait_for(done, 5)) is True
    finally:
        loop.close()


class RecordingLoop:
    """The part of an event loop the driver uses (``call_later``), recording each timer armed;
    the test fires them by moving a VirtualClock."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.armed: list[RecordingLoop.Handle] = []

    class Handle:
        def __init__(self, at: float, fn: Callable[[], None]) -> None:
            self.at, self.fn, self.cancelled = at, fn, False

        def cancel(self) -> None:
            self.cancelled = True

    def call_later(self, delay: float, fn: Callable[[], None]) -> RecordingLoop.Handle:
        handle = RecordingLoop.Handle(self.clock.now() + delay, fn)
        self.armed.append(handle)
        return handle

    def live(self) -> list[float]:
        return [h.at for h in self.armed if not h.cancelled]

    def run_until(self, t: float) -> int:
        """Fire the armed timers due by ``t`` (moving the clock to each), as a loop would."""
        wakeups = 0
        while True:
            due = sorted((h for h in self.armed if not h.cancelled and h.at <= t),
                         key=lambda h: h.at)
            if not due:
                break
            h = due[0]
            h.cancelled = True  # a loop timer fires once
            self.clock._now = max(self.clock._now, h.at)
            wakeups += 1
            h.fn()
        self.clock._now = max(self.clock._now, t)
        return wakeups


def test_one_loop_timer_armed_at_the_earliest_deadline_and_rearmed() -> None:
    clock = VirtualClock(start=100.0)
    loop = RecordingLoop(clock)
    fired: list[tuple[str, float]] = []
    drive_with_loop(clock, loop)
    assert loop.live() == []  # nothing scheduled: nothing armed, an idle worker sleeps
    clock.call_at(105.0, lambda: fired.append(("a", clock.now())))
    assert loop.live() == [105.0]
    clock.call_at(102.0, lambda: fired.append(("b", clock.now())))
    assert loop.live() == [102.0]  # an earlier timer re-arms (the old loop timer is cancelled)
    clock.call_at(110.0, lambda: fired.append(("c", clock.now())))
    assert loop.live() == [102.0]  # a later one changes nothing
    assert loop.run_until(103.0) == 1
    assert fired == [("b", 102.0)] and loop.live() == [105.0]  # re-armed after the run
    # a timer scheduled by a timer callback, earlier than what is left
    clock.call_at(106.0, lambda: clock.call_later(0.5, lambda: fired.append(("d", clock.now()))))
    assert loop.run_until(200.0) == 4  # 105, 106, 106.5, 110: one wakeup each, no polling
    assert fired == [("b", 102.0), ("a", 105.0), ("d", 106.5), ("c", 110.0)]
    assert loop.live() == []


def test_a_cancelled_earliest_timer_costs_one_wakeup_at_most() -> None:
    clock = VirtualClock(start=0.0)
    loop = RecordingLoop(clock)
    drive_with_loop(clock, loop)
    fired: list[float] = []
    early = clock.call_at(1.0, lambda: fired.append(1.0))
    clock.call_at(3.0, lambda: fired.append(3.0))
    early.cancel()
    assert loop.run_until(2.0) <= 1
    assert fired == [] and loop.live() == [3.0]
    assert loop.run_until(4.0) == 1 and fired == [3.0]


def test_an_idle_real_loop_is_not_woken_by_the_clock() -> None:
    """On a real event loop: no timer scheduled, no loop timer; a periodic one keeps exactly
    one loop timer armed, at its next run."""
    loop = asyncio.new_event_loop()

    def driver_timers() -> list[asyncio.TimerHandle]:
        return [h for h in loop._scheduled  # type: ignore[attr-defined]
                if not h.cancelled() and type(getattr(h._callback, "__self__", None)).__name__
                == "LoopDriver"]

    try:
        clock = Clock()
        drive_with_loop(clock, loop)
        assert driver_timers() == []
        ticks: list[float] = []
        clock.call_every(0.02, lambda: ticks.append(clock.now()))
        assert len(driver_timers()) == 1

        async def three_ticks() -> None:
            while len(ticks) < 3:
                await asyncio.sleep(0.01)

        loop.run_until_complete(asyncio.wait_for(three_ticks(), 10))
        assert len(driver_timers()) == 1
    finally:
        loop.close()


class GridRecordingLoop:
    """A test double that records the calls an asyncio loop would get (its time is set)."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.calls: list[tuple[str, float]] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: object, *args: object) -> None:
        self.calls.append(("later", delay))

    def call_at(self, when: float, callback: object, *args: object) -> None:
        self.calls.append(("at", when))


def test_on_grid_puts_delays_of_a_step_or_more_on_the_grid() -> None:
    from kemi_core.runtime.clock import on_grid

    loop = GridRecordingLoop(10.3)
    later = on_grid(loop, 1.0)
    later(1.0, print)  # the supervision, the sweeper: once a second, on the same instants
    later(60, print)
    later(0.2, print)  # a task with work left: as asked
    loop.now = 10.6
    later(1.0, print)
    loop.now = 11.0001
    later(1.0, print)  # just after its grid point: the next one, not one after
    later(2.5, print)
    assert loop.calls == [("at", 11.0), ("at", 70.0), ("later", 0.2), ("at", 12.0),
                          ("at", 12.0), ("at", 14.0)]
