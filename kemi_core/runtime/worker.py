"""One worker process: its engine instance, its sockets and its event loop."""

from __future__ import annotations

import array
import asyncio
import logging
import os
import signal
from collections.abc import Callable

from kemi_core.runtime import doorbell, stuck
from kemi_core.runtime.board import DRAINING, READY, WorkerBoard
from kemi_core.runtime.builder import Built
from kemi_core.runtime.clock import drive_with_loop
from kemi_core.runtime.collector import SurvivorFreezer, tune_gc
from kemi_core.runtime.dispatch import Dispatcher
from kemi_core.runtime.drain import EntryGate, work_in_progress
from kemi_core.runtime.logs import LOG_CONTEXT, reopen_log_files
from kemi_core.runtime.main_sip import to_main
from kemi_core.sip import ParseLimits
from kemi_core.transport.endpoints import WorkerEndpoints
from kemi_core.transport.sockets import RankSockets
from kemi_core.transport.stream import HttpService, TlsService

log = logging.getLogger("kemi.worker")

#: How often a worker whose parent-death signal could not be set (not Linux) polls its parent,
#: and how often a lone worker asked to retire looks for a quiet moment (s).
PARENT_POLL = RETIRE_POLL = 1.0

#: How often a draining worker checks whether its transactions are done.
DRAIN_POLL = 0.02

#: A lone worker asked to retire keeps serving until it has no transaction in progress, at
#: most this long (s); then it drains like a stopping worker.
RETIRE_QUIET_WAIT = 30.0

def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (several times cheaper per datagram), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()  # type: ignore[no-any-return]


def limits_of(built: Built) -> ParseLimits:
    cfg = built.core.config
    return ParseLimits(max_message_size=cfg.max_msg_size, max_headers=cfg.max_headers,
                       max_header_line=cfg.max_header_line, accept_no_cl=cfg.tcp_accept_no_cl)


