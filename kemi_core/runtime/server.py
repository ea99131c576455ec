"""The server process tree: the main process (control socket, supervision) and its workers.

``children=N`` with ``fork=yes`` forks N workers after the config is loaded and modules are
initialised (as Kamailio does); ``fork=no`` runs everything in one process.
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
from typing import Any

from kemi_core.errors import ConfigError
from kemi_core.rpc.server import DEFAULT_CTL, serve
from kemi_core.runtime.builder import Built
from kemi_core.runtime.worker import Worker
from kemi_core.stats import count_restart
from kemi_core.transport.sockets import family_of

log = logging.getLogger("kemi.server")

#: A worker that dies is restarted, but no more often than this per minute.
MAX_RESTARTS_PER_MINUTE = 10


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
    """Every ``modparam("ctl", "binrpc", ...)`` address, else $KEMI_CTL or the default."""
    core = built.core
    if "ctl" in core.loaded_modules:
        values = core.modparam("ctl", "binrpc")
        if values:
            return [str(v) for v in values]
    return [os.environ.get("KEMI_CTL", DEFAULT_CTL)]


class Server:
    def __init__(self, built: Built, pid_file: str | None = None) -> None:
        self.built = built
        self.pid_file = pid_file
        self.children: dict[int, int] = {}  # pid -> rank
        self.stopping = False
        self.restarts: list[float] = []
        self.exit_code = 0

    def run(self) -> int:
        cfg = self.built.core.config
        check_listen_free(self.built)
        for lst in cfg.listen:  # as Kamailio's "Listening on" list, one line per socket
            log.info("listening on %s:%s:%d", lst.proto, _bracketed(lst.host), lst.port)
        if self.pid_file:
            with open(self.pid_file, "w") as fh:
                fh.write(f"{os.getpid()}\n")
        try:
            if not cfg.fork or cfg.children <= 0:
                return self._run_single()
            return self._run_forked(cfg.children)
        finally:
            if self.pid_file and os.path.exists(self.pid_file):
                os.unlink(self.pid_file)
            self.built.loader.destroy_all()

    # ---- one process ------------------------------------------------------------------
    def _run_single(self) -> int:
        worker = Worker(self.built, rank=1, shared_sockets=False)
        worker.setup()
        ctl = worker.loop.run_until_complete(self._start_ctl())
        self._main_loop_hooks(worker.loop)
        log.info("kemi running in one process (fork=no)")
        worker.run_forever()
        if ctl is not None:
            ctl.close()
        return 0

    # ---- main process and workers -----------------------------------------------------
    def _run_forked(self, n: int) -> int:
        # Workers report "ready" (sockets bound, script loaded) on this pipe; the control socket
        # opens only once all are, so "the RPC answers" means "the server takes traffic".
        self.ready_r, self.ready_w = os.pipe()
        for rank in range(1, n + 1):
            self._spawn(rank, shared=n > 1)
        self._wait_ready(n)
        core = self.built.core
        core.worker_pids = {rank: pid for pid, rank in self.children.items()}  # type: ignore[attr-defined]
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        core.loop = loop
        ctl = loop.run_until_complete(self._start_ctl())
        self._main_loop_hooks(loop)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, loop.stop)
        loop.add_signal_handler(signal.SIGCHLD, self._reap)
        loop.add_reader(self.ready_r, self._drain_ready)  # restarted workers report too
        log.info("kemi main process %d: %d workers", os.getpid(), n)
        try:
            loop.run_forever()
        finally:
            self.stopping = True
            if ctl is not None:
                ctl.close()
            self._stop_children()
            loop.close()
        return self.exit_code

    def _spawn(self, rank: int, shared: bool) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                worker = Worker(self.built, rank, shared)
                worker.setup()
                os.write(self.ready_w, bytes([rank % 256]))
                worker.run_forever()
            except BaseException:
                log.exception("worker %d failed", rank)
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
            os.read(self.ready_r, 256)
        except BlockingIOError:
            pass

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            rank = self.children.pop(pid, None)
            if rank is None or self.stopping:
                continue
            log.error("worker %d (pid %d) exited with status %d", rank, pid, status)
            now = time.monotonic()
            self.restarts = [t for t in self.restarts if now - t < 60] + [now]
            if len(self.restarts) > MAX_RESTARTS_PER_MINUTE:
                log.critical("workers keep dying: stopping the server")
                self.exit_code = 1
                asyncio.get_event_loop().stop()
                return
            self._spawn(rank, shared=len(self.children) + 1 > 1)
            self.built.core.worker_pids = {r: p for p, r in self.children.items()}  # type: ignore[attr-defined]
            count_restart(self.built.core, rank)

    def _stop_children(self) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                self.children.pop(pid, None)
        deadline = time.monotonic() + 5
        while self.children and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.05)
                continue
            self.children.pop(pid, None)
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass

    def _main_loop_hooks(self, loop: asyncio.AbstractEventLoop) -> None:
        for hook in self.built.core.main_loop_hooks:
            try:
                hook(loop)
            except Exception:
                log.exception("a module failed to start on the main loop")

    async def _start_ctl(self) -> _CtlServers:
        servers = _CtlServers()
        for spec in ctl_specs(self.built):
            try:
                servers.append(await serve(self.built.core, spec))
            except (OSError, ValueError) as exc:
                log.error("control socket %s not available: %s", spec, exc)
        return servers


class _CtlServers(list[Any]):
    """The control socket's listeners (one per ctl binrpc address)."""

    def close(self) -> None:
        for server in self:
            server.close()


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host
