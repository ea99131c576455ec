"""Parameter values acc refuses at start-up, with the file:line of their modparam: cdr_enable 1
(CDRs need Kamailio's dialog module, which kemi does not have) and a multi_leg_info item that is
not an AVP (Kamailio 5.6 refuses it too: "only AVP are accepted as leg info")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

KEMI = [sys.executable, "-m", "kemi_core.cli"]

CFG = """#!KAMAILIO
listen=udp:127.0.0.1:5999
loadmodule "tm"
loadmodule "acc"
modparam("acc", "log_flag", 1)
PARAM
request_route { exit; }
"""


@pytest.mark.parametrize(("param", "reason"), [
    ('modparam("acc", "cdr_enable", 1)',
     "modparam acc.cdr_enable: CDRs need Kamailio's dialog module"),
    ('modparam("acc", "multi_leg_info", "a=$avp(x);b=$var(y)")',
     "modparam acc.multi_leg_info: b=$var(y): only AVPs are accepted as leg info"),
])
def test_refused_at_its_line(tmp_path: Path, param: str, reason: str) -> None:
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CFG.replace("PARAM", param))
    out = subprocess.run([*KEMI, "check", "-f", str(cfg)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0
    assert f"{cfg}:6: {reason}" in out.stderr + out.stdout


def test_cdr_enable_0_is_accepted(tmp_path: Path) -> None:
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CFG.replace("PARAM", 'modparam("acc", "cdr_enable", 0)'))
    out = subprocess.run([*KEMI, "check", "-f", str(cfg)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
