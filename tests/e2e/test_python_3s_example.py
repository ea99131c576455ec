"""examples/python3s (Kamailio's app_python3s function-style script) proxies SIPp calls through
tm, and its branch, onreply and failure functions run. The example listens on 5060 and relays to
5080; the test runs a copy on free ports (only the two addresses and the script path change)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.sipp import SippUas, run_sipp

from .conftest import REPO, UAS, needs_sipp

pytestmark = [pytest.mark.e2e, pytest.mark.sipp, needs_sipp]

SCENARIOS = Path(__file__).parent / "scenarios"
EXAMPLE = REPO / "examples" / "python3s"
TAG = "from kamailio python3s script"


def example_on_free_ports(tmp_path: Path) -> tuple[str, int, int]:
    """The example's cfg text and a copy of its script, moved to free ports. Both go to
    tmp_path: the script path in the cfg ("kamailio.py") is relative to the config's directory,
    so the copy is the one loaded (the server's working directory is the repository)."""
    port, uas_port = free_port(), free_port()
    script = tmp_path / "kamailio.py"
    text = (EXAMPLE / "kamailio.py").read_text()
    assert text.count("127.0.0.1:5080") == 1
    script.write_text(text.replace("127.0.0.1:5080", f"127.0.0.1:{uas_port}"))
    cfg = (EXAMPLE / "kamailio.cfg").read_text()
    assert "listen=udp:127.0.0.1:5060\n" in cfg
    assert 'modparam("app_python3s", "load", "kamailio.py")' in cfg
    cfg = cfg.replace("listen=udp:127.0.0.1:5060", f"listen=udp:127.0.0.1:{port}")
    return cfg, port, uas_port


def script_lines(log: str, route: str) -> int:
    return len(re.findall(rf"<kemi\.script> (?:<script>: )?===== {route} - .*{TAG}", log))


@pytest.fixture
def example(start_kemi: Callable[..., KemiProcess], tmp_path: Path) -> tuple[KemiProcess, int, int]:
    cfg, port, uas_port = example_on_free_ports(tmp_path)
    return start_kemi(cfg), port, uas_port


def test_python3s_example_relays_200_calls(example: tuple[KemiProcess, int, int],
                                           tmp_path: Path) -> None:
    srv, port, uas_port = example
    with SippUas(tmp_path, uas_port, UAS, name="uas"):
        result = run_sipp(f"127.0.0.1:{port}", tmp_path, scenario="uac", calls=200, rate=50,
                          timeout=60, name="uac")
        assert (result.returncode, result.successful, result.failed) == (0, 200, 0), \
            (result.stdout[-3000:], srv.log()[-3000:])
        stats = srv.wait_tm_settled(400)  # the callee up for the last BYEs
    log = srv.log()
    assert "===== python3s script init" in log
    assert "===== python3s child init (1)" in log and "===== python3s child init (2)" in log
    assert script_lines(log, "request") >= 600  # INVITE, ACK and BYE of every call
    assert script_lines(log, "branch route") >= 400  # INVITE and BYE branches
    assert script_lines(log, "onreply route") >= 400
    assert "===== onreply route - 200 OK" in log and "===== onreply route - 180 Ringing" in log
    assert script_lines(log, "failure route") == 0
    assert "Traceback" not in log
    assert stats["2xx"] >= 400


def test_python3s_example_failure_function_runs(example: tuple[KemiProcess, int, int],
                                                tmp_path: Path) -> None:
    srv, port, uas_port = example
    with SippUas(tmp_path, uas_port, SCENARIOS / "uas_busy.xml", name="uas_busy"):
        result = run_sipp(f"127.0.0.1:{port}", tmp_path, scenario=SCENARIOS / "uac_expect_486.xml",
                          calls=20, rate=20, timeout=30, name="uac486")
    log = srv.log()
    assert (result.successful, result.failed) == (20, 0), (result.stdout[-3000:], log[-3000:])
    assert script_lines(log, "failure route") == 20
    assert "===== failure route - 486 from kamailio python3s script" in log
    assert "===== onreply route - 486 Busy Here" in log
    assert "Traceback" not in log
