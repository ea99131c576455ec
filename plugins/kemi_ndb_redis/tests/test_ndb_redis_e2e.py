"""ndb_redis in a real kemi server (two workers) against a private Redis, with the Lua script
Kamailio 5.6 ran side by side to give the expected answers; then Redis restarted under the
server: commands fail while it is down (logged, -1, no dead worker) and work again after."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kemi_core.testing import (
    KamailioProcess,
    KemiProcess,
    RedisServer,
    UdpClient,
    free_port,
    kamailio_available,
    request,
    wait_until,
)

CFG = """#!KAMAILIO
listen=udp:127.0.0.1:{port}
children=2
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "ndb_redis.so"
loadmodule "app_lua.so"
modparam("ndb_redis", "server", "name=srvN;addr=127.0.0.1;port={redis};db=1")
modparam("ndb_redis", "init_without_redis", 1)
modparam("app_lua", "load", "{script}")
cfgengine "lua"
"""

SCRIPT = """
local function show(r)
  return "type=" .. tostring(KSR.pv.get("$redis(" .. r .. "=>type)")) ..
    " value=" .. tostring(KSR.pv.get("$redis(" .. r .. "=>value)")) ..
    " info=" .. tostring(KSR.pv.get("$redis(" .. r .. "=>info)")) ..
    " size=" .. tostring(KSR.pv.get("$redis(" .. r .. "=>size)"))
end
function ksr_request_route()
  local rc = KSR.ndb_redis.redis_cmd("srvN", KSR.hdr.get("X-Cmd"), "r")
  local s = "rc=" .. rc .. " " .. show("r")
  if KSR.hdr.get("X-Arr") then
    s = s .. " v0=" .. tostring(KSR.pv.get("$redis(r=>value[0])")) ..
      " t0=" .. tostring(KSR.pv.get("$redis(r=>type[0])")) ..
      " v1=" .. tostring(KSR.pv.get("$redis(r=>value[1])")) ..
      " t1=" .. tostring(KSR.pv.get("$redis(r=>type[1])"))
  end
  KSR.sl.sl_send_reply(200, s)
end
"""

#: What Kamailio 5.6's ndb_redis answered to the same script (run side by side).
KAMAILIO = [
    ("SET foo bar", "rc=0 type=5 value=nil info=OK size=nil"),
    ("GET foo", "rc=0 type=1 value=bar info=bar size=nil"),
    ("GET nokey", "rc=0 type=4 value=nil info=nil size=nil"),
    ("INCR cnt", "rc=0 type=3 value=1 info=nil size=nil"),
    ("INCR foo", "rc=-1 type=6 value=nil info=ERR value is not an integer or out of range "
                 "size=nil"),
    ("HSET h f1 v1", "rc=0 type=3 value=1 info=nil size=nil"),
    ("HMGET h f1 f2", "rc=0 type=2 value=nil info=nil size=2 v0=v1 t0=1 v1=nil t1=4"),
    ("PING", "rc=0 type=5 value=nil info=PONG size=nil"),
]


class Client:
    def __init__(self, port: int) -> None:
        self.port = port
        self.udp = UdpClient()

    def cmd(self, command: str) -> str:
        extra = f"X-Cmd: {command}\r\n" + ("X-Arr: 1\r\n" if command.startswith("HMGET") else "")
        self.udp.send(request("OPTIONS", f"sip:r@127.0.0.1:{self.port}", self.udp.port,
                              extra=extra), self.port)
        data = self.udp.recv_final(5)
        assert data is not None, "no answer"
        return data.split(b"\r\n", 1)[0].decode().split(" ", 2)[2]


@pytest.fixture
def server(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[KemiProcess, Client]]:
    port = free_port()
    (tmp_path / "r.lua").write_text(SCRIPT)
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CFG.format(port=port, redis=redis_server.port, script=tmp_path / "r.lua"))
    with KemiProcess(cfg, tmp_path) as proc:
        client = Client(port)
        yield proc, client
        client.udp.close()


def test_replies_as_kamailio(server: tuple[KemiProcess, Client]) -> None:
    _, client = server
    for command, expected in KAMAILIO:
        assert client.cmd(command) == expected, command


def test_redis_restart(server: tuple[KemiProcess, Client], redis_server: RedisServer) -> None:
    proc, client = server
    assert client.cmd("SET foo bar").startswith("rc=0")
    redis_server.stop()
    # every worker's command fails at once while Redis is down, and each worker goes on
    for _ in range(4):
        assert client.cmd("GET foo") == "rc=-1 type=nil value=nil info=nil size=nil"
    assert "ndb_redis: cannot talk to redis server [srvN]" in proc.log()
    redis_server.start()
    wait_until(lambda: client.cmd("SET foo again").startswith("rc=0"), 10, "Redis back")
    for _ in range(4):
        assert client.cmd("GET foo") == "rc=0 type=1 value=again info=again size=nil"
    assert "is reachable again" in proc.log()


KAMAILIO_CFG = CFG.replace("#!KAMAILIO\n", '#!KAMAILIO\nmpath="/usr/lib/x86_64-linux-gnu/kamailio/'
                           'modules/"\nloadmodule "ctl.so"\nloadmodule "kex.so"\n'
                           'modparam("ctl", "binrpc", "unix:{ctl}")\n', 1).replace(
    "db=1", "db=2")  # a database of its own: the same commands meet the same state


@pytest.mark.skipif(not kamailio_available("ndb_redis.so", "app_lua.so", "ctl.so"),
                    reason="Kamailio 5.6 with ndb_redis and app_lua is not installed")
def test_same_answers_as_kamailio(tmp_path: Path, redis_server: RedisServer,
                                  server: tuple[KemiProcess, Client]) -> None:
    _, ours = server
    port = free_port()
    kdir = tmp_path / "kamailio"
    kdir.mkdir()
    (kdir / "r.lua").write_text(SCRIPT)
    cfg = kdir / "kamailio.cfg"
    cfg.write_text(KAMAILIO_CFG.format(port=port, redis=redis_server.port,
                                       script=kdir / "r.lua", ctl=kdir / "ctl"))
    with KamailioProcess(cfg, kdir, f"unix:{kdir / 'ctl'}"):
        theirs = Client(port)
        for command, _ in KAMAILIO:
            assert ours.cmd(command) == theirs.cmd(command), command
        theirs.udp.close()
