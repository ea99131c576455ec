"""Waiting for a condition with a deadline: what tests use instead of fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: How often a condition is looked at again. Short: it only costs a cheap check.
POLL_INTERVAL = 0.05


class WaitTimeout(AssertionError):
    """The condition did not come true before the deadline (an AssertionError, so a test that
    waits fails with the message rather than an error)."""


def wait_until(check: Callable[[], T], timeout: float, what: str | Callable[[], str],
               interval: float = POLL_INTERVAL) -> T:
    """Call ``check`` until it returns a true value and return that value; after ``timeout``
    seconds raise WaitTimeout with ``what`` (a text, or a callable for details read late,
    such as a log's tail)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout(f"waited {timeout:g}s for {what() if callable(what) else what}")
        time.sleep(min(interval, left))


def wait_log(read_log: Callable[[], str], text: str, count: int = 1,
             timeout: float = 10.0) -> str:
    """The log ``read_log`` returns, once ``text`` appears in it ``count`` times (a server
    writes when it gets to it); WaitTimeout with the log's tail if it does not in ``timeout``
    seconds."""
    def seen() -> str:
        log = read_log()
        return log if log.count(text) >= count else ""

    return wait_until(seen, timeout, lambda: f"{count} x {text!r} in the log:\n{read_log()[-3000:]}")
