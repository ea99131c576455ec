"""Every installed module loads and runs inside kemi_router, with no socket opened: a config
loading them all (engines aside: each has its own tests) routes a call statefully and lets
time pass. A module that needs something to start gets it from NEEDS, with the reason."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from kemi_core.plugins import installed_modules

from .conftest import invite

#: modparam lines a module needs in a test (why, in the comment).
NEEDS: dict[str, list[str]] = {
    # the FIFO path must be writable; the router never creates the FIFO itself
    "mi_fifo": ['modparam("mi_fifo", "fifo_name", "{tmp}/kemi_fifo")'],
    # the same for jsonrpcs's FIFO and datagram socket (made only when a server starts)
    "jsonrpcs": ['modparam("jsonrpcs", "fifo_name", "{tmp}/rpc.fifo")',
                 'modparam("jsonrpcs", "dgram_socket", "{tmp}/rpc.sock")'],
    # auth_db's default db_url is Kamailio's MySQL one (no db_mysql here); nothing connects
    "auth_db": ['modparam("auth_db", "db_url", "sqlite://{tmp}/auth.db")'],
    # a destination list (an empty one: Kamailio refuses to start without one)
    "dispatcher": ['modparam("dispatcher", "list_file", "/dev/null")'],
    # a Redis server, not connected to at start (no socket in the router)
    "ndb_redis": ['modparam("ndb_redis", "server", "name=t;addr=127.0.0.1;port=6379")',
                  'modparam("ndb_redis", "init_without_redis", 1)'],
}

ROUTES = """
request_route {
	$du = "sip:127.0.0.1:5080";
	t_on_failure("BUSY");
	t_relay();
}
failure_route[BUSY] {
	xlog("L_INFO", "failure route: $T_reply_code\\n");
}
"""


class _NoSocket(socket.socket):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("kemi_router opened a socket")


def test_every_installed_module_runs_in_process(kemi_router: Any, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    modules = [m for m in sorted(installed_modules()) if not m.startswith("app_")]
    assert {"tm", "sl", "pv", "xlog"} <= set(modules)
    lines = ["#!KAMAILIO", "listen=udp:127.0.0.1:5060"]
    lines += [f'loadmodule "{m}.so"' for m in modules]
    lines += [p.format(tmp=tmp_path) for m in modules for p in NEEDS.get(m, [])]
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text("\n".join(lines) + ROUTES)
    monkeypatch.setattr(socket, "socket", _NoSocket)

    router = kemi_router(cfg)
    out = router.request(invite())
    assert [f.dest for f in out.forwarded] == ["udp:127.0.0.1:5080"]
    later = router.advance(60)  # every module's timers fire; the branch times out (fr_timer 30 s)
    assert [r.status for r in later.replies] == [408]
    assert "failure route: 408" in later.logs
    assert not (tmp_path / "kemi_fifo").exists() and not (tmp_path / "rpc.fifo").exists()
