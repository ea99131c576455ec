"""A third-party module and engine, pip-installed, in a server with two workers.

``tests/third_party/`` holds two distributions written from ``kemi_core.api`` alone: ``hello``
(an export that adds a header and counts its calls with ``core.counter``, an RPC reading the
count) and ``app_rules`` (a JSON rules engine implementing ``load()`` only). Copies are
installed with pip into a private directory (never into the environment) and put on the
server's PYTHONPATH. Checked: the export edits forwarded messages in both workers and the
counter read by the RPC is the number of calls of both; the engine answers; cfgengine.reload
switches every worker; a broken script is refused with file:line and the old one kept.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kemi_core.rpc.client import RpcError
from kemi_core.sip import SipMsg, parse_datagram
from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.udp_client import request

THIRD_PARTY = Path(__file__).resolve().parents[1] / "third_party"
TIMEOUT = 5.0

CFG = """#!KAMAILIO
children=2
listen=udp:127.0.0.1:{port}
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "hello.so"
loadmodule "app_rules.so"
modparam("hello", "greeting", "Hi")
modparam("app_rules", "script", "{script}")
cfgengine "rules"
"""


def rules(version: str, who: str, sink: int) -> str:
    return json.dumps({"request": [
        {"user": "fwd", "calls": [["hello", "greet", who], ["xlog", "xinfo", "FWD by $pp\n"],
                                  ["", "forward_uri", f"sip:127.0.0.1:{sink}"]]},
        {"calls": [["sl", "send_reply", 200, version]]},
    ]}, indent=1)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both distributions pip-installed (from copies: a build writes into its source tree)."""
    work = tmp_path_factory.mktemp("third-party")
    site = work / "site"
    copies = [shutil.copytree(THIRD_PARTY / name, work / name) for name in ("kemi_hello", "kemi_rules")]
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(site), *map(str, copies)],
                   check=True, timeout=300)
    assert list(site.glob("kemi_hello-*.dist-info")) and list(site.glob("kemi_rules-*.dist-info"))
    return site


@pytest.fixture
def sink() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(TIMEOUT)
    yield sock
    sock.close()


@pytest.fixture
def server(site: Path, sink: socket.socket, tmp_path: Path) -> Iterator[tuple[KemiProcess, Path, int]]:
    port = free_port()
    script = tmp_path / "rules.json"
    script.write_text(rules("v1", "world", sink.getsockname()[1]))
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CFG.format(port=port, script=script))
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    srv = KemiProcess(cfg, tmp_path, env={"PYTHONPATH": path}).start()
    try:
        yield srv, script, port
    finally:
        srv.stop()


def _exchange(port: int, user: str, sink: socket.socket | None = None) -> SipMsg:
    """Send one request from a fresh socket (so SO_REUSEPORT spreads them over the workers);
    the reply it gets, or (``sink``) the request as it was forwarded."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(TIMEOUT)
        sock.sendto(request("OPTIONS", f"sip:{user}@127.0.0.1:{port}", sock.getsockname()[1]),
                    ("127.0.0.1", port))
        data = (sink or sock).recvfrom(65535)[0]
    return parse_datagram(data)


def _forwarded(srv: KemiProcess, port: int, sink: socket.socket, n: int
               ) -> tuple[list[SipMsg], set[str]]:
    """``n`` forwarded requests and the pids of the workers that forwarded them (logged)."""
    before = srv.log().count("FWD by")
    msgs = [_exchange(port, "fwd", sink) for _ in range(n)]
    lines = re.findall(r"FWD by (\d+)", srv.wait_log("FWD by", count=before + n))
    return msgs, set(lines[before:])


def test_third_party_module_and_engine_in_two_workers(
        server: tuple[KemiProcess, Path, int], sink: socket.socket) -> None:
    srv, script, port = server
    # The module's export edits what is forwarded, in both workers; its counter sums them.
    msgs, workers = _forwarded(srv, port, sink, 40)
    assert all(m.header("X-Hello") == "Hi world" for m in msgs)
    assert len(workers) == 2, workers
    assert srv.rpc("hello.calls") == 40
    # The engine answers.
    assert {_exchange(port, "ping").reason for _ in range(10)} == {"v1"}

    # cfgengine.reload switches every worker at its next message.
    script.write_text(rules("v2", "moon", sink.getsockname()[1]))
    answer = srv.rpc("cfgengine.reload")
    assert (answer["engine"], answer["new"]) == ("rules", answer["old"] + 1)
    assert {_exchange(port, "ping").reason for _ in range(20)} == {"v2"}
    msgs, workers = _forwarded(srv, port, sink, 30)
    assert {m.header("X-Hello") for m in msgs} == {"Hi moon"} and len(workers) == 2
    assert srv.rpc("hello.calls") == 70

    # A broken script is refused with file:line and the old one keeps running everywhere.
    script.write_text('{\n "request": [\n  oops\n ]\n}\n')
    with pytest.raises(RpcError, match=rf"{script}:3: Expecting value"):
        srv.rpc("cfgengine.reload")
    assert {_exchange(port, "ping").reason for _ in range(20)} == {"v2"}
    msgs, workers = _forwarded(srv, port, sink, 20)
    assert {m.header("X-Hello") for m in msgs} == {"Hi moon"} and len(workers) == 2

