"""What dispatcher's tests share: a kamailio.cfg + Lua script pair, a list, and messages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

CFG = """#!KAMAILIO
listen=udp:127.0.0.1:5060
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "dispatcher.so"
loadmodule "app_lua.so"
modparam("tm", "fr_timer", 4000)
modparam("dispatcher", "list_file", "{list}")
modparam("dispatcher", "flags", 2)
modparam("dispatcher", "reload_delta", 0)
{extra}
modparam("app_lua", "load", "{script}")
cfgengine "lua"
"""

#: Routes: X-Set/X-Alg pick the set and algorithm; INVITEs are relayed with failover, other
#: requests are answered with what the selection gave.
SCRIPT = """
local function dump()
  local s = " du=" .. tostring(KSR.pv.get("$du"))
  local i = 0
  while true do
    local u = KSR.pv.get("$xavp(_dsdst_[" .. i .. "]=>uri)")
    if u == nil then break end
    s = s .. " x" .. i .. "=" .. u
    i = i + 1
  end
  return s .. " cnt=" .. tostring(KSR.pv.get("$xavp(_dsctx_=>cnt)"))
end

function ksr_request_route()
  local set = tonumber(KSR.hdr.get("X-Set") or "1")
  local alg = tonumber(KSR.hdr.get("X-Alg") or "4")
  if KSR.is_INVITE() then
    if KSR.dispatcher.ds_select_dst(set, alg) < 0 then
      KSR.sl.sl_send_reply(503, "No Destination")
      return
    end
    KSR.tm.t_on_failure("ksr_failure")
    KSR.tm.t_relay()
    return
  end
  local rc = KSR.dispatcher.ds_select_dst(set, alg)
  local s = "rc=" .. rc .. dump()
  if KSR.hdr.get("X-Next") then
    for _ = 1, 3 do
      s = s .. " | next=" .. KSR.dispatcher.ds_next_dst() .. dump()
    end
  end
  KSR.sl.sl_send_reply(200, s)
end

function ksr_failure()
  if KSR.tm.t_is_canceled() > 0 then return end
  if KSR.tm.t_check_status("500|503") > 0 or
      (KSR.tm.t_branch_timeout() > 0 and KSR.tm.t_branch_replied() < 0) then
    KSR.dispatcher.ds_mark_dst_state("ip")
    if KSR.dispatcher.ds_next_dst() > 0 then
      KSR.tm.t_on_failure("ksr_failure")
      KSR.tm.t_relay()
    end
  end
end
"""

LIST = """\
# set 1: three proxies of equal priority
1 sip:127.0.0.2:5060 0 0 duid=a;weight=30
1 sip:127.0.0.3:5060 0 0 duid=b;weight=20
1 sip:127.0.0.5:5060 0 0 duid=c;weight=50
2 sip:127.0.0.4:5070;transport=tcp 0 0
3 sip:127.0.0.6:5060 0 1
3 sip:127.0.0.7:5060 0 3
3 sip:127.0.0.8:5060 0 2
"""

Write = Callable[..., Path]


def options(callid: str = "call-0", set_: int = 1, alg: int = 4, nxt: bool = False,
            from_uri: str = "sip:alice@example.com") -> str:
    extra = "X-Next: 1\n" if nxt else ""
    return f"""\
OPTIONS sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{callid}x
From: <{from_uri}>;tag=1
To: <sip:bob@example.com>
Call-ID: {callid}
CSeq: 1 OPTIONS
Max-Forwards: 70
X-Set: {set_}
X-Alg: {alg}
{extra}"""


def invite(callid: str, set_: int = 1, alg: int = 4) -> str:
    return f"""\
INVITE sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{callid}i
From: <sip:alice@example.com>;tag=1
To: <sip:bob@example.com>
Call-ID: {callid}
CSeq: 1 INVITE
Max-Forwards: 70
Contact: <sip:alice@127.0.0.1:5070>
X-Set: {set_}
X-Alg: {alg}
"""


def write_config(tmp_path: Path, list_text: str = LIST, extra: str = "") -> Path:
    """Write the list, the script and kamailio.cfg into ``tmp_path``; returns the cfg."""
    (tmp_path / "dispatcher.list").write_text(list_text)
    (tmp_path / "router.lua").write_text(SCRIPT)
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CFG.format(list=tmp_path / "dispatcher.list", extra=extra,
                              script=tmp_path / "router.lua"))
    return cfg
