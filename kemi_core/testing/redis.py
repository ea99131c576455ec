"""A private Redis for tests: ``redis-server`` on its own port on 127.0.0.1, data in a temp dir
(no persistence), stopped by PID at the end; it can be stopped and started again on the same
port (a restart under load). ``redis_server`` is the pytest fixture; it skips, with the reason,
where redis-server is not installed (``.ci/run`` installs Debian's package)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kemi_core.testing.process import free_port


def redis_unavailable_reason() -> str | None:
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (apt-get install redis-server)"
    return None


class RedisServer:
    """``with RedisServer() as r: r.port``; ``r.stop()`` / ``r.start()`` restart it."""

    def __init__(self, port: int | None = None, ready_timeout: float = 15.0) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port(socket.SOCK_STREAM)
        self.ready_timeout = ready_timeout
        self.workdir = Path(tempfile.mkdtemp(prefix="kemi-redis-"))
        self.log_path = self.workdir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def start(self) -> RedisServer:
        args = ["redis-server", "--port", str(self.port), "--bind", self.host,
                "--dir", str(self.workdir), "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--protected-mode", "no"]
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=self.workdir, start_new_session=True)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}:\n"
                                   f"{self.log()}")
            if self.ping():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server not ready in {self.ready_timeout}s:\n{self.log()}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def ping(self) -> bool:
        """Whether the server answers PING (a raw RESP exchange: no client library needed)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """Send one command (RESP), return the raw reply: for test setup and checks."""
        body = f"*{len(args)}\r\n".encode() + b"".join(
            f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in args)
        with socket.create_connection((self.host, self.port), timeout=2) as s:
            s.sendall(body)
            return s.recv(65536)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def private_redis() -> Iterator[RedisServer]:
    """The body of the ``redis_server`` fixture (kemi's pytest plugin provides it to every
    test)."""
    reason = redis_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private Redis for one test (skipped where redis-server is not installed)."""
    yield from private_redis()
