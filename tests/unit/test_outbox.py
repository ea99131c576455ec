"""kemi_core.transport.outbox: what a worker holds while it routes one event's datagrams goes
out in order, at the event's end, at HOLD_MAX, after HOLD_SECONDS, before a call that may block
(about_to_wait), and from the flusher thread while the loop's thread is blocked. Sends are
plain callables here (no sockets); the flusher is the real thread with its kernel timer."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from kemi_core.transport import outbox
from kemi_core.transport.outbox import Outbox, about_to_wait

pytestmark = pytest.mark.skipif(outbox._TIMERFD is None, reason="no timerfd: nothing is held")


class Wire:
    """What was sent, in order, and by which thread."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []
        self.threads: list[int] = []

    def send(self, data: bytes, addr: Any) -> None:
        self.sent.append((data, addr))
        self.threads.append(threading.get_ident())


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_not_holding_nothing_is_held() -> None:
    box = Outbox()
    assert box.held is None
    about_to_wait()  # nothing held anywhere: no effect
    box.release()
    assert box.held is None


def test_held_sends_go_out_in_order_when_released() -> None:
    box, wire, other = Outbox(), Wire(), Wire()
    assert box.hold()
    for n in range(3):
        box.add(wire.send, b"a%d" % n, ("10.0.0.1", 5060))
        box.add(other.send, b"b%d" % n, ("10.0.0.2", 5060))
    assert wire.sent == other.sent == []
    box.release()
    assert [d for d, _ in wire.sent] == [b"a0", b"a1", b"a2"]
    assert [d for d, _ in other.sent] == [b"b0", b"b1", b"b2"]
    assert box.held is None and outbox.holding is None


def test_hold_max_sends_what_is_held(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox, "HOLD_MAX", 3)
    box, wire = Outbox(), Wire()
    box.hold()
    for n in range(4):
        box.add(wire.send, b"%d" % n, None)
    assert [d for d, _ in wire.sent] == [b"0", b"1", b"2"]
    box.release()
    assert [d for d, _ in wire.sent] == [b"0", b"1", b"2", b"3"]


def test_flush_late_sends_once_the_oldest_has_waited_hold_seconds() -> None:
    clock = Clock()
    box, wire = Outbox(clock), Wire()
    box.hold()
    box.add(wire.send, b"x", None)
    clock.now += outbox.HOLD_SECONDS / 2
    box.flush_late()
    assert wire.sent == []
    clock.now += outbox.HOLD_SECONDS
    box.flush_late()
    assert [d for d, _ in wire.sent] == [b"x"]
    box.add(wire.send, b"y", None)  # the event goes on holding, timed from the flush
    box.flush_late()
    assert len(wire.sent) == 1
    box.release()
    assert [d for d, _ in wire.sent] == [b"x", b"y"]


def test_about_to_wait_sends_what_the_holding_outbox_holds() -> None:
    box, wire = Outbox(), Wire()
    box.hold()
    box.add(wire.send, b"reply", None)
    about_to_wait()
    assert [d for d, _ in wire.sent] == [b"reply"]
    box.release()
    assert len(wire.sent) == 1


def test_the_flusher_sends_while_the_loops_thread_is_blocked() -> None:
    box, wire = Outbox(), Wire()
    box.hold()
    box.add(wire.send, b"reply", None)
    time.sleep(0.2)  # a handler blocked (its GIL released): the flusher's timer fires
    assert [d for d, _ in wire.sent] == [b"reply"]
    assert wire.threads != [threading.get_ident()]
    box.add(wire.send, b"later", None)  # held again: the timer is set again
    time.sleep(0.2)
    assert [d for d, _ in wire.sent] == [b"reply", b"later"]
    box.release()
    assert len(wire.sent) == 2


def test_an_event_that_ends_in_time_never_wakes_the_flusher() -> None:
    box, wire = Outbox(), Wire()
    for _ in range(20):
        box.hold()
        box.add(wire.send, b"x", None)
        box.release()
    time.sleep(0.05)  # past HOLD_SECONDS: a timer left armed would have fired by now
    assert box.flusher is not None and box.flusher.fired == 0
    assert wire.threads == [threading.get_ident()] * 20
    box.hold()  # the timer still works after all those were cleared
    box.add(wire.send, b"late", None)
    time.sleep(0.2)
    assert box.flusher.fired >= 1
    assert wire.threads[-1] != threading.get_ident()
    box.release()


def test_nothing_held_nothing_armed_a_blocked_handler_wakes_no_thread() -> None:
    box, wire = Outbox(), Wire()
    box.hold()
    time.sleep(0.05)  # an event that has held nothing yet blocks: no timer set
    box.add(wire.send, b"reply", None)
    about_to_wait()  # what was held goes out before the handler blocks (SQLite's fdatasync)
    time.sleep(0.05)  # past HOLD_SECONDS: a timer left set would have fired by now
    assert box.flusher is not None and box.flusher.fired == 0
    assert not box.armed and wire.threads == [threading.get_ident()]
    box.add(wire.send, b"next", None)  # the next send held sets it again
    time.sleep(0.2)
    assert box.flusher.fired == 1 and not box.armed
    assert [d for d, _ in wire.sent] == [b"reply", b"next"]
    assert wire.threads[-1] != threading.get_ident()
    box.release()
    assert len(wire.sent) == 2


def test_about_to_wait_calls_every_other_holder_even_one_that_leaves_the_list(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A holder leaves ``held_elsewhere`` once it has sent (the workers' mailbox): the one
    after it in the list is still called."""
    called: list[str] = []
    holders: list[Any] = []

    def leaving() -> None:
        called.append("leaving")
        holders.remove(leaving)

    def staying() -> None:
        called.append("staying")

    holders += [leaving, staying]
    monkeypatch.setattr(outbox, "held_elsewhere", holders)
    about_to_wait()
    assert called == ["leaving", "staying"]
    assert holders == [staying]
