"""Acceptance: the seed's Python example (examples/python/kamailio.cfg + kamailio.py) proxies SIPp
calls statefully through tm, and its callbacks run.

The example relays to a callee on the fixed sip:alice@127.0.0.1:5080: the tests here run one
after the other and skip when that port stays taken; kemi itself is moved to a free port with -l.
The script answers "100 Trying" statelessly to every request (the BYE too) before relaying it, so
the UAC is SIPp's call flow with an optional 100 to the BYE (scenarios/py_uac_trying_on_bye.xml).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.sipp import run_sipp

from .conftest import REPO, UAS, fixed_port_uas, needs_sipp

pytestmark = [pytest.mark.e2e, pytest.mark.sipp, needs_sipp]

SCENARIOS = Path(__file__).parent / "scenarios"
SEED_CFG = REPO / "examples" / "python" / "kamailio.cfg"
TAG = "from kamailio python script"


@pytest.fixture
def seed(start_example: Callable[[Path], tuple[KemiProcess, int]]) -> tuple[KemiProcess, int]:
    return start_example(SEED_CFG)  # it relays to a callee on 5080


@pytest.mark.soak
def test_seed_python_example_relays_1000_calls(seed: tuple[KemiProcess, int], tmp_path: Path) -> None:
    seed_server, port = seed
    with fixed_port_uas(tmp_path, 5080, UAS, name="uas"):
        result = run_sipp(f"127.0.0.1:{port}", tmp_path, scenario=SCENARIOS / "py_uac_trying_on_bye.xml",
                          calls=1000, rate=100, local_port=free_port(), timeout=90, name="uac")
        assert (result.successful, result.failed) == (1000, 0), \
            (result.stdout[-3000:], seed_server.log()[-3000:])
        stats = seed_server.wait_tm_settled(2000)  # the callee up for the last BYEs
    log = seed_server.log()
    for route in ("request", "response", "branch route", "onreply route"):
        assert f"===== {route} - {TAG}" in log, route
    assert "===== from Python mod init" in log and "===== kamailio.child_init(2)" in log
    assert "===== failure route" not in log
    assert "Traceback" not in log
    assert stats["created"] >= 2000  # an INVITE and a BYE transaction per call
    assert stats["2xx"] >= 2000  # the UAS's 200s came back through kemi


def test_seed_python_example_failure_route_runs(seed: tuple[KemiProcess, int], tmp_path: Path) -> None:
    seed_server, port = seed
    with fixed_port_uas(tmp_path, 5080, SCENARIOS / "uas_busy.xml", name="uas_busy"):
        result = run_sipp(f"127.0.0.1:{port}", tmp_path, scenario=SCENARIOS / "uac_expect_486.xml",
                          calls=20, rate=20, local_port=free_port(), timeout=30, name="uac486")
    log = seed_server.log()
    assert (result.successful, result.failed) == (20, 0), (result.stdout[-3000:], log[-3000:])
    assert log.count(f"<kemi.script> ===== failure route - {TAG}") == 20  # once per call
    assert f"===== onreply route - {TAG}" in log
    assert f"===== branch route - {TAG}" in log
    assert "Traceback" not in log
