"""KSR.kx.*, KSR.corex.has_* and KSR.is_myself with a bare host, from a Lua script on kemi and
on Kamailio 5.6: the values the script reads come back in a reply header and must be equal."""

from __future__ import annotations

from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, request_text, side_by_side

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("kemix.so", "app_lua.so", "corex.so"),
    reason="Kamailio 5.6 with app_lua is not installed")]

CFG = cfg_preamble("sl", "pv", "textops", "corex", "kemix", "app_lua",
                   defines='#!define MYDEF "hello"\n#!define MYNUM 42') + """modparam("app_lua", "load", "{dir}/script.lua")
cfgengine "lua"
"""

# Each expression's value is shown with tostring() (nil -> "nil").
EXPRS = [
    "KSR.kx.get_ruri()", "KSR.kx.get_ruser()", "KSR.kx.gete_ruser()", "KSR.kx.getw_ruser()",
    "KSR.kx.get_rhost()", "KSR.kx.get_furi()", "KSR.kx.get_fuser()", "KSR.kx.gete_fhost()",
    "KSR.kx.get_turi()", "KSR.kx.get_tuser()", "KSR.kx.get_duri()", "KSR.kx.gete_duri()",
    "KSR.kx.getw_duri()", "KSR.kx.get_cturi()", "KSR.kx.gete_cturi()", "KSR.kx.get_ua()",
    "KSR.kx.gete_ua()", "KSR.kx.getw_ua()", "KSR.kx.get_srcip()", "KSR.kx.get_proto()",
    "KSR.kx.get_protoid()", "KSR.kx.get_method()", "KSR.kx.get_status()",
    "KSR.kx.gets_status()", "KSR.kx.get_body()", "KSR.kx.gete_body()", "KSR.kx.get_bodylen()",
    "KSR.kx.get_callid()", "KSR.kx.get_msgtype()", "KSR.kx.get_def('MYDEF')",
    "KSR.kx.get_defn('MYNUM')", "KSR.kx.get_def('NOPE')", "KSR.kx.ifdef('MYDEF')",
    "KSR.kx.ifndef('MYDEF')", "KSR.kx.get_au()", "KSR.kx.gete_au()", "KSR.kx.get_nhuri()",
    "KSR.kx.get_ouri()", "KSR.kx.get_conid()",
    "KSR.corex.has_ruri_user()", "KSR.corex.has_user_agent()",
    "KSR.is_myself('127.0.0.1')", "KSR.is_myself('127.0.0.1:{port}')",
    "KSR.is_myself('127.0.0.1:5999')", "KSR.is_myself('10.1.2.3')", "KSR.is_myself('localhost')",
    "KSR.is_myself('sip:127.0.0.1:{port}')", "KSR.is_myself(KSR.pv.get('$si'))",
    "KSR.is_myself('')", "KSR.is_myself('sip:127.0.0.1')", "KSR.is_myself('sip:127.0.0.1:5060')",
    "KSR.is_myself_ruri()", "KSR.is_myself_furi()",
]

LUA = """
local exprs = {
%s
}
function ksr_request_route()
    local i = tonumber(KSR.pv.gete("$hdr(X-I)"))
    local v = exprs[i]()
    KSR.hdr.append_to_reply("X-V: " .. type(v) .. ":" .. tostring(v) .. "\\r\\n")
    KSR.sl.send_reply(200, "OK")
end
"""


def test_kx_and_friends_match_kamailio(tmp_path: Path) -> None:
    lua = LUA % ",\n".join(f"    function() return {e} end" for e in EXPRS)
    messages, labels = [], []
    for i, expr in enumerate(EXPRS, 1):
        for ruri, extra, body in (
                ("sip:bob@127.0.0.1", "User-Agent: tester 1\r\nContact: <sip:c@10.0.0.1:5070>",
                 "hello"),
                ("sip:127.0.0.1", 'Proxy-Authorization: Digest username="al", realm="r"', "")):
            messages.append(request_text("MESSAGE", ruri=ruri, body=body,
                                         extra=f"X-I: {i}\r\n{extra}"))
            labels.append((expr, ruri))
    with side_by_side(CFG, tmp_path, files={"script.lua": lua}) as pair:
        ours, theirs = pair.both(messages, keep=["x-v"])
        port = {"kemi": pair.kemi_port, "kamailio": pair.kamailio_port}
    diffs = []
    for i, (o, t) in enumerate(zip(ours, theirs, strict=True)):
        ov = str(o.headers).replace(str(port["kemi"]), "PORT")
        tv = str(t.headers).replace(str(port["kamailio"]), "PORT")
        if (o.status, ov) != (t.status, tv):
            diffs.append(f"{labels[i]}: kemi {o.status} {ov} / kamailio {t.status} {tv}")
    assert not diffs, f"{len(diffs)} differences:\n" + "\n".join(diffs)
