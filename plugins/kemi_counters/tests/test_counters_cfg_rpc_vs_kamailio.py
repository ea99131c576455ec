"""counters and cfg_rpc on kemi and on Kamailio 5.6: script counters changed by SIP requests
(in any worker), cfg variables read and changed over JSON-RPC; the answers are the same."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from kemi_core.testing import kamailio_available, request_text, side_by_side

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("counters.so", "cfg_rpc.so", "jsonrpcs.so"),
    reason="Kamailio 5.6 is not installed")]

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
children=2
auto_aliases=no
listen=udp:127.0.0.1:{port}
mpath="{mpath}"
pstn.gw_ip = "10.0.0.1" desc "PSTN GW Address"
pstn.gw_port = 5060 desc "PSTN GW Port"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "counters.so"
loadmodule "cfg_rpc.so"
loadmodule "jsonrpcs.so"
loadmodule "ctl.so"
modparam("ctl", "binrpc", "unix:{ctl}")
modparam("jsonrpcs", "dgram_socket", "{dir}/rpc.sock")
modparam("jsonrpcs", "transport", 4)
modparam("counters", "script_counter", "reqs")
modparam("counters", "script_counter", "test.bar counted bars")
request_route {
  cnt_inc("reqs");
  if ($hdr(X-T) == "bar") { cnt_add("test.bar", 5); }
  if ($hdr(X-T) == "reset") { cnt_reset("reqs"); }
  sl_send_reply("200", "OK");
}
"""


def rpc(sock: Path, method: str, *params: Any) -> Any:
    client = sock.parent / f"c{os.getpid()}.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(client))
        try:
            s.settimeout(3)
            s.sendto(json.dumps({"jsonrpc": "2.0", "method": method, "params": list(params),
                                 "id": 1}).encode(), str(sock))
            return json.loads(s.recv(1 << 20))
        finally:
            client.unlink()


CALLS: list[tuple[Any, ...]] = [
    ("cnt.get", "script", "reqs"), ("cnt.get", "test", "bar"), ("cnt.get_vars", "script"),
    ("cnt.help", "test", "bar"), ("cnt.help", "script", "reqs"), ("cnt.get", "script", "nope"),
    ("cnt.var_list", "test"),
    ("cfg.get", "pstn", "gw_ip"), ("cfg.get", "pstn", "gw_port"), ("cfg.get", "pstn", "nope"),
    ("cfg.sets", "pstn", "gw_ip", "10.0.0.2"), ("cfg.get", "pstn", "gw_ip"),
    ("cfg.seti", "pstn", "gw_port", 5070), ("cfg.get", "pstn", "gw_port"),
    ("cfg.set_delayed_string", "pstn", "gw_ip", "10.0.0.3"), ("cfg.get", "pstn", "gw_ip"),
    ("cfg.commit",), ("cfg.get", "pstn", "gw_ip"),
    ("cfg.help", "pstn", "gw_ip"), ("cfg.get", "core", "debug"), ("cfg.seti", "core", "debug", 3),
    ("cfg.get", "core", "debug"), ("cfg.seti", "core", "debug", 2),
]


def test_counters_and_cfg_rpc_match_kamailio(tmp_path: Path) -> None:
    messages = [request_text(extra="X-T: x")] * 3 + [request_text(extra="X-T: bar")] * 2
    with side_by_side(CFG, tmp_path) as pair:
        ours_sip, theirs_sip = pair.both(messages)
        results = {who: [rpc(tmp_path / who / "rpc.sock", *call) for call in CALLS]
                   for who in ("kemi", "kamailio")}
        pair.both([request_text(extra="X-T: reset")])
        after = {who: rpc(tmp_path / who / "rpc.sock", "cnt.get", "script", "reqs")
                 for who in ("kemi", "kamailio")}
    assert ours_sip == theirs_sip
    diffs = [f"{call}: kemi {k} / kamailio {m}"
             for call, k, m in zip(CALLS, results["kemi"], results["kamailio"], strict=True)
             if k != m]
    assert not diffs, "\n".join(diffs)
    assert results["kemi"][0]["result"] == 5 and results["kemi"][1]["result"] == 10
    assert after["kemi"] == after["kamailio"]
