"""registrar's KEMI functions from a Lua script (KSR.registrar.*) and $ulc, in a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kemi_core.testing import KemiProcess, free_port
from kemi_registrar.testing import RegUA, Reply

CFG = """#!KAMAILIO
listen=udp:127.0.0.1:{port}
children=1
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "app_lua.so"
modparam("app_lua", "load", "{script}")
cfgengine "lua"
"""

SCRIPT = r"""
local function reply(rc, extra)
    KSR.hdr.append_to_reply("X-RC: " .. tostring(rc) .. "\r\n")
    for k, v in pairs(extra or {}) do
        KSR.hdr.append_to_reply(k .. ": " .. tostring(v) .. "\r\n")
    end
    KSR.sl.send_reply(200, "Done")
end

function ksr_request_route()
    local method = KSR.pv.get("$rm")
    local user = KSR.pv.get("$rU") or ""
    if method == "REGISTER" then
        if user == "single" then
            KSR.registrar.save("location", 4)
        elseif user == "deferred" then
            local rc = KSR.registrar.save("location", 2)
            KSR.hdr.append_to_reply("X-Save-RC: " .. rc .. "\r\n")
            KSR.registrar.reg_send_reply()
        else
            KSR.registrar.save("location", 0)
        end
        return 1
    end
    if method ~= "MESSAGE" then
        return 1
    end
    local cmd = KSR.pv.get("$hdr(X-Cmd)")
    local target = KSR.pv.get("$hdr(X-Target)")
    if cmd == "fetch" then
        local rc = KSR.registrar.reg_fetch_contacts("location", target, "p")
        reply(rc, {["X-Count"] = KSR.pv.get("$ulc(p=>count)"),
                   ["X-Aor"] = KSR.pv.get("$ulc(p=>aor)"),
                   ["X-Addr0"] = KSR.pv.get("$(ulc(p=>addr)[0])"),
                   ["X-Addr1"] = KSR.pv.get("$(ulc(p=>addr)[1])"),
                   ["X-Q0"] = KSR.pv.get("$(ulc(p=>q)[0])"),
                   ["X-UA0"] = KSR.pv.get("$(ulc(p=>user_agent)[0])"),
                   ["X-Ruid1"] = KSR.pv.get("$(ulc(p=>ruid)[1])")})
    elseif cmd == "unregister_ruid" then
        KSR.registrar.reg_fetch_contacts("location", target, "p")
        local ruid = KSR.pv.get("$(ulc(p=>ruid)[1])")
        reply(KSR.registrar.unregister_ruid("location", target, ruid))
    elseif cmd == "registered" then
        reply(KSR.registrar.registered_uri("location", target))
    elseif cmd == "unregister" then
        reply(KSR.registrar.unregister("location", target))
    elseif cmd == "lookup_uri" then
        local rc = KSR.registrar.lookup_uri("location", target)
        reply(rc, {["X-RU"] = KSR.pv.get("$ru")})
    elseif cmd == "sock" then
        local rc = KSR.registrar.add_sock_hdr("X-Sock")
        reply(rc, {["X-Got"] = KSR.pv.get("$hdr(X-Sock)")})
    end
    return 1
end
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[KemiProcess, int]]:
    port = free_port()
    script = tmp_path / "registrar.lua"
    script.write_text(SCRIPT)
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CFG.format(port=port, script=script))
    with KemiProcess(cfg, tmp_path) as proc:
        yield proc, port


def cmd(ua: RegUA, name: str, target: str) -> Reply:
    reply = ua.request("MESSAGE", "cmd", extra=f"X-Cmd: {name}\r\nX-Target: {target}\r\n")
    assert reply is not None
    return reply


def test_kemi_functions_and_ulc(server: tuple[KemiProcess, int]) -> None:
    _, port = server
    with RegUA(port) as ua:
        saved = ua.register("alice", ["<sip:alice@10.0.0.1:5060>;q=0.7",
                                      "<sip:alice@10.0.0.2:5060>"])
        assert saved is not None and saved.status == 200
        fetched = cmd(ua, "fetch", "sip:alice@127.0.0.1")
        assert fetched.header("X-RC") == "1"
        assert (fetched.header("X-Count"), fetched.header("X-Aor")) == ("2", "alice")
        assert fetched.header("X-Addr0") == "sip:alice@10.0.0.1:5060"
        assert fetched.header("X-Addr1") == "sip:alice@10.0.0.2:5060"
        assert fetched.header("X-Q0") == "0.7" and fetched.header("X-UA0") == "regua"
        assert cmd(ua, "registered", "sip:alice@127.0.0.1").header("X-RC") == "1"
        assert cmd(ua, "registered", "sip:nobody@127.0.0.1").header("X-RC") == "-1"
        looked = cmd(ua, "lookup_uri", "sip:alice@127.0.0.1")
        assert (looked.header("X-RC"), looked.header("X-RU")) == ("1", "sip:alice@10.0.0.1:5060")
        assert cmd(ua, "unregister_ruid", "sip:alice@127.0.0.1").header("X-RC") == "1"
        after = cmd(ua, "fetch", "sip:alice@127.0.0.1")
        assert after.header("X-Count") == "1" and after.header("X-Addr1") is None
        assert cmd(ua, "unregister", "sip:alice@127.0.0.1").header("X-RC") == "1"
        assert cmd(ua, "unregister", "sip:alice@127.0.0.1").header("X-RC") == "-3"
        assert cmd(ua, "fetch", "sip:alice@127.0.0.1").header("X-RC") == "-1"
        sock = cmd(ua, "sock", "")
        assert sock.header("X-Got") == f"udp:127.0.0.1:{port}"


def test_save_flags_from_lua(server: tuple[KemiProcess, int]) -> None:
    _, port = server
    with RegUA(port) as ua:
        first = ua.register("bob", ["<sip:bob@10.0.0.1:5060>", "<sip:bob@10.0.0.2:5060>"],
                            ruri_user="single")
        assert first is not None
        assert first.header("Contact") == ("<sip:bob@10.0.0.1:5060>;expires=3600, "
                                           "<sip:bob@10.0.0.2:5060>;expires=3600")
        single = ua.register("bob", ["<sip:bob@10.0.0.3:5060>"], ruri_user="single")
        assert single is not None
        assert single.header("Contact") == "<sip:bob@10.0.0.3:5060>;expires=3600"
        deferred = ua.register("carol", ["<sip:carol@10.0.0.1:5060>"], ruri_user="deferred")
        assert deferred is not None and deferred.status == 200
        assert deferred.header("X-Save-RC") == "1"
        assert deferred.header("Contact") == "<sip:carol@10.0.0.1:5060>;expires=3600"
