"""A JavaScript routing file in the kemi_router fixture (docs/testing-scripts.md): a script error
fails the test at its step with file:line and the JS stack, or is read from ``out.errors``.
(tests/router runs the failover suite on the JS file with the other engines.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kemi_core.testing import ScriptFailure

CFG = """#!KAMAILIO
debug=2
listen=udp:127.0.0.1:5060
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "app_jsdt.so"
modparam("app_jsdt", "load", "broken.js")
cfgengine "jsdt"
"""

SCRIPT = """// fails for anything but a keepalive
function ksr_request_route() {
  KSR.info("about to look\\n");
  if (KSR.is_OPTIONS()) { KSR.sl.sl_send_reply(200, "Keepalive"); return; }
  var route = null;
  KSR.info("going " + route.name + "\\n");
}
"""

KEEPALIVE = """\
OPTIONS sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKping1
From: <sip:mon@127.0.0.1>;tag=m1
To: <sip:127.0.0.1>
Call-ID: ping-1@127.0.0.1
CSeq: 1 OPTIONS
Max-Forwards: 70
"""

INVITE = KEEPALIVE.replace("OPTIONS", "INVITE").replace("sip:127.0.0.1 SIP", "sip:bob@127.0.0.1 SIP")


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    (tmp_path / "broken.js").write_text(SCRIPT)
    path = tmp_path / "kamailio.cfg"
    path.write_text(CFG)
    return path


def test_a_js_script_error_fails_the_step_with_file_line_and_stack(kemi_router: Any,
                                                                   cfg: Path) -> None:
    router = kemi_router(cfg)
    assert [r.status for r in router.request(KEEPALIVE).replies] == [200]
    with pytest.raises(ScriptFailure) as failure:
        router.request(INVITE)
    text = str(failure.value)
    script = cfg.parent / "broken.js"
    assert f"{script}:6: TypeError: cannot read property 'name' of null" in text
    assert f"at ksr_request_route ({script}:6:" in text


def test_js_errors_can_be_inspected_instead(kemi_router: Any, cfg: Path) -> None:
    router = kemi_router(cfg, fail_on_script_error=False)
    out = router.request(INVITE)
    assert [r.status for r in out.replies] == [500]
    assert "broken.js:6:" in out.errors[0]
    assert "about to look" in out.logs
