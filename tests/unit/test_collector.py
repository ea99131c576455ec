"""kemi_core.runtime.collector: a worker's collector walks an object once (what survives a young
collection is frozen), still finds young cycles at once, and finds cycles among older objects
in the full collection its housekeeping runs when due. Runs on this process's own collector,
restored after each test."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from kemi_core.runtime.collector import GC_THRESHOLDS, SurvivorFreezer, tune_gc


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def freezer() -> Iterator[SurvivorFreezer]:
    thresholds, callbacks, enabled = gc.get_threshold(), list(gc.callbacks), gc.isenabled()
    gc.disable()  # no automatic collection in the middle of a test: each one is asked for
    try:
        yield tune_gc()
    finally:
        gc.callbacks[:] = callbacks
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        if enabled:
            gc.enable()
        gc.collect()


def test_what_survives_a_young_collection_is_frozen(freezer: SurvivorFreezer) -> None:
    assert gc.get_threshold() == GC_THRESHOLDS
    kept = [Node() for _ in range(10)]
    before = gc.get_freeze_count()
    gc.collect(0)
    assert gc.get_freeze_count() >= before + len(kept)
    assert not any(o is kept[0] for o in gc.get_objects())  # no collection walks it any more
    assert freezer.young == 1


def test_a_young_cycle_is_still_found_at_once(freezer: SurvivorFreezer) -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    assert gc.collect(0) >= 2
    assert gone() is None


def test_a_cycle_among_older_objects_is_found_by_the_full_collection(
        freezer: SurvivorFreezer) -> None:
    a, b = Node(), Node()
    gc.collect(0)  # both survive it: frozen
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    gc.collect(1)
    assert gone() is not None  # young collections do not see it
    assert freezer.collect_if_due() is None  # not due yet
    freezer.young = freezer.full_every
    found = freezer.collect_if_due()
    assert found is not None and found >= 2
    assert gone() is None
    assert freezer.young == 0


def test_the_callback_says_once_when_a_full_collection_becomes_due(
        freezer: SurvivorFreezer) -> None:
    # a worker's callback rings its own doorbell: the collection runs from its loop
    asked: list[int] = []
    freezer.full_every = 3
    freezer.on_due = lambda: asked.append(freezer.young)
    gc.collect(0)
    gc.collect(1)
    assert asked == []
    gc.collect(0)
    assert asked == [3]
    gc.collect(2)  # a full collection of CPython's own is no young one
    gc.collect(0)
    assert asked == [3]  # asked once; it stays due until collected
    assert freezer.collect_if_due() is not None
    for _ in range(3):
        gc.collect(0)
    assert asked == [3, 3]


def test_tune_gc_again_keeps_one_callback(freezer: SurvivorFreezer) -> None:
    tune_gc()
    assert sum(isinstance(cb, SurvivorFreezer) for cb in gc.callbacks) == 1


def test_calls_through_tm_leave_nothing_frozen_once_their_transactions_end(
        freezer: SurvivorFreezer) -> None:
    # what a call leaves alive for wt_timer is frozen by the young collections it meets, and
    # freed by reference counting all the same when its transaction ends
    from kemi_core.api import MsgContext
    from kemi_core.sip import build_reply
    from kemi_core.testing.udp_client import request
    from kemi_tm import exports as tm
    from kemi_tm.testing import TmHarness

    def relay(ctx: MsgContext) -> int:
        ctx.dst_uri = "sip:127.0.0.1:5080"
        return tm.t_relay(ctx)

    h = TmHarness({"ksr_request_route": relay})

    def calls(first: int, count: int) -> None:
        for n in range(first, first + count):
            h.request(request("INVITE", "sip:bob@127.0.0.1", 5070, call_id=f"c{n}"))
            fwd = h.take()[-1].msg
            h.reply(build_reply(fwd, 200, "OK", to_tag="callee"))
            h.take()
            h.engine.runs.clear()  # (the test engine's record of the routes it ran)
            if n % 50 == 0:
                gc.collect(0)  # as the thresholds would, now and then

    calls(0, 100)
    h.advance(60)
    gc.collect(0)
    start = gc.get_freeze_count()
    calls(100, 300)
    assert gc.get_freeze_count() > start  # transactions alive, frozen
    h.advance(60)  # every transaction ends
    gc.collect(0)
    assert gc.get_freeze_count() == start
