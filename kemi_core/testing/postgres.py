"""A private PostgreSQL for the test suite: ``initdb`` into a temp dir (in memory, /dev/shm,
where there is room), its own port on 127.0.0.1, its unix socket in that dir, stopped by PID at
the end.

PostgreSQL refuses to run as root; when the suite runs as root (CI does), the server runs as the
unprivileged ``postgres`` system user (created by Debian's package), in a temp dir it owns. The
server is tuned for tests (no fsync), never for data. ``postgres_server`` is the session-scoped
pytest fixture; it skips, with the reason, where PostgreSQL is not installed.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kemi_core.testing.process import free_port

#: Where Debian puts the server binaries; $KEMI_PG_BIN overrides.
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
USER = "kemi"
PASSWORD = "kemi-test-pw"
#: Free room /dev/shm must have to hold the servers' data (a worker's grows to ~1 GB).
MEMORY_DIR_MIN_FREE = 4 << 30
#: Settings for a throw-away server: fast start, no durability, quiet logs.
TEST_SETTINGS = {
    "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
    "shared_buffers": "32MB", "max_connections": "200", "log_min_messages": "warning",
    "listen_addresses": "127.0.0.1",
}


def find_pg_bin() -> Path | None:
    """The newest PostgreSQL server binaries dir found (with initdb and postgres)."""
    candidates = [os.environ.get("KEMI_PG_BIN", "")]
    candidates += sorted(glob.glob(PG_BIN_GLOB), key=lambda p: int(p.split("/")[-2]) if
                         p.split("/")[-2].isdigit() else 0, reverse=True)
    for cand in candidates:
        if cand and all(os.access(os.path.join(cand, b), os.X_OK) for b in ("initdb", "postgres")):
            return Path(cand)
    return None


def memory_dir() -> str | None:
    """/dev/shm when it is a writable dir with room for a busy test server, else None (the
    usual temp dir). On a disk that other work keeps busy, each createdb took ~1 s and removing
    a server of 21 databases (~300 MB) at the session's end ~10 s; in memory, 0.2 s and <1 s."""
    shm = "/dev/shm"
    try:
        room = shutil.disk_usage(shm).free
    except OSError:
        return None
    return shm if room >= MEMORY_DIR_MIN_FREE and os.access(shm, os.W_OK | os.X_OK) else None


def unavailable_reason() -> str | None:
    """Why a private PostgreSQL cannot run here, or None when it can."""
    if find_pg_bin() is None:
        return f"PostgreSQL server binaries not found ({PG_BIN_GLOB}; apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run PostgreSQL as"
    return None


class PostgresServer:
    """``with PostgresServer() as pg: url = pg.new_database()``."""

    def __init__(self, port: int | None = None, ready_timeout: float = 30.0,
                 settings: dict[str, str] | None = None) -> None:
        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise RuntimeError(unavailable_reason() or "no PostgreSQL")
        self.bin = bin_dir
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.ready_timeout = ready_timeout
        #: postgres -c settings over TEST_SETTINGS (a benchmark turns durability back on).
        self.settings = dict(TEST_SETTINGS, **(settings or {}))
        # in memory only without durability: a benchmark that turns fsync on measures a disk
        in_memory = self.settings.get("fsync") == "off"
        self.workdir = Path(tempfile.mkdtemp(prefix="kemi-pg-",
                                             dir=memory_dir() if in_memory else None))
        self.data = self.workdir / "data"
        self.log_path = self.workdir / "postgres.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._run_as: dict[str, Any] = {}
        self._databases = 0
        if os.geteuid() == 0:  # initdb refuses root: hand the dir to the postgres user
            pw = pwd.getpwnam("postgres")
            os.chown(self.workdir, pw.pw_uid, pw.pw_gid)
            self._run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    # ---- life cycle ------------------------------------------------------------------------
    def __enter__(self) -> PostgresServer:
        self.initdb()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def initdb(self) -> None:
        pwfile = self.workdir / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self._run_as:
            os.chown(pwfile, self._run_as["user"], self._run_as["group"])
        self._tool("initdb", "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}",
                   "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync",
                   "-E", "UTF8", "--locale=C.UTF-8")
        pwfile.unlink()

    def start(self) -> None:
        """Start the server (again, on the same port and data) and wait until it is ready."""
        settings = dict(self.settings, port=str(self.port),
                        unix_socket_directories=str(self.workdir))
        args = [str(self.bin / "postgres"), "-D", str(self.data)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=self.workdir, **self._run_as)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}:\n{self.log()}")
            if self._status() == "ready":
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"postgres not ready in {self.ready_timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 20.0) -> None:
        """Fast shutdown (SIGINT to the postmaster's PID: sessions are ended), then wait."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _status(self) -> str:
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except OSError:
            return ""
        return lines[7].strip() if len(lines) > 7 else ""

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    # ---- databases -------------------------------------------------------------------------
    def url(self, database: str = "postgres") -> str:
        return f"postgres://{USER}:{PASSWORD}@{self.host}:{self.port}/{database}"

    def new_database(self, name: str | None = None) -> str:
        """Create an empty database; returns its db_url (TCP on 127.0.0.1, with password)."""
        if name is None:
            self._databases += 1
            name = f"kemi_test_{self._databases}"
        self._tool("createdb", "-h", str(self.workdir), "-p", str(self.port), "-U", USER, name)
        return self.url(name)

    def psql(self, database: str, sql: str) -> str:
        """Run SQL (a script, e.g. Kamailio's schema files) with psql over the unix socket."""
        return self._tool("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(self.workdir),
                          "-p", str(self.port), "-U", USER, "-d", database, "-At", input=sql)

    def _tool(self, name: str, *args: str, input: str | None = None) -> str:
        done = subprocess.run([str(self.bin / name), *args], input=input, capture_output=True,
                              text=True, cwd=self.workdir, timeout=120, **self._run_as)
        if done.returncode != 0:
            raise RuntimeError(f"{name} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout


class _SessionServer:
    """The test process's one session server and how many fixture definitions hold it.

    kemi's pytest plugin defines the fixture once for every test; a conftest (or test module)
    that imports ``postgres_server`` as well gets a definition of its own from pytest, which
    would start, then at the session's end stop and remove, a server of its own (six of them
    per xdist worker once made the last teardown take ~50 s). They share this one instead; the
    last holder stops it."""

    server: PostgresServer | None = None
    holders = 0


def session_postgres() -> Iterator[PostgresServer]:
    """The body of the ``postgres_server`` session fixture (kemi's pytest plugin provides it to
    every test; importing it into a conftest as well still shares the one server)."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    server = _SessionServer.server
    if server is None:
        server = _SessionServer.server = PostgresServer().__enter__()
    _SessionServer.holders += 1
    try:
        yield server
    finally:
        _SessionServer.holders -= 1
        if _SessionServer.holders == 0:
            _SessionServer.server = None
            server.__exit__(None, None, None)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One private PostgreSQL for the whole test session (skipped where it cannot run)."""
    yield from session_postgres()
