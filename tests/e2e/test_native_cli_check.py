"""`kemi check --syntax-only` on Debian's default /etc/kamailio/kamailio.cfg (from the kamailio
package): the native routes parse, the exit code is 0, and the functions of modules kemi does not
have (sanity, siputils, registrar, usrloc ...) are listed with file:line instead of failing."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from kemi_core.testing.process import kemi_executable

from .conftest import REPO

DEBIAN_CFG = Path("/etc/kamailio/kamailio.cfg")

pytestmark = pytest.mark.skipif(not DEBIAN_CFG.is_file(),
                                reason=f"{DEBIAN_CFG} is absent (Debian's kamailio package)")


def test_syntax_only_check_of_debian_default_config() -> None:
    out = subprocess.run([*kemi_executable(), "check", "--syntax-only", "-f", str(DEBIAN_CFG)],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    summary = re.search(r"syntax ok \((\d+) route blocks, (\d+) unknown functions\)", out.stdout)
    assert summary is not None, out.stdout
    unknown = re.findall(rf"^{re.escape(str(DEBIAN_CFG))}:(\d+): function (\w+) is not provided "
                         r"by any installed module$", out.stdout, re.MULTILINE)
    assert len(unknown) == int(summary.group(2))
    names = {name for _, name in unknown}
    # every function Debian's default config calls is provided (sanity, siputils, registrar)
    assert not names, names
    lines = DEBIAN_CFG.read_text().splitlines()
    for line, name in unknown:  # each listed line really calls that function
        assert re.search(rf"\b{name}\s*\(", lines[int(line) - 1]), (line, name)
    missing = set(re.findall(r": module (\w+) is not installed$", out.stdout, re.MULTILINE))
    # every module Debian's default config loads is installed
    assert not missing, missing
    # what kemi has is not listed: tm, sl, rr, maxfwd, textops, pv, xlog functions resolve
    assert not names & {"t_relay", "sl_send_reply", "loose_route", "record_route",
                        "mf_process_maxfwd_header", "is_method", "xlog"}
