"""THE acceptance test: the seed's Lua example (examples/lua/kamailio.cfg, verbatim) proxies
SIPp calls statefully through tm, and its branch, onreply and failure callbacks run.

The example relays to a callee on the fixed sip:127.0.0.1:5080: these tests run one after the
other and skip when that port stays taken; kemi itself is moved to a free port with -l.
"""

from __future__ import annotations

import os
import select
from collections.abc import Callable
from pathlib import Path

import pytest

from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.sipp import run_sipp

from .conftest import REPO, UAS, fixed_port_uas, needs_sipp

pytestmark = [pytest.mark.e2e, pytest.mark.sipp, needs_sipp]

SCENARIOS = Path(__file__).parent / "scenarios"
SEED_CFG = REPO / "examples" / "lua" / "kamailio.cfg"


@pytest.fixture
def seed(start_example: Callable[[Path], tuple[KemiProcess, int]]) -> tuple[KemiProcess, int]:
    return start_example(SEED_CFG)  # it relays to a callee on 5080


@pytest.mark.soak
def test_seed_lua_example_relays_1000_calls(seed: tuple[KemiProcess, int], tmp_path: Path) -> None:
    seed_server, port = seed
    with fixed_port_uas(tmp_path, 5080, UAS, name="uas"):
        result = run_sipp(f"127.0.0.1:{port}", tmp_path, scenario="uac", calls=1000, rate=100,
                          local_port=free_port(), timeout=90, name="uac")
        assert result.successful == 1000, (result.stdout[-3000:], seed_server.log()[-3000:])
        assert result.failed == 0
        # the callee stays up while the last BYEs' 200s come through (wait_tm_settled says why)
        stats = seed_server.wait_tm_settled(2000)
    log = seed_server.log()
    assert "===== request - from kamailio lua script" in log
    assert "===== branch route - from kamailio lua script" in log
    assert "===== onreply route - from kamailio lua script" in log
    assert "Traceback" not in log
    assert stats["created"] >= 2000  # an INVITE and a BYE transaction per call
    assert stats["2xx"] >= 2000


def test_seed_lua_example_failure_route_runs(seed: tuple[KemiProcess, int], tmp_path: Path) -> None:
    seed_server, port = seed
    with fixed_port_uas(tmp_path, 5080, SCENARIOS / "uas_busy.xml", name="uas_busy"):
        result = run_sipp(f"127.0.0.1:{port}", tmp_path, scenario=SCENARIOS / "uac_expect_486.xml",
                          calls=20, rate=20, local_port=free_port(), timeout=30, name="uac486")
    log = seed_server.log()
    assert result.successful == 20, (result.stdout[-3000:], log[-3000:])
    assert "===== failure route - from kamailio lua script" in log
    assert "===== onreply route - from kamailio lua script" in log


def test_seed_lua_example_keeps_its_files_in_its_own_runtime_directory(
        seed: tuple[KemiProcess, int], tmp_path: Path) -> None:
    """The example's FIFO ("kamailio_fifo", relative) goes beside the server's control socket
    (here the test's directory, through $KEMI_CTL), never into Kamailio's /run/kamailio; it
    answers there, and is gone once the server stops."""
    seed_server, _ = seed
    fifo = tmp_path / "kamailio_fifo"
    seed_server.wait_log(f"mi_fifo: listening on {fifo}")
    assert fifo.is_fifo()
    reply = Path("/tmp") / f"kemi_test_reply_{os.getpid()}"  # in mi_fifo's reply_dir (/tmp/)
    os.mkfifo(reply)
    rfd = os.open(reply, os.O_RDONLY | os.O_NONBLOCK)
    try:
        wfd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(wfd, f":core.version:{reply.name}\n\n".encode())
        os.close(wfd)
        ready, _, _ = select.select([rfd], [], [], 10)  # the answer, with a deadline
        assert ready and os.read(rfd, 4096).startswith(b"200 OK\nkemi ")
    finally:
        os.close(rfd)
        reply.unlink()
    assert seed_server.stop() == 0
    assert not fifo.exists()
