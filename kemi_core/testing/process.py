"""Start ``kemi run`` as a real process and stop it by its PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kemi_core.rpc.client import RpcError, call
from kemi_core.testing.wait import POLL_INTERVAL, wait_log, wait_until


def free_port(proto: int = socket.SOCK_DGRAM) -> int:
    """A port that is free on 127.0.0.1 for both UDP and TCP right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, proto) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        other = socket.SOCK_STREAM if proto == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, other) as s2:
            try:
                s2.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port found")


def kemi_executable() -> list[str]:
    exe = Path(sys.executable).with_name("kemi")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "kemi_core.cli"]


class KemiProcess:
    """``with KemiProcess(cfg_path, workdir) as srv: ...`` runs ``kemi run -f cfg``.

    The control socket is placed in ``workdir`` (via $KEMI_CTL) so parallel servers never share
    one. The log (stderr) is kept in ``workdir/kemi.log`` for assertions and post-mortems.
    """

    def __init__(self, cfg: str | Path, workdir: str | Path, args: list[str] | None = None,
                 cwd: str | Path | None = None, env: dict[str, str] | None = None,
                 ready_timeout: float = 20.0) -> None:
        self.cfg = Path(cfg)
        self.workdir = Path(workdir)
        self.args = args or []
        self.cwd = Path(cwd) if cwd else None
        self.ctl = f"unix:{self.workdir / 'kemi_ctl'}"
        self.log_path = self.workdir / "kemi.log"
        self.extra_env = env or {}
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> KemiProcess:
        self._check_listens_locally()
        env = dict(os.environ, KEMI_CTL=self.ctl, PYTHONUNBUFFERED="1", **self.extra_env)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([*kemi_executable(), "run", "-f", str(self.cfg), *self.args],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     cwd=self.cwd, start_new_session=True)
        # The control socket opens only once every worker has bound its sockets and loaded its
        # script (fork=no: once the one process has), so the first RPC answer means "ready".
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            try:
                call(self.ctl, "core.version", timeout=1)
                return self
            except (OSError, RpcError, ValueError):
                pass
            try:  # the pause before the next try ends early if kemi exits
                self.proc.wait(timeout=POLL_INTERVAL)
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError(f"kemi exited with {self.proc.returncode}:\n{self.log()}")
        self.stop()
        raise RuntimeError(f"kemi did not become ready in {self.ready_timeout}s:\n{self.log()}")

    def _check_listens_locally(self) -> None:
        """Without listen= a server binds every interface (as Kamailio): a test must never."""
        if "-l" in self.args:
            return
        try:
            text = self.cfg.read_text(errors="replace")
        except OSError:
            return  # kemi itself reports the missing file
        if not any(line.strip().startswith("listen") for line in text.splitlines()):
            raise ValueError(f"{self.cfg}: a test config must set listen= (127.0.0.1) or pass -l;"
                             " without one kemi listens on every interface")

    def rpc(self, method: str, *params: Any) -> Any:
        return call(self.ctl, method, list(params))

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_log(self, text: str, count: int = 1, timeout: float = 10.0) -> str:
        """The log once ``text`` appears in it ``count`` times (workers write when they get to
        it); WaitTimeout with the log's tail if it does not in ``timeout`` seconds."""
        return wait_log(self.log, text, count, timeout)

    def wait_tm_settled(self, created: int, timeout: float = 60.0) -> dict[str, int]:
        """tm.stats once ``created`` transactions are made and none waits for its final reply.
        After SIPp's built-in uac exits, that may still take a moment: it ends a call on any
        200 once its BYE is out, also on a retransmission of the INVITE's 200, so the BYE's
        own 200 (or the BYE) may still wait in the worker's sockets; the callee must still be
        up to answer it."""
        def settled() -> dict[str, int]:  # empty (false) while not settled
            stats: dict[str, int] = self.rpc("tm.stats")
            return stats if (stats["created"] >= created
                             and stats["current"] == stats["waiting"]) else {}

        return wait_until(settled, timeout,
                          lambda: f"{created} transactions with their finals: {self.rpc('tm.stats')}")

    def stop(self) -> int | None:
        """SIGTERM to the main process (it stops its workers), SIGKILL to the group if stuck."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> KemiProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
