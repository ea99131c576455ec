"""The server process tree: the main process (control socket, supervision) and its workers.

``children=N`` with ``fork=yes`` forks N workers after the config is loaded and modules are
initialised (as Kamailio does); ``fork=no`` runs everything in one process.

Signals (main process): SIGTERM/SIGINT stop the server: the workers take no new requests,
finish the transactions in progress (at most ``exit_timeout`` s) and exit; then the control
socket and the pid file are removed. A second SIGTERM/SIGINT kills the workers at once.
SIGHUP reopens log files (logrotate) and never stops anything; workers ignore it, the main
process rings their doorbells (doorbell.py) and each reopens its own at once.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from kemi_core.errors import ConfigError
from kemi_core.rpc.paths import default_spec
from kemi_core.rpc.server import ControlServer
from kemi_core.runtime import doorbell
from kemi_core.runtime.board import WorkerBoard
from kemi_core.runtime.builder import Built
from kemi_core.runtime.clock import on_grid
from kemi_core.runtime.logs import reopen_log_files
from kemi_core.runtime.main_sip import MainSip
from kemi_core.runtime.supervisor import Supervisor, describe_status, supervise_interval
from kemi_core.runtime.worker import Worker
from kemi_core.stats import count_restart
from kemi_core.transport.sockets import RankSockets, family_of, make_rank_sockets

log = logging.getLogger("kemi.server")

#: Workers that crash more often than this per minute are restarted with a growing delay.
MAX_RESTARTS_PER_MINUTE = 10
#: A rank whose worker dies this many times in a row before it is ready stops the server.
MAX_START_FAILURES = 3
#: Extra time after exit_timeout before the workers still running are killed (s).
KILL_MARGIN = 1.0


def check_listen_free(built: Built) -> None:
    """Fail before forking when a listen address is taken (with SO_REUSEPORT the kernel would
    otherwise share it silently with another server)."""
    for lst in built.core.config.listen:
        kind = socket.SOCK_DGRAM if lst.proto == "udp" else socket.SOCK_STREAM
        with socket.socket(family_of(lst.host), kind) as sock:
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((lst.host.strip("[]"), lst.port))
            except OSError as exc:
                why = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
                raise ConfigError(f"cannot listen on {lst.proto}:{lst.host}:{lst.port}: {why}",
                                  built.core.config.source)


def _exited(pid: int) -> bool:
    """Whether a child has exited (without reaping it: _reap does that)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def ctl_specs(built: Built) -> list[str]:
    """Every ``modparam("ctl", "binrpc", ...)`` address, else $KEMI_CTL or the default (per
    user when not root: see kemi_core.rpc.paths)."""
    core = built.core
    if "ctl" in core.loaded_modules:
        values = core.modparam("ctl", "binrpc")
        if values:
            return [str(v) for v in values]
    return [default_spec()]


def notify_worker_gone(built: Built, rank: int) -> None:
    """Tell the modules a worker is gone for good (tm stops counting its transactions)."""
    for svc in list(built.core.services.values()):
        gone = getattr(svc, "worker_gone", None)
        if gone is None:
            continue
        try:
            gone(rank)
        except Exception:
            log.exception("worker_gone(%d) of %r failed", rank, svc)


