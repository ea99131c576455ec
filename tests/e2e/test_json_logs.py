"""``log_engine_type="json"``: every line ``kemi run`` writes parses as JSON, and what the script
logs while handling a request carries that request's Call-ID, method and CSeq."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from kemi_core.testing.process import KemiProcess
from kemi_core.testing.udp_client import UdpClient, request

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
log_engine_type="json"
log_engine_data="cM"
fork=yes
children=2
listen=udp:127.0.0.1:{port}
loadmodule "sl.so"
loadmodule "app_lua.so"
modparam("app_lua", "load", "{script}")
cfgengine "lua"
"""

LUA = """
function ksr_request_route()
    KSR.info("handling " .. KSR.pv.get("$rm") .. "\\n")
    if KSR.pv.get("$rU") == "broken" then
        local x = nil
        x.field = 1
    end
    KSR.sl.send_reply(200, "OK")
end
"""


def test_json_log_lines(start_kemi: Callable[..., KemiProcess], port: int, tmp_path: Path) -> None:
    script = tmp_path / "route.lua"
    script.write_text(LUA)
    srv = start_kemi(CFG.format(port=port, script=script))
    with UdpClient() as ua:
        for user, cseq in (("alice", 11), ("broken", 12)):
            ua.send(request("OPTIONS", f"sip:{user}@127.0.0.1:{port}", ua.port, cseq=cseq,
                            call_id=f"json-{user}@test"), port)
            assert ua.recv_final() is not None
    srv.wait_log("attempt to index")
    srv.stop()
    lines = [line for line in srv.log().splitlines() if line.strip()]
    objs = [json.loads(line) for line in lines]  # every line, start-up to shutdown
    assert all({"time", "level", "pid", "module", "message"} <= o.keys() for o in objs)
    handling = next(o for o in objs if o["message"] == "handling OPTIONS")
    assert (handling["callid"], handling["method"], handling["cseq"]) == ("json-alice@test", "OPTIONS", 11)
    assert handling["level"] == "INFO" and handling["module"] == "script" and handling["idx"] >= 1
    failed = next(o for o in objs if o["level"] == "ERROR" and o.get("callid") == "json-broken@test")
    assert "attempt to index" in json.dumps(failed)
    assert any(o["module"] == "server" and o.get("idx") == 0 for o in objs)  # the main process
