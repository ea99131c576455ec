"""core.counter: counts made in forked workers add up in the main process; declaring after the
fork is refused; reset never loses a racing increment; statistics enumerate with group/name."""

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


def test_declaring_after_the_fork_is_refused() -> None:
    core = Core(CoreConfig(children=2))
    core.worker_rank = 1  # in a worker
    with pytest.raises(ModuleError, match="mod_register or mod_init"):
        core.counter("hello", "late")
    main = Core(CoreConfig(children=2))
    main.worker_pids = {1: 4242}  # the main process once workers run
    with pytest.raises(ModuleError, match="declared after the workers started"):
        main.counter("hello", "late")


def test_bad_names_and_duplicates_are_refused() -> None:
    core = Core(CoreConfig())
    core.counter("hello", "calls")
    with pytest.raises(ModuleError, match="declared twice"):
        core.counter("hello", "calls")
    for group, name in (("", "x"), ("a:b", "x"), ("hello", "with space")):
        with pytest.raises(ModuleError, match="non-empty"):
            core.counter(group, name)
    with pytest.raises(ModuleError, match="kind"):
        core.counter("hello", "odd", kind="histogram")  # type: ignore[arg-type]


def test_many_counters_span_several_shared_blocks() -> None:
    from kemi_core.counters import BLOCK

    core = Core(CoreConfig(children=2))
    counters = [core.counter("many", f"c{i}") for i in range(BLOCK + 3)]
    pid = os.fork()
    if pid == 0:
        core.worker_rank = 2
        for i, c in enumerate(counters):
            c.inc(i)
        os._exit(0)
    os.waitpid(pid, 0)
    assert [c.value for c in counters] == list(range(BLOCK + 3))
