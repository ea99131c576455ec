"""core.counter: counts made in forked workers add up in the main process; a counter first
declared in a worker is the same everywhere; reset never loses a racing increment; statistics
enumerate with group/name."""

from __future__ import annotations

import os

import pytest

from kemi_core.api import Core, CoreConfig, ModuleError


def _in_workers(core: Core, work: dict[int, int], counter_name: str = "calls") -> None:
    """Fork one real process per rank in ``work``; each increments ``work[rank]`` times."""
    pids = []
    for rank, times in work.items():
        pid = os.fork()
        if pid == 0:  # the worker: what Worker.setup does, then count
            code = 0
            try:
                core.worker_rank = rank
                stat = core.counters.get("hello", counter_name)
                assert stat is not None
                for _ in range(times):
                    stat.inc()  # type: ignore[union-attr]
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0


def test_workers_count_and_the_main_process_reads_the_sum() -> None:
    core = Core(CoreConfig(children=2))
    calls = core.counter("hello", "calls", "calls of hello.greet")
    _in_workers(core, {1: 1500, 2: 2500})
    calls.inc(7)  # the main process counts too (an RPC, a timer there)
    assert calls.value == 4007
    assert calls.by_rank() == {0: 7, 1: 1500, 2: 2500}
    assert core.counters.snapshot() == {"hello:calls": 4007}


def test_a_restarted_worker_adds_to_its_rank() -> None:
    core = Core(CoreConfig(children=2))
    calls = core.counter("hello", "calls")
    _in_workers(core, {1: 10})
    _in_workers(core, {1: 5})  # the same rank again, as after a restart
    assert calls.value == 15 and calls.by_rank() == {1: 15}


def test_reset_moves_the_base_and_gauges_stay() -> None:
    core = Core(CoreConfig(children=2))
    calls = core.counter("hello", "calls")
    level = core.counter("hello", "active", kind="gauge")
    held = {"n": 3}
    computed = core.gauge("hello", "held", lambda: held["n"])
    _in_workers(core, {1: 10, 2: 20})
    level.inc(4)
    level.inc(-1)
    assert core.counters.reset("hello") == 1  # only the event counter
    assert (calls.value, level.value, computed.value) == (0, 3, 3)
    _in_workers(core, {2: 5})  # counting goes on after the reset, from every process
    assert calls.value == 5
    held["n"] = 9
    assert [(s.group, s.name, s.kind, s.value) for s in core.counters] == [
        ("hello", "calls", "counter", 5), ("hello", "active", "gauge", 3),
        ("hello", "held", "gauge", 9)]


def test_enumerate_select_and_groups() -> None:
    core = Core(CoreConfig(children=1))
    core.counter("tm", "created")
    core.counter("sl", "sent_replies")
    core.counter("tm", "freed")
    assert core.counters.groups() == ["tm", "sl"]
    assert [s.name for s in core.counters.select("tm")] == ["created", "freed"]
    assert [s.group for s in core.counters.select(name="sent_replies")] == ["sl"]
    assert core.counters.get("tm", "nope") is None and len(core.counters) == 3


def test_a_counter_first_made_in_workers_is_the_same_everywhere() -> None:
    core = Core(CoreConfig(children=2))
    pids = []
    for rank, times in ((1, 30), (2, 12)):
        pid = os.fork()
        if pid == 0:  # each worker asks for the counter on each call, as a lazy module might
            core.worker_rank = rank
            for _ in range(times):
                core.counter("lazy", "calls").inc()
            core.counter("lazy", f"only_in_{rank}").inc(rank)
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    calls = core.counter("lazy", "calls")  # the main process finds what the workers made
    assert calls.value == 42 and calls.by_rank() == {1: 30, 2: 12}
    assert core.counters.snapshot() == {"lazy:calls": 42, "lazy:only_in_1": 1, "lazy:only_in_2": 2}
    assert core.counter("lazy", "calls") is calls


def test_bad_names_and_kinds_are_refused() -> None:
    core = Core(CoreConfig())
    calls = core.counter("hello", "calls")
    assert core.counter("hello", "calls") is calls  # the same counter, not a second one
    with pytest.raises(ModuleError, match="is a counter, not a gauge"):
        core.counter("hello", "calls", kind="gauge")
    core.gauge("hello", "level", lambda: 1)
    with pytest.raises(ModuleError, match="computed gauge"):
        core.counter("hello", "level")
    with pytest.raises(ModuleError, match="declared twice"):
        core.gauge("hello", "calls", lambda: 1)
    for group, name in (("", "x"), ("a:b", "x"), ("hello", "with space")):
        with pytest.raises(ModuleError, match="non-empty"):
            core.counter(group, name)
    with pytest.raises(ModuleError, match="kind"):
        core.counter("hello", "odd", kind="histogram")  # type: ignore[arg-type]


def test_the_table_holds_capacity_counters_and_says_when_full() -> None:
    from kemi_core.counters import CounterTable

    table = CounterTable(processes=2, capacity=50)
    counters = [table.counter("many", f"c{i}") for i in range(50)]
    pid = os.fork()
    if pid == 0:
        table.bind(2)
        for i, c in enumerate(counters):
            c.inc(i)
        os._exit(0)
    os.waitpid(pid, 0)
    assert [c.value for c in counters] == list(range(50))
    with pytest.raises(ModuleError, match="all 50 counters are in use"):
        table.counter("many", "one_more")


def test_a_total_sums_its_family_counted_in_workers_and_resets_apart() -> None:
    core = Core(CoreConfig(children=2))
    total = core.counter("hello", "calls")
    ok, failed = core.counter("hello", "calls_ok"), core.counter("hello", "calls_failed")
    total.sum_of([ok, failed])
    _in_workers(core, {1: 30}, "calls_ok")
    _in_workers(core, {2: 12}, "calls_failed")
    total.inc(5)  # events no member takes count too
    assert (total.value, ok.value, failed.value) == (47, 30, 12)
    assert total.by_rank() == {0: 5, 1: 30, 2: 12}
    assert total.reset() == 47
    assert (total.value, ok.value) == (0, 30)  # the total's reset leaves the members alone
    ok.inc(3)
    assert ok.reset() == 33
    assert total.value == 3  # ... and a member's reset leaves the total alone
