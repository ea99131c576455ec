"""For the tests of code that may block (a database call, a socket exchange): a UDP send held
as a worker holds it while it routes an event's datagrams, to show that the code sends it, on
its own thread, before it waits (kemi_core.api.about_to_wait)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from kemi_core.transport.outbox import Outbox


@contextlib.contextmanager
def one_send_held() -> Iterator[list[int]]:
    """Hold one send in a fresh outbox; yields the ids of the threads that sent it (empty
    until it is sent; the caller's own id when about_to_wait sent it, the flusher thread's
    when it went out because the caller blocked without calling it)."""
    box = Outbox()
    senders: list[int] = []

    def send(data: bytes, addr: Any) -> None:
        senders.append(threading.get_ident())

    if not box.hold():
        raise RuntimeError("sends are not held here (no timerfd)")
    box.add(send, b"held", None)
    try:
        yield senders
    finally:
        box.release()
