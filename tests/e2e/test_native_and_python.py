"""The native and Python engines end to end: stateless answers and live reload in every worker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kemi_core.rpc.client import RpcError
from kemi_core.testing.process import KemiProcess
from kemi_core.testing.udp_client import UdpClient, request

NATIVE = """#!KAMAILIO
debug=2
children=2
listen=udp:127.0.0.1:{port}
loadmodule "sl.so"
loadmodule "maxfwd.so"
request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    route(ANSWER);
}}
route[ANSWER] {{
    if (method == "OPTIONS" && $rU == "ping") {{
        sl_send_reply("200", "{reason}");
        exit;
    }}
    sl_send_reply("404", "Not Here");
}}
"""

PYCFG = """#!KAMAILIO
debug=2
children=2
listen=udp:127.0.0.1:{port}
loadmodule "sl.so"
loadmodule "app_python3.so"
modparam("app_python3", "load", "{script}")
cfgengine "python"
"""

PYSCRIPT = """
import KSR


class Handler:
    def ksr_request_route(self, msg):
        if KSR.is_OPTIONS():
            KSR.sl.send_reply(200, "{reason}")
            return 1
        KSR.sl.send_reply(404, "Not Here")
        return 1


def mod_init():
    return Handler()
"""


def _first_lines(port: int, n: int = 6, user: str = "ping") -> set[bytes]:
    lines = set()
    with UdpClient() as ua:
        for _ in range(n):
            ua.send(request("OPTIONS", f"sip:{user}@127.0.0.1:{port}", ua.port), port)
            reply = ua.recv_final()
            assert reply is not None
            lines.add(reply.split(b"\r\n", 1)[0])
    return lines


def test_native_routes_answer_and_reload(start_kemi: Callable[..., KemiProcess], tmp_path: Path,
                                         port: int) -> None:
    srv = start_kemi(NATIVE.format(port=port, reason="native v1"))
    assert _first_lines(port) == {b"SIP/2.0 200 native v1"}
    assert _first_lines(port, 2, user="other") == {b"SIP/2.0 404 Not Here"}
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(NATIVE.format(port=port, reason="native v2"))
    srv.rpc("cfg.reload")
    assert _first_lines(port) == {b"SIP/2.0 200 native v2"}
    cfg.write_text(NATIVE.format(port=port, reason="v3").replace("route(ANSWER);", "route(NOPE);"))
    with pytest.raises(RpcError) as err:
        srv.rpc("cfg.reload")
    assert "kamailio.cfg:" in err.value.message and "NOPE" in err.value.message
    assert _first_lines(port) == {b"SIP/2.0 200 native v2"}


def test_python_engine_answers_and_reloads(start_kemi: Callable[..., KemiProcess], tmp_path: Path,
                                           port: int) -> None:
    script = tmp_path / "route.py"
    script.write_text(PYSCRIPT.format(reason="py v1"))
    srv = start_kemi(PYCFG.format(port=port, script=script))
    assert _first_lines(port) == {b"SIP/2.0 200 py v1"}
    script.write_text(PYSCRIPT.format(reason="py v2"))
    srv.rpc("app_python.reload")
    assert _first_lines(port) == {b"SIP/2.0 200 py v2"}
    script.write_text("def mod_init(:\n")
    with pytest.raises(RpcError) as err:
        srv.rpc("app_python.reload")
    assert "route.py:1" in err.value.message
    assert _first_lines(port) == {b"SIP/2.0 200 py v2"}
