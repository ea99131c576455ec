"""What the helpers that run a third-party server for tests share (Kamailio, rtpengine): its
log file, and stopping it by its PID (SIGTERM, then SIGKILL to its process group)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import IO, Any

from kemi_core.testing.wait import wait_log


class Daemon:
    """A server process started by ``start()`` (in its own session, output to ``log_path``)."""

    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes]

    def start(self) -> Any:
        raise NotImplementedError

    def spawn(self, args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd,
                                     start_new_session=True)
        return self.proc

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_log(self, text: str, count: int = 1, timeout: float = 10.0) -> str:
        """The log once ``text`` appears in it ``count`` times (``wait.wait_log``)."""
        return wait_log(self.log, text, count, timeout)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log.close()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
