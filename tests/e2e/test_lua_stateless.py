"""The Lua engine end to end: SIPp against a Lua script answering statelessly, Max-Forwards,
textops/hdr edits on the wire, and live reload through the control socket."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kemi_core.rpc.client import RpcError
from kemi_core.sip import parse_datagram
from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.sipp import run_sipp
from kemi_core.testing.udp_client import UdpClient, request

from .conftest import needs_sipp

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=2
auto_aliases=no
listen=udp:127.0.0.1:{port}
loadmodule "sl.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "xlog.so"
loadmodule "app_lua.so"
modparam("app_lua", "load", "{script}")
cfgengine "lua"
"""

STATELESS = """
function ksr_request_route()
    if KSR.maxfwd.process_maxfwd(10) < 0 then
        KSR.sl.send_reply(483, "Too Many Hops")
        return
    end
    if KSR.is_ACK() then
        return
    end
    if KSR.is_MESSAGE() then
        KSR.textops.remove_hf("Subject")
        KSR.hdr.append("X-Kemi: edited\\r\\n")
        KSR.forward_uri("sip:127.0.0.1:" .. KSR.pv.get("$hdr(X-Uas-Port)"))
        return
    end
    KSR.xlog.xinfo("answering $rm from $si:$sp\\n")
    KSR.sl.send_reply(200, "OK Lua")
end
"""


def _script(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "route.lua"
    path.write_text(text)
    return path


@needs_sipp
def test_sipp_options_and_calls_answered_statelessly(
        start_kemi: Callable[..., KemiProcess], tmp_path: Path, port: int) -> None:
    script = _script(tmp_path, STATELESS)
    start_kemi(CFG.format(port=port, script=script))
    opts = run_sipp(f"127.0.0.1:{port}", tmp_path, scenario=Path(__file__).parent / "scenarios" / "options_uac.xml",
                    calls=200, rate=100, timeout=30, name="options")
    assert (opts.returncode, opts.successful, opts.failed) == (0, 200, 0), opts.stdout[-2000:]
    calls = run_sipp(f"127.0.0.1:{port}", tmp_path, scenario="uac", calls=100, rate=50,
                     timeout=30, name="calls", extra=["-d", "0"])
    assert (calls.returncode, calls.successful, calls.failed) == (0, 100, 0), calls.stdout[-2000:]


def test_max_forwards_zero_gets_483(start_kemi: Callable[..., KemiProcess], tmp_path: Path,
                                    port: int) -> None:
    start_kemi(CFG.format(port=port, script=_script(tmp_path, STATELESS)))
    with UdpClient() as ua:
        ua.send(request("OPTIONS", f"sip:k@127.0.0.1:{port}", ua.port, max_forwards=0), port)
        reply = ua.recv_final()
    assert reply is not None and reply.startswith(b"SIP/2.0 483 Too Many Hops\r\n")


def test_textops_and_hdr_edits_are_on_the_wire(start_kemi: Callable[..., KemiProcess],
                                               tmp_path: Path, port: int) -> None:
    start_kemi(CFG.format(port=port, script=_script(tmp_path, STATELESS)))
    with UdpClient() as uac, UdpClient() as uas:
        msg = request("MESSAGE", f"sip:bob@127.0.0.1:{port}", uac.port,
                      extra=f"Subject: secret\r\nX-Uas-Port: {uas.port}", body="hello")
        uac.send(msg, port)
        forwarded = uas.recv(5)
        assert forwarded is not None
        fwd = parse_datagram(forwarded)
        assert not fwd.has_header("Subject")
        assert fwd.header("X-Kemi") == "edited"
        # process_maxfwd decrements an existing header (70 -> 69); forward leaves it alone.
        assert fwd.max_forwards == 69
        assert fwd.vias[0].host == "127.0.0.1" and len(fwd.vias) == 2
        top = fwd.vias[0]  # a UAS answers to the top Via (RFC 3261 18.2.2): our worker's socket
        uas.send(_reply_to(forwarded), top.port or 5060)
        back = uac.recv_final()
    assert back is not None and back.startswith(b"SIP/2.0 202 Accepted\r\n")


def _reply_to(raw: bytes) -> bytes:
    from kemi_core.sip import build_reply

    return build_reply(parse_datagram(raw), 202, "Accepted", to_tag="uas1")


def test_reload_new_script_and_broken_script_refused(start_kemi: Callable[..., KemiProcess],
                                                    tmp_path: Path, port: int) -> None:
    script = _script(tmp_path, 'function ksr_request_route() KSR.sl.send_reply(200, "v1") end\n')
    srv = start_kemi(CFG.format(port=port, script=script))

    def ask() -> bytes:
        with UdpClient() as ua:
            ua.send(request("OPTIONS", f"sip:k@127.0.0.1:{port}", ua.port), port)
            reply = ua.recv_final()
        assert reply is not None
        return reply.split(b"\r\n", 1)[0]

    assert ask() == b"SIP/2.0 200 v1"
    script.write_text('function ksr_request_route() KSR.sl.send_reply(200, "v2") end\n')
    srv.rpc("app_lua.reload")
    assert {ask() for _ in range(6)} == {b"SIP/2.0 200 v2"}  # every worker switched
    script.write_text('function ksr_request_route() KSR.sl.send_reply(200, "v3" end\n')
    with pytest.raises(RpcError) as err:
        srv.rpc("app_lua.reload")
    assert "route.lua:1" in err.value.message
    assert {ask() for _ in range(6)} == {b"SIP/2.0 200 v2"}


def test_seed_lua_example_checks(tmp_path: Path) -> None:
    """The seed's Lua example config (script path adapted) passes `kemi check`."""
    import subprocess

    from kemi_core.testing.process import kemi_executable

    from .conftest import REPO

    out = subprocess.run([*kemi_executable(), "check", "-f", "examples/lua/kamailio.cfg"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert free_port() > 0