class Server:
    def __init__(self, built: Built, pid_file: str | None = None) -> None:
        self.built = built
        self.pid_file = pid_file
        self.children: dict[int, int] = {}  # pid -> rank
        self.stopping = False
        self.stop_started = 0.0
        self.crash_times: list[float] = []
        self.start_failures: dict[int, int] = {}
        self.exit_code = 0
        #: the control socket's listeners (one per ctl binrpc address)
        self.ctl = [ControlServer(built.core, spec) for spec in ctl_specs(built)]
        self.board: WorkerBoard | None = None
        self.supervisor: Supervisor | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        #: each rank's UDP sockets, kept here for the workers that replace each other
        self.rank_sockets: dict[int, RankSockets] = {}
        #: the main loop's call_later on its grid (clock.on_grid), set with the loop
        self._call_on_grid: Callable[..., Any] = lambda *args: None

    def run(self) -> int:
        cfg = self.built.core.config
        check_listen_free(self.built)
        for ctl in self.ctl:
            ctl.claim()  # a live server on our unix socket: refuse now, before forking
        for lst in cfg.listen:  # as Kamailio's "Listening on" list, one line per socket
            log.info("listening on %s:%s:%d", lst.proto, _bracketed(lst.host), lst.port)
        for name in self.built.core.myself.aliases():  # built here once, before the fork
            log.info("alias %s:%s:%s", name.proto or "*", _bracketed(name.host), name.port or "*")
        if self.pid_file:
            with open(self.pid_file, "w") as fh:
                fh.write(f"{os.getpid()}\n")
        try:
            if not cfg.fork or cfg.children <= 0:
                return self._run_single()
            return self._run_forked(cfg.children)
        finally:
            self._close_ctl()
            if self.pid_file and os.path.exists(self.pid_file):
                os.unlink(self.pid_file)
            self.built.loader.destroy_all()
            self.built.core.close_reload()
            if self.stopping:
                log.info("shutdown: done (%.2f s after the signal)",
                         time.monotonic() - self.stop_started)

    # ---- one process ------------------------------------------------------------------
    def _run_single(self) -> int:
        worker = Worker(self.built, rank=1, shared_sockets=False)
        worker.setup()
        self.loop = worker.loop
        worker.loop.run_until_complete(self._start_ctl())
        self._main_loop_hooks(worker.loop)
        log.info("kemi running in one process (fork=no)")

        def stop(signame: str) -> None:
            self._log_stop(signame)
            worker.drain("stopping")

        worker.run_forever(on_stop=stop, on_hup=self._on_hup)
        return 0

    # ---- main process and workers -----------------------------------------------------
    def _run_forked(self, n: int) -> int:
        cfg = self.built.core.config
        self.board = WorkerBoard(n)
        self.supervisor = Supervisor(self.board, float(cfg.watchdog_timeout),
                                     cfg.worker_rss_limit)
        # How often the supervisor looks at the workers (s): four times per watchdog_timeout,
        # at most once a second, as fine as the watchdog judges.
        # Each look wakes the idle main process (~0.2 ms of CPU, the kernel's part included):
        # every 0.1 s it was most of an idle server's CPU (2 ms/s; Kamailio's tree uses ~0.5).
        self.supervise_every = supervise_interval(float(cfg.watchdog_timeout))
        if n > 1 and any(lst.proto in ("tcp", "tls") for lst in cfg.listen):
            # stream connections live in one worker; the others hand sends and replies over
            from kemi_core.shared import shared_store
            from kemi_core.transport.handoff import OWNERS

            owners = shared_store(self.built.core).table(OWNERS)
            # its values are ranks (ints, replaced whole): a read of an entry unchanged since
            # gives the value kept, not unpickled again (every hand-over of a send reads one)
            owners.keep_decoded()
            self.built.core.stream_owners = owners
        # Workers report "ready" (sockets bound, script loaded) on this pipe; the control socket
        # opens only once all are, so "the RPC answers" means "the server takes traffic".
        self.ready_r, self.ready_w = os.pipe()
        udp = [(lst.host, lst.port) for lst in cfg.listen if lst.proto == "udp"]
        self.rank_sockets = make_rank_sockets(udp, n)
        # what the main process sends leaves from these too (dispatcher keepalives)
        self.built.core.main_sip = MainSip(self.built.core, cfg.listen, self.rank_sockets)
        for rank in self.rank_sockets:
            self.supervisor.probe.watch_sockets(rank, self._udp_sockets_of(rank))
        for rank in range(1, n + 1):
            self._spawn(rank)
        self._wait_ready(n)
        core = self.built.core
        core.worker_pids = self.workers()  # type: ignore[attr-defined]
        core.supervisor = self.supervisor  # type: ignore[attr-defined]
        core.add_rpc("core.workers", self._rpc_workers,
                     "workers: state, busy time, memory, restarts and why (watchdog, memory, "
                     "crash)")
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        core.loop = loop
        loop.run_until_complete(self._start_ctl())
        main_sip = core.main_sip
        if main_sip is not None and core.main_reply_handlers:
            main_sip.open(loop)  # before the modules' tasks send anything
        self._main_loop_hooks(loop)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, signal.Signals(sig).name)
        loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        for sig in (signal.SIGUSR1, signal.SIGUSR2):
            # Kamailio's main process logs its memory on these; a habit must not stop kemi
            loop.add_signal_handler(sig, self._log_workers, signal.Signals(sig).name)
        loop.add_signal_handler(signal.SIGCHLD, self._reap)
        loop.add_reader(self.ready_r, self._drain_ready)  # restarted workers report too
        self._call_on_grid = on_grid(loop)  # one wake-up with the housekeeping tasks
        self._call_on_grid(self.supervise_every, self._supervise)
        log.info("kemi main process %d: %d workers", os.getpid(), n)
        self._reap()  # a worker that died before the handler was installed
        try:
            if self.children or not self.stopping:
                loop.run_forever()
        finally:
            self.stopping = True
            self._stop_children(kill=True)
            if self.stop_started:
                log.info("shutdown: all workers stopped (%.2f s)",
                         time.monotonic() - self.stop_started)
            self._close_ctl()
            if core.main_sip is not None:
                core.main_sip.close()
            for made in self.rank_sockets.values():
                made.close()
            self.supervisor.probe.files.close()
            loop.close()
        return self.exit_code

    def _udp_sockets_of(self, rank: int) -> list[socket.socket]:
        """The UDP sockets the worker of ``rank`` reads (the main process holds them too)."""
        made = self.rank_sockets.get(rank)
        if made is None:
            return []
        return list(made.listen.values())

    def workers(self) -> dict[int, int]:
        """rank -> pid of the workers running now."""
        return {rank: pid for pid, rank in self.children.items()}

    def _spawn(self, rank: int) -> None:
        shared = self.built.core.config.children > 1
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                doorbell.ignore_until_answered()
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP,
                            signal.SIGUSR2):
                    signal.signal(sig, signal.SIG_DFL)
                for ctl in self.ctl:
                    ctl.forget()  # the main process's sockets: not ours to serve or remove
                for other, made in self.rank_sockets.items():
                    if other != rank:
                        made.close()  # this process's copies only: the main process keeps them
                main_sip = self.built.core.main_sip
                if main_sip is not None:
                    main_sip.forget()  # the main process's mailbox: not ours to read
                assert self.board is not None
                self.board.start(rank, os.getpid())
                worker = Worker(self.built, rank, shared, self.board,
                                self.rank_sockets.get(rank))
                worker.setup()
                os.write(self.ready_w, bytes([rank % 256]))
                worker.run_forever()
            except BaseException as exc:
                log.error("worker %d failed: %s", rank, exc, exc_info=not isinstance(
                    exc, (SystemExit, KeyboardInterrupt)))
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.children[pid] = rank

    def _wait_ready(self, n: int, timeout: float = 60.0) -> None:
        """Block until ``n`` workers said ready (or died, which _reap handles later)."""
        deadline = time.monotonic() + timeout
        got = 0
        while got < n and time.monotonic() < deadline:
            readable, _, _ = select.select([self.ready_r], [], [], 0.2)
            if readable:
                got += len(os.read(self.ready_r, 256))
            elif not self.children or any(_exited(pid) for pid in self.children):
                break  # a worker died during start-up: the supervisor loop deals with it
        if got < n:
            log.error("only %d of %d workers became ready", got, n)

    def _drain_ready(self) -> None:
        try:
            for rank in os.read(self.ready_r, 256):
                self.start_failures.pop(rank, None)
        except BlockingIOError:
            pass

    def _supervise(self) -> None:
        assert self.loop is not None and self.supervisor is not None
        try:  # while stopping too: a stuck worker would hold the shutdown for exit_timeout
            self.supervisor.tick(self.workers(), memory=not self.stopping)
        except Exception:
            log.exception("worker supervision failed")
        self._call_on_grid(self.supervise_every, self._supervise)

    # ---- exits and restarts -----------------------------------------------------------------------
    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            rank = self.children.pop(pid, None)
            if rank is None:
                continue
            if self.board is not None:
                self.board.clear(rank)
            notify_worker_gone(self.built, rank)
            if self.stopping:
                self._release_sockets(rank)
                if status:
                    log.info("worker %d (pid %d) stopped: %s", rank, pid, describe_status(status))
                continue
            self._replace(rank, pid, status)
        self.built.core.worker_pids = self.workers()  # type: ignore[attr-defined]
        if self.stopping and not self.children and self.loop is not None:
            self.loop.stop()

    def _release_sockets(self, rank: int) -> None:
        """While stopping, no worker replaces one that is gone: close its rank's sockets, so
        the kernel hands their flows to the workers still draining (which answer new requests
        with 503 and retransmissions as their transactions do) instead of queueing them."""
        if self.supervisor is not None:
            self.supervisor.probe.unwatch_sockets(self._udp_sockets_of(rank))
        made = self.rank_sockets.pop(rank, None)
        if made is not None:
            made.close()

    def _replace(self, rank: int, pid: int, status: int) -> None:
        assert self.supervisor is not None and self.loop is not None
        started = self.board.read(rank) if self.board is not None else None
        record = self.supervisor.exited(rank, pid, status)
        count_restart(self.built.core, rank)  # kemi:worker_restarts
        if record.reason == "memory":
            log.info("worker %d (pid %d) finished its transactions and exited (%s); starting a "
                     "new one", rank, pid, record.detail)
        if record.reason != "crash":
            self._spawn(rank)
            return
        log.error("worker %d (pid %d) exited: %s; starting a new one", rank, pid, record.detail)
        if started is not None and started.state == "starting":
            self.start_failures[rank] = self.start_failures.get(rank, 0) + 1
            if self.start_failures[rank] >= MAX_START_FAILURES:
                log.critical("worker %d failed %d times before it was ready: stopping the server",
                             rank, self.start_failures[rank])
                self.exit_code = 1
                self._begin_stop()
                return
        now = time.monotonic()
        self.crash_times = [t for t in self.crash_times if now - t < 60] + [now]
        excess = len(self.crash_times) - MAX_RESTARTS_PER_MINUTE
        if excess > 0:
            delay = min(30.0, 2.0 ** min(excess, 5))
            log.error("workers keep dying (%d in a minute): next start of worker %d in %g s",
                      len(self.crash_times), rank, delay)
            self.loop.call_later(delay, self._spawn_later, rank)
            return
        self._spawn(rank)

    def _spawn_later(self, rank: int) -> None:
        if not self.stopping and rank not in self.children.values():
            self._spawn(rank)
            self.built.core.worker_pids = self.workers()  # type: ignore[attr-defined]

    # ---- stopping -------------------------------------------------------------------------------
    def _on_stop_signal(self, signame: str) -> None:
        if self.stopping:
            log.warning("shutdown: %s again: killing the workers now", signame)
            self._stop_children(kill=True)
            return
        self._log_stop(signame)
        self._begin_stop()

    def _log_stop(self, signame: str) -> None:
        self.stop_started = time.monotonic()
        self.stopping = True
        log.info("shutdown: %s received: taking no new requests, finishing the transactions "
                 "in progress (at most exit_timeout=%d s)", signame,
                 self.built.core.config.exit_timeout)

    def _begin_stop(self) -> None:
        assert self.loop is not None
        if not self.stopping:
            self.stop_started = time.monotonic()
            self.stopping = True
        if not self.children:
            self.loop.stop()
            return
        if self.board is not None:
            self.board.mark_stopping()  # before the signals: see Worker._others_still_routing
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        grace = max(self.built.core.config.exit_timeout, 0) + KILL_MARGIN
        self.loop.call_later(grace, self._stop_children, True)

    def _stop_children(self, kill: bool) -> None:
        """Kill the workers still running (after exit_timeout, or a second signal)."""
        if self.children:
            log.warning("shutdown: killing %d workers still running", len(self.children))
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in list(self.children):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            self.children.pop(pid, None)
        if self.loop is not None and self.loop.is_running():
            self.loop.stop()

    def _on_hup(self) -> None:
        reopened = reopen_log_files()
        if self.board is not None:
            self.board.bump_log_generation()
            for rank, pid in self.workers().items():
                if self.board.answers_doorbell(rank):  # the others look as they start
                    doorbell.ring(pid)
        if reopened:
            log.info("SIGHUP: %d log files reopened", reopened)
        else:
            log.info("SIGHUP: logging to stderr, nothing to reopen (the server goes on)")

    def _log_workers(self, name: str) -> None:
        """SIGUSR1/SIGUSR2 to the main process: one line per worker (state, memory, restarts)
        in the log, what ``core.workers`` answers; the server goes on."""
        assert self.supervisor is not None
        report = self.supervisor.report(self.workers())
        log.info("%s: %d workers, watchdog_timeout %g s", name, len(report["workers"]),
                 report["watchdog_timeout"])
        for w in report["workers"]:
            log.info("%s: worker %d pid %d %s, busy %.3f s, %s MB, %d restarts", name,
                     w["rank"], w["pid"], w["state"], w["busy_for"],
                     "?" if w["rss_mb"] is None else w["rss_mb"], w["restarts"])

    def _main_loop_hooks(self, loop: asyncio.AbstractEventLoop) -> None:
        for hook in self.built.core.main_loop_hooks:
            try:
                hook(loop)
            except Exception:
                log.exception("a module failed to start on the main loop")

    async def _start_ctl(self) -> None:
        for ctl in self.ctl:
            await ctl.start()  # CtlPathError (a KemiError) when taken since the check: stop

    def _close_ctl(self) -> None:
        for ctl in self.ctl:
            ctl.close()

    def _rpc_workers(self, core: Any, params: list[Any]) -> dict[str, Any]:
        assert self.supervisor is not None
        return self.supervisor.report(self.workers())


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host
