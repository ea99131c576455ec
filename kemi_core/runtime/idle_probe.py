"""In the main process: is a worker that has said nothing for a while simply waiting for events?

An idle worker does not wake to beat (doorbell.py), so the watchdog cannot tell a quiet loop
from a stuck one by its heartbeat. The kernel can: a worker whose loop waits for events sleeps
in ``epoll_wait`` (/proc/PID/wchan names the kernel function a task sleeps in:
``do_epoll_wait``, ``ep_poll`` on older kernels); one stuck in a Python loop runs (``0``), one
stuck in a blocking call sleeps elsewhere (``hrtimer_nanosleep``, ``do_sys_poll``, ...), one
stopped (SIGSTOP) sleeps in ``do_signal_stop``.

Sleeping in epoll_wait while a datagram waits in one of its sockets is no plain wait: a loop
that waits for its events would have woken for it. It is a worker blocked in some other epoll
(a C library's, inside a callback) while its own loop does not turn. The main process holds
each worker's UDP sockets and asks the kernel which hold data: one ``poll`` with no timeout
for all of them at each look.

A look costs the main process ~5 us a worker (wchan from a file kept open, procfs.py), where a
worker woken to beat costs ~130 us (its code back into the caches).
"""

from __future__ import annotations

import select
import socket
from collections.abc import Iterable

from kemi_core.runtime.procfs import ProcFiles

#: Kernel functions a task waiting in epoll_wait(2)/epoll_pwait(2) sleeps in.
EPOLL_WAITS = (b"do_epoll_wait", b"ep_poll")


class IdleProbe:
    """Asks /proc where the workers sleep, and their sockets whether they hold data."""

    def __init__(self, files: ProcFiles | None = None) -> None:
        self.files = files if files is not None else ProcFiles()
        self._poll = select.poll()
        self._polled: dict[int, int] = {}  # fd -> rank
        self._queued: frozenset[int] = frozenset()  # ranks whose sockets hold data

    def watch_sockets(self, rank: int, sockets: Iterable[socket.socket]) -> None:
        """The sockets the worker of ``rank`` reads (kept by the main process)."""
        for sock in sockets:
            fd = sock.fileno()
            if fd >= 0 and fd not in self._polled:
                self._poll.register(fd, select.POLLIN)
                self._polled[fd] = rank

    def unwatch_sockets(self, sockets: Iterable[socket.socket]) -> None:
        for sock in sockets:
            fd = sock.fileno()
            if self._polled.pop(fd, None) is not None:
                self._poll.unregister(fd)

    def look(self) -> None:
        """Before the workers are asked about: which ranks' sockets hold data now."""
        if self._polled:
            polled = self._polled
            self._queued = frozenset(polled[fd] for fd, ev in self._poll.poll(0)
                                     if ev & select.POLLIN and fd in polled)

    def waiting(self, rank: int, pid: int, reading: bool) -> bool | None:
        """True: the worker ``pid`` sleeps in epoll_wait and (when it is ``reading`` its
        sockets) none holds data at the last ``look``. False: it runs, sleeps elsewhere, is
        stopped, or leaves data unread. None: /proc does not say (gone, not readable, a kernel
        that hides wchan)."""
        where = self.files.read(pid, "wchan", 64)
        if not where:
            return None
        if where == b"0" and sleeping(self.files.read(pid, "stat")):
            return None  # a kernel that hides where tasks sleep: it cannot say
        if where not in EPOLL_WAITS:
            return False
        return not (reading and rank in self._queued)

    def forget(self, pid: int) -> None:
        self.files.forget(pid)


def sleeping(stat: bytes | None) -> bool:
    """Whether a /proc/PID/stat line says the task sleeps (S, D), not running or stopped."""
    if not stat:
        return False
    # "pid (comm) S ...": the name may hold spaces and parentheses, the state follows the last ")"
    end = stat.rfind(b")")
    return stat[end + 2:end + 3] in (b"S", b"D")
