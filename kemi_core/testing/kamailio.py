"""Kamailio 5.6 beside kemi in tests: its binary as a real process, and ``kamcmd`` as a client.

Kamailio is the reference: a test runs the same check against both and compares. Processes are
started in their own session and stopped by PID.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from kemi_core.testing.daemon import Daemon

KAMAILIO_MPATH = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"


def kamcmd_available() -> bool:
    return shutil.which("kamcmd") is not None


def kamailio_available(*modules: str) -> bool:
    """Kamailio's binary and every named module file (e.g. "app_lua.so") are installed."""
    return shutil.which("kamailio") is not None and all(
        Path(KAMAILIO_MPATH, m).exists() for m in modules)


def kamcmd(ctl: str, *args: str, timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
    """Run Debian's ``kamcmd -s ctl args...`` (it prints faults on stdout and exits 0)."""
    return subprocess.run(["kamcmd", "-s", ctl, *args], capture_output=True, text=True,
                          timeout=timeout)


class KamailioProcess(Daemon):
    """``with KamailioProcess(cfg, workdir, ctl) as k:`` runs ``kamailio -DD -E -f cfg``; ready
    once ``kamcmd -s ctl core.version`` answers."""

    def __init__(self, cfg: Path, workdir: Path, ctl: str, shm_mb: int = 128,
                 ready_timeout: float = 20.0) -> None:
        self.cfg, self.workdir, self.ctl = cfg, workdir, ctl
        self.args = ["kamailio", "-f", str(cfg), "-DD", "-E", "-m", str(shm_mb), "-w",
                     str(workdir), "-Y", str(workdir), "-P", str(workdir / "kamailio.pid")]
        self.log_path = workdir / "kamailio.log"
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> KamailioProcess:
        self.spawn(self.args, self.workdir)
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kamailio exited with {self.proc.returncode}:\n{self.log()}")
            if kamcmd(self.ctl, "core.version", timeout=5).stdout.startswith("kamailio"):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"kamailio did not become ready:\n{self.log()}")

    def __enter__(self) -> KamailioProcess:
        return self.start()
