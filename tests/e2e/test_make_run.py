"""`make run ARGS=...`: the README's first command, with flags passed through to `kemi run`
(a free port instead of the example's 5060, as beside a running Kamailio)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kemi_core.rpc.client import call
from kemi_core.testing.netstat import udp_inodes
from kemi_core.testing.process import free_port
from kemi_core.testing.wait import wait_until

from .conftest import REPO

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")]


def _answers(ctl: str) -> bool:
    try:
        return str(call(ctl, "core.version", timeout=1)).startswith("kemi ")
    except (OSError, ValueError):
        return False


def test_make_run_passes_args_through(tmp_path: Path) -> None:
    port = free_port()
    ctl = f"unix:{tmp_path / 'kemi_ctl'}"
    venv = Path(sys.executable).parent.parent  # the environment running the tests
    log = tmp_path / "make-run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["make", "-s", "run", f"VENV={venv}",
                                 f"ARGS=-l udp:127.0.0.1:{port} -n 1"],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                env=dict(os.environ, KEMI_CTL=ctl), start_new_session=True)
    try:
        wait_until(lambda: _answers(ctl) or proc.poll() is not None, 60,
                   lambda: f"make run to answer on {ctl}:\n{log.read_text()[-2000:]}")
        assert proc.poll() is None, log.read_text()
        assert udp_inodes(port)  # -l replaced the example's listen=udp:127.0.0.1:5060
        assert len(call(ctl, "core.psx")) == 2  # -n 1: the main process and one worker
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # make and the kemi it started: our own session
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
