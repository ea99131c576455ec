"""One worker process: its engine instance, its sockets and its event loop."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

from kemi_core.runtime.builder import Built
from kemi_core.runtime.clock import drive_with_loop
from kemi_core.runtime.dispatch import Dispatcher
from kemi_core.runtime.logs import LOG_CONTEXT
from kemi_core.sip import ParseLimits
from kemi_core.transport.endpoints import WorkerEndpoints

log = logging.getLogger("kemi.worker")

#: The worker's collector thresholds: young generations as CPython's defaults, full collections
#: about 100 times rarer (see tune_gc).
GC_THRESHOLDS = (700, 10, 1000)


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the message path.

    A stateful proxy holds tens of thousands of live transactions (each lingers ``wt_timer``
    after its final reply) made of a few dozen tracked objects each. With CPython's default
    thresholds a full collection walks all of them every few thousand calls: ~0.25 s each at
    40,000 transactions, about 100 us of CPU per call at 4,000 calls/s, more than any single
    piece of SIP work. The message path makes no reference cycles (freed by reference
    counting), so full collections find next to nothing: make them rare, and freeze what was
    loaded at start (modules, config, the engine) so they never walk it again. Young
    generations keep their default pace, so short-lived cycles (an error's traceback) still
    go at once.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


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
                       max_header_line=cfg.max_header_line)


class Worker:
    """Receives, routes and sends SIP messages in one process."""

    def __init__(self, built: Built, rank: int, shared_sockets: bool) -> None:
        self.built = built
        self.rank = rank
        self.shared_sockets = shared_sockets
        self.loop = new_event_loop()
        self.endpoints: WorkerEndpoints | None = None
        self.dispatcher: Dispatcher | None = None

    def setup(self) -> None:
        """child_init, this worker's engine instance, sockets."""
        built = self.built
        core = built.core
        core.worker_rank = self.rank
        LOG_CONTEXT.rank = self.rank
        core.loop = self.loop
        asyncio.set_event_loop(self.loop)
        built.loader.child_init_all(self.rank)
        if self.rank > 0 or core.engine is None:
            engine = built.engine_spec.factory(core)
            engine.load()
            core.engine = engine
        self.dispatcher = Dispatcher(core, limits_of(built))
        core.dispatcher = self.dispatcher  # type: ignore[attr-defined]
        self.endpoints = WorkerEndpoints(self.loop, core.config.listen, self.dispatcher.on_data,
                                         self.dispatcher.on_msg, limits_of(built),
                                         self.shared_sockets,
                                         tcp_max_connections=core.config.tcp_max_connections,
                                         tcp_idle_timeout=float(core.config.tcp_connection_lifetime))
        self.loop.run_until_complete(self.endpoints.start())
        core.attach_transport(self.endpoints)
        tune_gc()
        drive_with_loop(core.clock, self.loop)  # module timers (tm, add_timer_handler ...)

    def run_forever(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self.loop.stop)
        log.info("worker %d ready", self.rank)
        try:
            self.loop.run_forever()
        finally:
            if self.endpoints is not None:
                self.endpoints.close()
