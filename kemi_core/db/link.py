"""One database URL's connections in this process: opened lazily per thread, never shared
across a fork, reconnected with a bounded back-off when the database goes away.

Kamailio opens its database connections in each child process after fork; here a connection is
opened at the first call in each process (and each thread that calls: background jobs run in a
thread of their own). Before a fork, the forking thread's connections are closed; a connection
inherited anyway (opened by another thread) is left untouched in the child, never used or closed
there, since closing it would end the parent's session (PostgreSQL) or its locks (SQLite).

While the database is unreachable, calls fail at once without touching the network until the
next attempt is due: 1 s after the failure, then doubling up to 10 s (``DbLimits``). The outage
is logged once when it starts and once when it ends, with the number of calls that failed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import Any

from kemi_core.db.backend import Backend, Connection, DbLimits
from kemi_core.db.errors import DbUnavailable
from kemi_core.db.url import DbUrl

log = logging.getLogger("kemi.db")

#: Bumped in each forked child: a connection made in another generation is not ours.
_generation = 0
#: Connections inherited across fork: kept referenced so that garbage collection never closes
#: the parent's session from the child.
_inherited: list[Any] = []
_links: weakref.WeakSet[DbLink] = weakref.WeakSet()


def _before_fork() -> None:
    for link in list(_links):
        link.close_thread_connection()


def _after_fork_in_child() -> None:
    global _generation
    _generation += 1
    for link in list(_links):
        link.reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


class _ThreadSlot(threading.local):
    conn: Connection | None = None
    generation = -1
    tx_depth = 0
    tx_conn: Connection | None = None


class DbLink:
    """Connections to one URL for one process, and the state of an outage."""

    def __init__(self, url: DbUrl, backend: Backend) -> None:
        self.url = url
        self.backend = backend
        self._slot = _ThreadSlot()
        self._limits: DbLimits | None = None
        self._lock = threading.Lock()
        self.down_since: float | None = None
        self._retry_at = 0.0
        self._retry_wait = 0.0
        self.failed_calls = 0
        _links.add(self)

    @property
    def limits(self) -> DbLimits:
        if self._limits is None:
            self._limits = self.backend.limits()
        return self._limits

    @property
    def slot(self) -> _ThreadSlot:
        return self._slot

    def connection(self) -> Connection:
        """This thread's open connection; opened now when there is none. Raises
        :class:`DbUnavailable` while the database is down and no attempt is due."""
        slot = self._slot
        conn = slot.conn
        if conn is not None:
            if slot.generation == _generation:
                return conn
            _inherited.append(conn)  # a parent's connection: never used, never closed here
            slot.conn = None
        now = time.monotonic()
        if self.down_since is not None and now < self._retry_at:
            self.failed_calls += 1
            raise DbUnavailable(
                f"{self.url}: database unavailable for {now - self.down_since:.1f}s "
                f"(next connection attempt in {self._retry_at - now:.1f}s)")
        try:
            conn = self.backend.connect(self.url, self.limits)
        except self.backend.errors as exc:
            self.mark_down(exc, "cannot connect")
            raise DbUnavailable(f"{self.url}: cannot connect: {_one_line(exc)}") from exc
        slot.conn = conn
        slot.generation = _generation
        if self.down_since is not None:
            with self._lock:
                if self.down_since is not None:
                    log.info("db %s: connected again after %.1fs (%d calls failed meanwhile)",
                             self.url, time.monotonic() - self.down_since, self.failed_calls)
                    self.down_since = None
                    self.failed_calls = 0
        return conn

    def ready(self) -> Connection | None:
        """This thread's connection when it is open, this process's and outside a
        transaction (a caller's usual case), else None (connection() decides the rest)."""
        slot = self._slot
        conn = slot.conn
        if conn is None or slot.tx_depth or slot.generation != _generation:
            return None
        return conn

    def mark_down(self, exc: BaseException, what: str) -> None:
        """Record a failure to reach the database: logged once per outage, then back off."""
        limits = self.limits
        with self._lock:
            now = time.monotonic()
            self.failed_calls += 1
            if self.down_since is None:
                self.down_since = now
                self._retry_wait = limits.retry_min
                log.error("db %s: %s: %s; calls fail until it is back (next attempt in %.1fs)",
                          self.url, what, _one_line(exc), self._retry_wait)
            else:
                self._retry_wait = min(max(self._retry_wait * 2, limits.retry_min), limits.retry_max)
                log.debug("db %s: still down (%s); next attempt in %.1fs",
                          self.url, _one_line(exc), self._retry_wait)
            self._retry_at = now + self._retry_wait

    def drop(self, conn: Connection) -> None:
        """Forget this thread's connection after it broke (closing it quietly)."""
        slot = self._slot
        if slot.conn is conn:
            slot.conn = None
        try:
            conn.close()
        except Exception:  # a broken connection may fail to close; it is gone either way
            log.debug("db %s: closing a broken connection failed", self.url, exc_info=True)

    @property
    def available(self) -> bool:
        """False while down and before the next connection attempt is due."""
        return self.down_since is None or time.monotonic() >= self._retry_at

    def close_thread_connection(self) -> None:
        """Close the calling thread's connection (if it is this process's)."""
        slot = self._slot
        conn = slot.conn
        if conn is None:
            return
        slot.conn = None
        if slot.generation != _generation:
            _inherited.append(conn)
            return
        try:
            conn.close()
        except Exception:
            log.debug("db %s: close failed", self.url, exc_info=True)

    def reset_after_fork(self) -> None:
        """In a new child: its own outage state (the parent's lock may be held)."""
        self._lock = threading.Lock()
        self.down_since = None
        self.failed_calls = 0


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
