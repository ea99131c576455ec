"""Written from issue 16's text alone, as its acceptance check is: a Lua script with a keepalive
answer to OPTIONS, a Max-Forwards check, a relay to a primary with an added header and a failure
route failing over to a secondary on 486 or 408; five tests through the kemi_router fixture."""

from __future__ import annotations

from pathlib import Path

import pytest

LUA = """
function ksr_request_route()
    if KSR.is_OPTIONS() then
        KSR.sl.sl_send_reply(200, "Alive")
        return
    end
    if KSR.maxfwd.process_maxfwd(10) < 0 then
        KSR.sl.sl_send_reply(483, "Too Many Hops")
        return
    end
    KSR.hdr.append("X-Relayed-By: kemi\\r\\n")
    KSR.pv.sets("$du", "sip:127.0.0.1:5080")
    KSR.tm.t_on_failure("failover")
    KSR.info("relay to primary: " .. KSR.pv.get("$ru") .. "\\n")
    KSR.tm.t_relay()
end

function failover()
    if KSR.tm.t_check_status("486|408") > 0 then
        KSR.info("failover to secondary\\n")
        KSR.pv.sets("$du", "sip:127.0.0.1:5090")
        KSR.tm.t_relay()
    end
end
"""

CFG = """#!KAMAILIO
listen=udp:127.0.0.1:5060
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "app_lua.so"
modparam("tm", "fr_timer", 10000)
modparam("app_lua", "load", "{lua}")
cfgengine "lua"
"""

INVITE_TEXT = """INVITE sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds
Max-Forwards: {mf}
From: Alice <sip:alice@example.com>;tag=1928301774
To: Bob <sip:bob@example.com>
Call-ID: a84b4c76e66710@127.0.0.1
CSeq: 314159 INVITE
Contact: <sip:alice@127.0.0.1:5070>
Content-Length: 0

"""

OPTIONS_TEXT = """OPTIONS sip:127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKopt1
Max-Forwards: 70
From: <sip:ping@example.com>;tag=99
To: <sip:127.0.0.1:5060>
Call-ID: opt1@127.0.0.1
CSeq: 1 OPTIONS

"""


@pytest.fixture
def cfg(tmp_path: Path) -> str:
    lua = tmp_path / "router.lua"
    lua.write_text(LUA)
    path = tmp_path / "kamailio.cfg"
    path.write_text(CFG.format(lua=lua))
    return str(path)


def test_options_keepalive_answered_locally(kemi_router, cfg):
    router = kemi_router(cfg)
    out = router.request(OPTIONS_TEXT, source="udp:127.0.0.1:5070")
    assert [r.status for r in out.replies] == [200]
    assert out.replies[0].reason == "Alive"
    assert out.forwarded == []


def test_max_forwards_zero_gets_483(kemi_router, cfg):
    router = kemi_router(cfg)
    out = router.request(INVITE_TEXT.format(mf=0))
    assert out.replies[-1].status == 483
    assert not out.forwarded


def test_relay_to_primary_with_header(kemi_router, cfg):
    router = kemi_router(cfg)
    out = router.request(INVITE_TEXT.format(mf=70), source="udp:127.0.0.1:5070")
    assert len(out.forwarded) == 1
    fwd = out.forwarded[0]
    assert fwd.dest == "udp:127.0.0.1:5080"
    assert fwd.msg.header("X-Relayed-By") == "kemi"
    assert fwd.msg.max_forwards == 69
    assert len(fwd.msg.vias) == 2
    assert fwd.msg.vias[1].branch == "z9hG4bK776asdhds"
    assert any("relay to primary: sip:bob@example.com" in line for line in out.logs)


def test_busy_fails_over_and_200_is_relayed_back(kemi_router, cfg):
    router = kemi_router(cfg)
    out = router.request(INVITE_TEXT.format(mf=70), source="udp:127.0.0.1:5070")
    busy = router.reply(out.forwarded[0], 486, "Busy Here")
    assert [f.dest for f in busy.forwarded] == ["udp:127.0.0.1:5090"]
    assert busy.forwarded[0].msg.header("X-Relayed-By") == "kemi"
    ok = router.reply(busy.forwarded[0], 200, "OK")
    assert [r.status for r in ok.replies] == [200]
    assert ok.replies[0].vias[0].branch == "z9hG4bK776asdhds"


def test_timeout_fails_over(kemi_router, cfg):
    router = kemi_router(cfg)
    out = router.request(INVITE_TEXT.format(mf=70), source="udp:127.0.0.1:5070")
    assert out.forwarded[0].dest == "udp:127.0.0.1:5080"
    later = router.advance(11.0)
    assert [f.dest for f in later.forwarded] == ["udp:127.0.0.1:5090"]
    assert "failover to secondary" in later.logs
