"""A real WebRTC SIP library: JsSIP (from npm, run by Node.js) registers over wss:// and
receives a MESSAGE, through kemi and through Kamailio 5.6 with the same config.

tests/jssip/ holds the client and its package.json/package-lock.json; ``npm ci`` installs it
there once (.ci/run does it in CI). Without node or npm the test is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from kemi_websocket.testing import WebrtcServer

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent / "jssip"


def _jssip_missing() -> str | None:
    """Why JsSIP cannot run here, or None when it can (installed now if needed)."""
    if shutil.which("node") is None:
        return "Node.js (node) is not installed"
    if (HERE / "node_modules" / "jssip").is_dir() and (HERE / "node_modules" / "ws").is_dir():
        return None
    if shutil.which("npm") is None:
        return "npm is not installed (JsSIP comes from npm)"
    proc = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        return f"npm ci failed: {proc.stderr.strip()[-300:]}"
    return None


class JsSipClient:
    """``node client.js URL URI SECONDS`` in the background; its events as they come."""

    def __init__(self, url: str, uri: str, ca: str, seconds: int = 30) -> None:
        env = dict(os.environ, NODE_EXTRA_CA_CERTS=ca)
        self.proc = subprocess.Popen(["node", "client.js", url, uri, str(seconds)], cwd=HERE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=env)
        self.events: list[dict] = []
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            try:
                self.events.append(json.loads(line))
            except ValueError:
                pass

    def wait(self, event: str, timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events:
                if e.get("event") == event:
                    return e
            if self.proc.poll() is not None and not any(
                    e.get("event") == event for e in self.events):
                break
            time.sleep(0.05)
        raise AssertionError(f"JsSIP: no {event} event; output:\n{''.join(self.lines)[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def test_jssip_registers_over_wss_and_receives_a_message(server: WebrtcServer) -> None:
    missing = _jssip_missing()
    if missing:
        pytest.skip(missing)
    js = JsSipClient(f"wss://127.0.0.1:{server.ports.tls}", "sip:jsuser@127.0.0.1",
                     server.pki.ca)
    try:
        js.wait("registered")
        sender = server.ws("kim")
        with sender.client:
            assert sender.register().status == 200
            reply = sender.message("jsuser", "hello JsSIP")
        assert reply.status == 200
        got = js.wait("message")
        assert got["body"] == "hello JsSIP" and got["from"] == "sip:kim@127.0.0.1"
    finally:
        js.stop()
