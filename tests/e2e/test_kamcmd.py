"""Debian's ``kamcmd`` against kemi's control socket (binrpc), over unix, tcp and udp, and the
same commands against Kamailio 5.6 on the same config: the answers have the same shape."""

from __future__ import annotations

import glob
import os
import re
import tempfile
from pathlib import Path

import pytest

from kemi_core.testing.kamailio import (
    KAMAILIO_MPATH,
    KamailioProcess,
    kamailio_available,
    kamcmd,
    kamcmd_available,
)
from kemi_core.testing.process import KemiProcess, free_port

pytestmark = pytest.mark.skipif(not kamcmd_available(), reason="kamcmd (Debian's kamailio) is not installed")

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=2
auto_aliases=no
listen=udp:127.0.0.1:{port}
mpath="{mpath}"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "kex.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "ctl.so"
loadmodule "app_lua.so"
modparam("ctl", "binrpc", "unix:{ctl}")
modparam("ctl", "binrpc", "tcp:127.0.0.1:{tcp_port}")
modparam("ctl", "binrpc", "udp:127.0.0.1:{udp_port}")
modparam("app_lua", "load", "{script}")
cfgengine "lua"
"""

LUA = """
function ksr_request_route()
    KSR.sl.send_reply(200, "OK")
end
"""

TM_FIELDS = ["current", "waiting", "total", "total_local", "rpl_received", "rpl_generated",
             "rpl_sent", "6xx", "5xx", "4xx", "3xx", "2xx", "created", "freed", "delayed_free"]
VERSION = re.compile(r"^\S+ \d+\.\d+\.\d+ \([\w-]+/\w+\)\s*$")


def _write_cfg(workdir: Path, name: str) -> tuple[Path, dict[str, str]]:
    script = workdir / f"{name}.lua"
    script.write_text(LUA)
    socks = {"unix": f"unix:{workdir / (name + '_ctl')}",
             "tcp": f"tcp:127.0.0.1:{free_port()}", "udp": f"udp:127.0.0.1:{free_port()}"}
    cfg = workdir / f"{name}.cfg"
    cfg.write_text(CFG.format(port=free_port(), mpath=KAMAILIO_MPATH, ctl=socks["unix"][5:],
                              tcp_port=socks["tcp"].rsplit(":", 1)[1],
                              udp_port=socks["udp"].rsplit(":", 1)[1], script=script))
    return cfg, socks


def struct_keys(text: str) -> list[str]:
    """The member names of the structs kamcmd printed (``\\tname: value`` lines)."""
    return re.findall(r"^\t(\w+): ", text, re.M)


def answers(ctl: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for cmd in (["core.version"], ["core.uptime"], ["tm.stats"], ["system.listMethods"],
                ["app_lua.reload"], ["stats.get_statistics", "all"], ["ul.dump"],
                ["nosuch.command"]):
        res = kamcmd(ctl, *cmd)
        assert res.returncode == 0, res.stderr
        out[" ".join(cmd)] = res.stdout
    return out


def check_shapes(out: dict[str, str]) -> None:
    """What a user of kamcmd relies on, whichever server answers."""
    assert VERSION.match(out["core.version"]), out["core.version"]
    assert struct_keys(out["core.uptime"]) == ["now", "up_since", "uptime"]
    tm = dict(re.findall(r"^\t(\w+): (\d+)$", out["tm.stats"], re.M))
    assert list(tm) == TM_FIELDS, out["tm.stats"]
    methods = out["system.listMethods"].splitlines()
    assert {"core.version", "tm.stats", "app_lua.reload", "stats.get_statistics"} <= set(methods)
    assert all(re.fullmatch(r"[\w.]+", m) for m in methods)
    assert not out["app_lua.reload"].startswith("error")
    lines = out["stats.get_statistics all"].splitlines()
    assert all(re.fullmatch(r"[\w.-]+:[\w.-]+ = -?\d+", line) for line in lines), lines[:5]
    assert out["ul.dump"].startswith("{\n\tDomains: {\n"), out["ul.dump"]
    assert out["nosuch.command"] == "error: 500 - command nosuch.command not found\n"


def test_kamcmd_against_kemi_over_unix_tcp_udp(tmp_path: Path) -> None:
    cfg, socks = _write_cfg(tmp_path, "kemi")
    with KemiProcess(cfg, tmp_path) as srv:  # its default socket: <workdir>/kemi_ctl
        out = answers(socks["unix"])
        check_shapes(out)
        assert out["core.version"].startswith("kemi ")
        for proto in ("tcp", "udp"):
            assert kamcmd(socks[proto], "core.version").stdout == out["core.version"]
        # kemi rpc (JSON-RPC) on the same unix and tcp sockets
        assert srv.rpc("core.version") == out["core.version"].rstrip("\n")
        from kemi_core.rpc.client import call
        assert call(socks["tcp"], "core.uptime")["uptime"] >= 0
        published = glob.glob(os.path.join(tempfile.gettempdir(),
                                           f"kemi-reload-lua-{srv.proc.pid}-*"))
        assert len(published) == 1, published  # app_lua.reload published the script there
    assert not os.path.exists(published[0])  # and the shutdown removed it


@pytest.mark.skipif(not kamailio_available("app_lua.so", "ctl.so"),
                    reason="Kamailio 5.6 with app_lua is not installed")
def test_same_shapes_against_kamailio(tmp_path: Path) -> None:
    cfg, socks = _write_cfg(tmp_path, "kamailio")
    with KamailioProcess(cfg, tmp_path, socks["unix"]):
        reference = answers(socks["unix"])
    check_shapes(reference)
    cfg, socks = _write_cfg(tmp_path, "kemi")
    with KemiProcess(cfg, tmp_path):
        ours = answers(socks["unix"])
    assert struct_keys(ours["core.uptime"]) == struct_keys(reference["core.uptime"])
