"""A worker's doorbell: the one signal that makes an idle worker look at its board slot.

An idle worker sleeps in its event loop until something is for it: a datagram, a timer that
is due, or this doorbell (``DOORBELL``, SIGUSR1). It rings when

* the main process wants something of it: reopen the log files (SIGHUP), retire (memory
  limit), or a sign of life (the watchdog, when /proc cannot say the worker just waits);
* the main process dies: the kernel rings it (``PR_SET_PDEATHSIG``), no worker polls its parent;
* the worker's own collector has a full collection due (collector.py): it rings itself, and the
  collection runs from the loop, between messages.

A worker ignores the doorbell from its fork until its loop answers it (``SIG_IGN``: a ring
in between is lost, not fatal); the main process rings only workers whose slot says ready or
draining (set after the handler), and a worker looks once as soon as it answers.
"""

from __future__ import annotations

import ctypes
import os
import signal

DOORBELL = signal.SIGUSR1

#: prctl(2) option: the signal this process gets when its parent (the thread that forked it) ends.
_PR_SET_PDEATHSIG = 1


def ring(pid: int) -> bool:
    """Ring ``pid``'s doorbell; False when it is gone."""
    try:
        os.kill(pid, DOORBELL)
    except ProcessLookupError:
        return False
    return True


def ignore_until_answered() -> None:
    """In a new worker, right after the fork: a ring before the loop answers is dropped."""
    signal.signal(DOORBELL, signal.SIG_IGN)


def ring_on_parent_death() -> bool:
    """Have the kernel ring this process's doorbell when its parent ends (Linux); False when
    it cannot (then the caller watches its parent some other way)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(DOORBELL), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False
