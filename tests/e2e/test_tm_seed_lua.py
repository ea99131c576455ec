"""THE acceptance test: the seed's Lua example (examples/lua/kamailio.cfg, verbatim) proxies
SIPp calls statefully through tm, and its branch, onreply and failure callbacks run.

The example fixes udp:127.0.0.1:5060 (kemi) and sip:127.0.0.1:5080 (the callee): these tests
run one after the other in this module and skip when either port is taken.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.sipp import SippUas, run_sipp

from .conftest import REPO, needs_sipp, start_on_fixed_ports

pytestmark = [pytest.mark.e2e, pytest.mark.sipp, needs_sipp]

SCENARIOS = Path(__file__).parent / "scenarios"
SEED_CFG = REPO / "examples" / "lua" / "kamailio.cfg"


@pytest.fixture
def seed_server(start_kemi: Callable[..., KemiProcess]) -> KemiProcess:
    # Verbatim: the script path is relative to the repository, the server's cwd. Started means
    # both workers are in the SO_REUSEPORT group (the control socket opens only then).
    return start_on_fixed_ports(start_kemi, SEED_CFG.read_text(), (5060, 5080),
                                "the seed's Lua example")


@pytest.mark.soak
def test_seed_lua_example_relays_1000_calls(seed_server: KemiProcess, tmp_path: Path) -> None:
    with SippUas(tmp_path, 5080, "uas", name="uas"):
        result = run_sipp("127.0.0.1:5060", tmp_path, scenario="uac", calls=1000, rate=100,
                          local_port=free_port(), timeout=90, name="uac")
    log = seed_server.log()
    assert result.successful == 1000, (result.stdout[-3000:], log[-3000:])
    assert result.failed == 0
    assert "===== request - from kamailio lua script" in log
    assert "===== branch route - from kamailio lua script" in log
    assert "===== onreply route - from kamailio lua script" in log
    assert "Traceback" not in log
    stats = seed_server.rpc("tm.stats")
    assert stats["created"] >= 2000  # an INVITE and a BYE transaction per call
    assert stats["2xx"] >= 2000


def test_seed_lua_example_failure_route_runs(seed_server: KemiProcess, tmp_path: Path) -> None:
    with SippUas(tmp_path, 5080, SCENARIOS / "uas_busy.xml", name="uas_busy"):
        result = run_sipp("127.0.0.1:5060", tmp_path, scenario=SCENARIOS / "uac_expect_486.xml",
                          calls=20, rate=20, local_port=free_port(), timeout=30, name="uac486")
    log = seed_server.log()
    assert result.successful == 20, (result.stdout[-3000:], log[-3000:])
    assert "===== failure route - from kamailio lua script" in log
    assert "===== onreply route - from kamailio lua script" in log
