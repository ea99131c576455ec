"""In the main process: watch the workers (stuck on one message, too much memory) and keep
the restart record the ``core.workers`` RPC and the statistics read.

The watchdog (beyond Kamailio, which hangs with its worker): a worker whose board slot says
it has been busy with one message longer than ``watchdog_timeout`` seconds, or whose event
loop has not turned for that long (stopped, or stuck outside a message), is asked where it is
(SIGUSR2, see ``stuck``), logged with that report, killed and replaced. A worker whose
resident memory passes ``worker_rss_limit`` MB is asked to retire: it finishes its
transactions and exits, and a fresh one takes its rank.

An idle worker does not wake to say its loop turns. The signs that it does: a message or timer
run that started (its busy mark), its heartbeat (written when it answers its doorbell), or, at
each look, the kernel saying it simply waits for events (``idle_probe``). A worker with none
of these for ``watchdog_timeout`` is asked where it is, and its doorbell rung: a loop that
turns after all answers with a heartbeat and is left alone. Where /proc cannot say, the
supervisor rings each quiet worker at each look and the heartbeat tells, as a periodic one did.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

import attrs

from kemi_core.runtime import doorbell
from kemi_core.runtime.board import DRAINING, READY, WorkerBoard
from kemi_core.runtime.idle_probe import IdleProbe
from kemi_core.runtime.procfs import ProcFiles
from kemi_core.runtime.stuck import REPORT_SIGNAL

log = logging.getLogger("kemi.watchdog")

#: How long a stuck worker has to write its report before it is killed anyway (s).
REPORT_GRACE = 1.0
#: How often resident memory is read (s).
MEMORY_EVERY = 2.0
_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
#: The longest time between two looks at the workers (s).
SUPERVISE_TICK = 1.0


def supervise_interval(watchdog_timeout: float) -> float:
    """How often the main process looks at the workers: four times per watchdog_timeout, at
    most once a second (each look wakes the idle main process)."""
    if watchdog_timeout <= 0:
        return SUPERVISE_TICK
    return max(0.05, min(SUPERVISE_TICK, watchdog_timeout / 4))


def rss_mb(pid: int, files: ProcFiles | None = None) -> float | None:
    """Resident memory of ``pid`` in MB (None when it is gone); ``files`` keeps the file open."""
    try:
        if files is not None:
            statm = files.read(pid, "statm")
            if statm is None:
                return None
        else:
            with open(f"/proc/{pid}/statm", "rb") as fh:
                statm = fh.read()
        return int(statm.split()[1]) * _PAGE_MB
    except (OSError, ValueError, IndexError):
        return None


@attrs.define
class Restart:
    """Why a worker of one rank was last replaced."""

    reason: str  # "watchdog", "memory", "crash"
    detail: str
    at: float  # time.time()
    pid: int


@attrs.define
class _Asked:
    pid: int
    asked_at: float
    report_seq: int
    busy_since: float
    beat: float
    #: the last sign of its loop turning (silent workers: what the verdict counts from)
    life: float


class Supervisor:
    """Checks the workers on each ``tick``; the server tells it who runs and who exited."""

    def __init__(self, board: WorkerBoard, watchdog_timeout: float, rss_limit_mb: int) -> None:
        self.board = board
        #: where idle workers sleep; the server has it watch their UDP sockets (watch_sockets)
        self.probe = IdleProbe()
        #: rank -> (pid, when the kernel last said it waits for events)
        self._seen_waiting: dict[int, tuple[int, float]] = {}
        self.watchdog_timeout = watchdog_timeout
        self.rss_limit_mb = rss_limit_mb
        #: plain totals for the statistics: every worker exit that led to a restart, by cause
        self.counters: dict[str, int] = {"restarts": 0, "watchdog_kills": 0,
                                         "memory_recycles": 0, "crashes": 0}
        self.restarts_by_rank: dict[int, int] = {}
        self.last_restart: dict[int, Restart] = {}
        self._asked: dict[int, _Asked] = {}
        self._verdict: dict[int, tuple[int, str, str]] = {}  # rank -> (pid, reason, detail)
        self._retiring: dict[int, int] = {}  # rank -> pid asked to retire
        self._rss: dict[int, float] = {}
        self._next_memory = 0.0

    # ---- periodic checks --------------------------------------------------------------------
    def tick(self, workers: dict[int, int], memory: bool = True) -> None:
        """``workers``: rank -> pid of the workers running now; ``memory``: check RSS too."""
        now = time.monotonic()
        if self.watchdog_timeout > 0:
            self.probe.look()
            for rank, pid in workers.items():
                self._watch(rank, pid, now)
        if memory and now >= self._next_memory:
            self._next_memory = now + MEMORY_EVERY
            self._check_memory(workers)

    def _watch(self, rank: int, pid: int, now: float) -> None:
        busy_since, beat, state, report_seq = self.board.pulse(rank)
        asked = self._asked.get(rank)
        if asked is not None and asked.pid != pid:
            del self._asked[rank]
            asked = None
        if asked is None:
            if busy_since:  # its loop turned when this message (or timer run) started
                if now - busy_since > self.watchdog_timeout:
                    self._ask(rank, pid, now, report_seq, busy_since, beat, busy_since)
                return
            if state not in (READY, DRAINING):
                return
            life = self._last_turn(rank, pid, beat, state == READY, now)
            if now - life > self.watchdog_timeout:
                # stopped, or stuck outside a message: a loop that turns answers the doorbell
                self._ask(rank, pid, now, report_seq, 0.0, beat, life)
                doorbell.ring(pid)
            return
        if busy_since != asked.busy_since or beat != asked.beat:
            del self._asked[rank]  # it finished that message, or its loop turned, after all
            return
        slot = self.board.read(rank)
        answered = slot.report_seq != asked.report_seq
        if not answered and now - asked.asked_at < REPORT_GRACE:
            return
        where = slot.report if answered else "no answer from the worker (stuck outside Python?)"
        if asked.busy_since:
            what = f"spent {now - asked.busy_since:.1f} s on one message"
            detail = f"{now - asked.busy_since:.1f} s in {where}"
        else:
            what = f"has not run its event loop for {now - asked.life:.1f} s"
            detail = f"no heartbeat for {now - asked.life:.1f} s: {where}"
        log.error("watchdog: worker %d (pid %d) %s (watchdog_timeout %g s): %s; killing it and "
                  "starting a new one", rank, pid, what, self.watchdog_timeout, where)
        self._verdict[rank] = (pid, "watchdog", detail)
        del self._asked[rank]
        _signal(pid, signal.SIGKILL)

    def _ask(self, rank: int, pid: int, now: float, report_seq: int, busy_since: float,
             beat: float, life: float) -> None:
        self._asked[rank] = _Asked(pid, now, report_seq, busy_since, beat, life)
        _signal(pid, REPORT_SIGNAL)

    def _last_turn(self, rank: int, pid: int, beat: float, reading: bool, now: float) -> float:
        """The last time an idle worker's loop was seen turning: its heartbeat, or now when the
        kernel says it waits for events (with nothing in its sockets, when it reads them)."""
        seen = self._seen_waiting.get(rank)
        life = max(beat, seen[1] if seen is not None and seen[0] == pid else 0.0)
        waiting = self.probe.waiting(rank, pid, reading)
        if waiting:
            self._seen_waiting[rank] = (pid, now)
            return now
        if waiting is None:
            doorbell.ring(pid)  # /proc cannot say: its heartbeat will (its answer to the ring)
        return life

    def _check_memory(self, workers: dict[int, int]) -> None:
        for rank, pid in workers.items():
            mb = rss_mb(pid, self.probe.files)
            if mb is None:
                continue
            self._rss[rank] = mb
            if (self.rss_limit_mb > 0 and mb > self.rss_limit_mb
                    and self._retiring.get(rank) != pid):
                self._retiring[rank] = pid
                self._verdict[rank] = (pid, "memory",
                                       f"{mb:.0f} MB resident, over worker_rss_limit "
                                       f"{self.rss_limit_mb} MB")
                log.warning("worker %d (pid %d) uses %.0f MB, over worker_rss_limit %d MB: "
                            "replacing it once its transactions are done", rank, pid, mb,
                            self.rss_limit_mb)
                self.board.request_retire(rank)
                if self.board.answers_doorbell(rank):
                    doorbell.ring(pid)  # (a starting worker looks once it answers)

    # ---- exits ----------------------------------------------------------------------------------
    def exited(self, rank: int, pid: int, status: int) -> Restart:
        """Record why the worker ``pid`` of ``rank`` is gone (it is about to be replaced)."""
        verdict = self._verdict.pop(rank, None)
        self._asked.pop(rank, None)
        self._seen_waiting.pop(rank, None)
        self.probe.forget(pid)
        self._rss.pop(rank, None)
        if self._retiring.get(rank) == pid:
            del self._retiring[rank]
        if verdict is not None and verdict[0] == pid:
            reason, detail = verdict[1], verdict[2]
        else:
            reason, detail = "crash", describe_status(status)
        counter = {"watchdog": "watchdog_kills", "memory": "memory_recycles"}.get(reason, "crashes")
        self.counters[counter] += 1
        self.counters["restarts"] += 1
        self.restarts_by_rank[rank] = self.restarts_by_rank.get(rank, 0) + 1
        record = Restart(reason, detail, time.time(), pid)
        self.last_restart[rank] = record
        return record

    # ---- the core.workers RPC ---------------------------------------------------------------------
    def report(self, workers: dict[int, int]) -> dict[str, Any]:
        now = time.monotonic()
        out = []
        for rank in range(1, self.board.slots):
            slot = self.board.read(rank)
            last = self.last_restart.get(rank)
            pid = workers.get(rank, 0)
            rss = self._rss.get(rank) if pid else None
            if pid and rss is None:
                rss = rss_mb(pid)
            out.append({
                "rank": rank,
                "pid": pid,
                "state": slot.state if pid else "down",
                "busy_for": round(now - slot.busy_since, 3) if slot.busy_since else 0.0,
                # since it last answered its doorbell: an idle worker is not woken to beat
                "beat_age": round(now - slot.beat, 3) if pid and slot.beat else None,
                "rss_mb": round(rss, 1) if rss is not None else None,
                "restarts": self.restarts_by_rank.get(rank, 0),
                "last_restart": None if last is None else {
                    "reason": last.reason, "detail": last.detail, "pid": last.pid,
                    "at": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(last.at))},
            })
        return {"workers": out, "totals": dict(self.counters),
                "watchdog_timeout": self.watchdog_timeout,
                "worker_rss_limit": self.rss_limit_mb}


def describe_status(status: int) -> str:
    """A wait status in words: ``exit 1`` / ``killed by SIGSEGV``."""
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
