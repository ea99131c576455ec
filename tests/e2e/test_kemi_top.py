"""``kemi top`` in a pseudo-terminal while SIPp sends OPTIONS: it draws the rates; and
``kemi stats --json`` gives plot-ready samples."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kemi_core.testing.process import KemiProcess, kemi_executable
from kemi_core.testing.sipp import run_sipp, sipp_available

SCENARIOS = Path(__file__).parent / "scenarios"
ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]|\x1b[()][A-Z0-9]|\x1b[=>]")

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=2
listen=udp:127.0.0.1:{port}
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "app_lua.so"
modparam("app_lua", "load", "{script}")
cfgengine "lua"
"""

LUA = """
function ksr_request_route()
    KSR.sl.send_reply(200, "OK")
end
"""


def _server(start_kemi: Callable[..., KemiProcess], port: int, tmp_path: Path) -> KemiProcess:
    script = tmp_path / "route.lua"
    script.write_text(LUA)
    return start_kemi(CFG.format(port=port, script=script))


def _run_in_pty(args: list[str], timeout: float) -> str:
    """Run ``args`` with a pseudo-terminal as its stdout; everything it drew, ANSI removed."""
    master, slave = os.openpty()
    env = dict(os.environ, COLUMNS="120", LINES="50", TERM="xterm")
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        os.close(master)
    return ANSI.sub("", b"".join(chunks).decode(errors="replace"))


@pytest.mark.skipif(not sipp_available(), reason="SIPp (sip-tester) is not installed")
def test_top_shows_rates_while_sipp_runs(start_kemi: Callable[..., KemiProcess], port: int,
                                         tmp_path: Path) -> None:
    srv = _server(start_kemi, port, tmp_path)
    load = threading.Thread(target=run_sipp, args=(f"127.0.0.1:{port}", tmp_path), kwargs={
        "scenario": SCENARIOS / "options_uac.xml", "calls": 400, "rate": 50, "timeout": 60,
        "name": "options_load"})
    load.start()
    try:
        screen = _run_in_pty([*kemi_executable(), "top", "-s", srv.ctl, "-i", "0.5", "-n", "8"],
                             timeout=40)
    finally:
        load.join(timeout=60)
    assert "Traffic" in screen and "Transactions" in screen and "Processes" in screen
    rates = [float(m.replace(",", "")) for m in
             re.findall(r"OPTIONS\s+([\d,]+\.\d)\s+[\d,]+", screen)]
    assert rates and max(rates) > 10, screen[-3000:]  # ~50/s asked
    assert re.search(r"\b1\s+\d+\s+worker\s+[\d.]+", screen)  # per-worker CPU


def test_stats_json_samples(start_kemi: Callable[..., KemiProcess], port: int,
                            tmp_path: Path) -> None:
    srv = _server(start_kemi, port, tmp_path)
    out = subprocess.run([*kemi_executable(), "stats", "-s", srv.ctl, "--json", "-n", "3", "-i",
                          "0.2", "core:"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    samples = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(samples) == 3 and samples[0]["time"] < samples[2]["time"]
    assert all(k.startswith("core:") for k in samples[0]["statistics"])
    assert samples[0]["statistics"]["core:rcv_requests"] >= 0
    assert [p["role"] for p in samples[0]["processes"]] == ["main", "worker", "worker"]
    text = subprocess.run([*kemi_executable(), "stats", "-s", srv.ctl, "rcv_requests"],
                          capture_output=True, text=True, timeout=30)
    assert re.fullmatch(r"core:rcv_requests = \d+\n", text.stdout)