class Worker:
    """Receives, routes and sends SIP messages in one process."""

    def __init__(self, built: Built, rank: int, shared_sockets: bool,
                 board: WorkerBoard | None = None, sockets: RankSockets | None = None) -> None:
        self.built = built
        #: this rank's UDP sockets, made by the main process (None: bound in setup)
        self.sockets = sockets
        self.rank = rank
        self.shared_sockets = shared_sockets
        self.board = board
        self.loop = new_event_loop()
        self.endpoints: WorkerEndpoints | None = None
        self.dispatcher: Dispatcher | None = None
        if board is not None:
            busy, index = board.busy_cell(rank)
        else:  # one process (fork=no): nobody watches, the gate still drains
            busy, index = array.array("d", [0.0]), 0
        self.gate = EntryGate(built.core, busy, index)
        self.parent = os.getppid()
        self.log_generation = board.log_generation() if board is not None else 0
        self.retire_asked_at: float | None = None
        self.drain_deadline: float | None = None
        self.drain_reason = ""
        #: the collector callback (tune_gc, in setup): its full collections run from the loop
        self.collector: SurvivorFreezer | None = None

    def setup(self) -> None:
        """child_init, this worker's engine instance, sockets."""
        built = self.built
        core = built.core
        core.worker_rank = self.rank
        LOG_CONTEXT.rank = self.rank
        core.loop = self.loop
        core.resolver.loop = self.loop  # next-hop names are looked up off this loop
        asyncio.set_event_loop(self.loop)
        built.loader.child_init_all(self.rank)
        if self.rank > 0 or core.engine is None:
            core.engine = core.new_engine()
        self.dispatcher = Dispatcher(core, limits_of(built))
        core.dispatcher = self.dispatcher  # type: ignore[attr-defined]
        cfg = core.config
        self.endpoints = WorkerEndpoints(self.loop, cfg.listen,
                                         self.gate.receiver(self.dispatcher),
                                         limits_of(built), self.shared_sockets,
                                         tcp_max_connections=cfg.tcp_max_connections,
                                         tcp_idle_timeout=float(cfg.tcp_connection_lifetime),
                                         tcp_read_timeout=float(cfg.tcp_msg_read_timeout),
                                         tcp_first_data_timeout=float(cfg.tcp_msg_data_timeout),
                                         tls=core.service("tls", TlsService),
                                         http=core.service("http", HttpService),
                                         rank=self.rank,
                                         owners=core.stream_owners if self.shared_sockets
                                         else None, sockets=self.sockets,
                                         workers=cfg.children,
                                         to_main=bool(core.main_reply_handlers)
                                         and self.sockets is not None)
        self.endpoints.on_send_failed = core.send_failed_later
        self.loop.run_until_complete(self.endpoints.start(udp=False))
        box = self.endpoints.mailbox
        if box is not None and ((self.shared_sockets and cfg.children > 1)
                                or self.endpoints.owners is not None):
            self.dispatcher.steer = self.endpoints.steer_reply  # replies to their owners
        if box is not None and self.endpoints.to_main:
            core.main_handoff = to_main(box)  # replies to what the main sent
            if core.main_replies_first:
                core.reply_handlers.insert(0, core.main_handoff)
        core.attach_transport(self.endpoints)
        if self.board is not None:
            stuck.install(core, self.board, self.rank)
        self.collector = tune_gc()
        # module timers (tm, add_timer_handler ...), marked busy for the watchdog like messages
        drive_with_loop(core.clock, self.loop, wrap=self.gate.mark)
        self.endpoints.open_udp()  # last: its sockets may hold datagrams already

    def run_forever(self, on_stop: Callable[[str], None] | None = None,
                    on_hup: Callable[[], None] | None = None) -> None:
        """Serve until drained. A worker drains on SIGTERM/SIGINT and ignores SIGHUP; in one
        process (fork=no) the server passes its own handlers for both."""
        loop = self.loop
        for sig in (signal.SIGTERM, signal.SIGINT):
            name = signal.Signals(sig).name
            if on_stop is None:
                loop.add_signal_handler(sig, self.drain, "stopping")
            else:
                loop.add_signal_handler(sig, on_stop, name)
        if on_hup is None:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the main process handles it
        else:
            loop.add_signal_handler(signal.SIGHUP, on_hup)
        # No periodic wake-up: the doorbell brings what the main process wants, the kernel
        # rings it when the main process dies, the collector when a full collection is due.
        loop.add_signal_handler(doorbell.DOORBELL, self._look)
        if not doorbell.ring_on_parent_death():
            loop.call_later(PARENT_POLL, self._poll_parent)
        if self.collector is not None:
            pid = os.getpid()
            self.collector.on_due = lambda: doorbell.ring(pid)
        if self.board is not None:
            self.board.set_state(self.rank, READY)  # after the doorbell answers (doorbell.py)
        loop.call_soon(self._look)  # what was asked while the doorbell was not answered
        log.info("worker %d ready", self.rank)
        try:
            loop.run_forever()
        finally:
            if self.endpoints is not None:
                self.endpoints.close()

    # ---- the doorbell: parent, heartbeat, log files, retire requests, the collector -------------
    def _look(self) -> None:
        """Everything the doorbell may have rung for (they are cheap to check)."""
        if os.getppid() != self.parent:
            log.error("worker %d: the main process is gone; stopping", self.rank)
            self.drain("stopping")
        board = self.board
        if board is not None:
            board.beat(self.rank)  # the watchdog's ping answered: this loop turns
            generation = board.log_generation()
            if generation != self.log_generation:
                self.log_generation = generation
                reopened = reopen_log_files()
                log.log(logging.INFO if reopened else logging.DEBUG,
                        "worker %d: SIGHUP: %d log files reopened", self.rank, reopened)
            if board.retire_requested(self.rank) and self.retire_asked_at is None:
                self._retire()
        if self.collector is not None:
            self.collector.collect_if_due()  # between messages, after the beat (collector.py)

    def _poll_parent(self) -> None:
        """Where the kernel cannot ring on the parent's death."""
        self._look()
        self.loop.call_later(PARENT_POLL, self._poll_parent)

    def _retire(self) -> None:
        """Asked to make room for a fresh worker (memory limit): with other workers to take
        the traffic, drain now; alone, wait for a moment with nothing in progress."""
        if self.drain_deadline is not None:
            return
        now = self.loop.time()
        if self.retire_asked_at is None:
            self.retire_asked_at = now
        if (self.shared_sockets or work_in_progress(self.built.core) == 0
                or now - self.retire_asked_at > RETIRE_QUIET_WAIT):
            self.drain("recycling")
        else:
            self.loop.call_later(RETIRE_POLL, self._retire)

    # ---- draining -----------------------------------------------------------------------------
    def drain(self, why: str) -> None:
        """Take no new requests; stop once the transactions in progress are done (at most
        exit_timeout seconds)."""
        if self.drain_deadline is not None:
            return
        self.drain_deadline = self.loop.time() + max(self.built.core.config.exit_timeout, 0)
        self.drain_reason = why
        endpoints = self.endpoints
        # recycled with others to take the traffic: new requests go to them (stopping: a 503)
        self.gate.start_draining(endpoints.hand_to_another if endpoints is not None
                                 and why == "recycling" and self.shared_sockets else None)
        if self.board is not None:
            self.board.set_state(self.rank, DRAINING)
        if endpoints is not None:
            endpoints.stop_accepting()
        pending = work_in_progress(self.built.core)
        if pending:
            log.info("worker %d %s: waiting for %d transactions in progress (at most %d s)",
                     self.rank, why, pending, self.built.core.config.exit_timeout)
        self._check_drained()

    def _check_drained(self) -> None:
        pending = work_in_progress(self.built.core)
        assert self.drain_deadline is not None
        if self.loop.time() < self.drain_deadline and (pending or self._others_still_routing()):
            self.loop.call_later(DRAIN_POLL, self._check_drained)
            return
        if pending:
            log.warning("worker %d: exit_timeout reached with %d transactions in progress",
                        self.rank, pending)
        self.loop.stop()

    def _others_still_routing(self) -> bool:
        """While the server stops, whether another worker has not taken the stop yet.

        Leaving closes this worker's SO_REUSEPORT listen sockets, and the kernel moves the
        flows hashed to them onto the workers left: one that has not taken its SIGTERM yet
        would route their requests as new transactions of a stopping server (an in-dialog BYE
        whose reply a SIPp UAS sends to this worker's port, gone: a 408 after fr_timer). So
        the first workers to finish stay, refusing new requests, until all have taken it.
        """
        board = self.board
        if self.drain_reason != "stopping" or board is None or not board.stopping():
            return False
        return bool(board.still_routing(self.rank))

