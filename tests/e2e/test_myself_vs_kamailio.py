"""Which URIs name the server ("myself"), on kemi and on Kamailio 5.6 with the same config:
listen sockets, an advertised address, aliases with and without port and transport, the
automatic alias (``localhost``), for the native ``uri/from_uri/to_uri == myself``, kex's
``is_myself()`` and, in a Lua script, ``KSR.is_myself*``.

What Kamailio answers (and these tests hold kemi to): ``uri == myself`` fills a missing port
with 5060 (5061 with ``;transport=tls``; a ``sips:`` scheme alone does not change it) and does
not compare the transport; ``is_myself()`` / ``KSR.is_myself*`` take a missing port as any of
ours, compare ``;transport=`` when given, and take text without ``sip:``/``sips:`` as a host
name alone. An advertised address counts with the socket's port and with the advertised one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kemi_core.testing import exchange, kamailio_available, request_text, side_by_side

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("kex.so", "app_lua.so"), reason="Kamailio 5.6 is not installed")]

HEAD = """#!KAMAILIO
debug=2
log_stderror=yes
children=1
AUTO_ALIASES
listen=udp:127.0.0.1:{port}
listen=udp:127.0.0.2:{port} advertise 192.0.2.1:5070
listen=tcp:127.0.0.3:{port}
alias=ali.example.com
alias=ali2.example.com:5080
alias=dflt.example.com:5060
alias=secure.example.com:5061
alias=tcp:tcpo.example.com:5090
mpath="{mpath}"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "kex.so"
loadmodule "ctl.so"
modparam("ctl", "binrpc", "unix:{ctl}")
"""
NATIVE = HEAD + """
request_route {
    if (uri == myself) { $var(n) = "Y"; } else { $var(n) = "n"; }
    if (from_uri == myself) { $var(f) = "Y"; } else { $var(f) = "n"; }
    if (to_uri != myself) { $var(t) = "n"; } else { $var(t) = "Y"; }
    if (is_myself("$hdr(X-U)")) { $var(k) = "Y"; } else { $var(k) = "n"; }
    sl_send_reply("200", "uri=$var(n) from=$var(f) to=$var(t) kex=$var(k)");
}
"""
LUA = HEAD + """
loadmodule "app_lua.so"
modparam("app_lua", "load", "{dir}/myself.lua")
cfgengine "lua"
"""
SCRIPT = """
local function yn(b) if b then return "Y" else return "n" end end
function ksr_request_route()
  local u = KSR.hdr.get("X-U")
  local r = "is=" .. yn(KSR.is_myself(u)) .. " ru=" .. yn(KSR.is_myself_ruri()) ..
     " fu=" .. yn(KSR.is_myself_furi()) .. " tu=" .. yn(KSR.is_myself_turi())
  if string.sub(u, 1, 3) == "sip" then KSR.setdsturi(u) end
  r = r .. " du=" .. yn(KSR.is_myself_duri()) .. " nh=" .. yn(KSR.is_myself_nhuri()) ..
     " su=" .. yn(KSR.is_myself_suri()) .. " si=" .. yn(KSR.is_myself_srcip())
  KSR.sl.sl_send_reply(200, r)
end
"""
#: URIs (and bare hosts) tried; PORTX is the server's own SIP port.
URIS = [
    "sip:127.0.0.1", "sip:127.0.0.1:PORTX", "sip:127.0.0.1:5060", "sips:127.0.0.1",
    "SIP:127.0.0.1:PORTX", "sip:127.0.0.1:PORTX;transport=tcp", "sip:127.0.0.1;transport=tcp",
    "sip:127.0.0.1:PORTX;transport=UDP", "sip:127.0.0.1:0", "sip:LOCALHOST:PORTX",
    "sip:localhost", "sip:localhost:1234", "sip:ali.example.com:1234", "sip:ali2.example.com",
    "sip:ali2.example.com:5080", "sip:ali2.example.com:5081", "sip:dflt.example.com",
    "sips:dflt.example.com", "sips:secure.example.com", "sip:secure.example.com;transport=tls",
    "sip:secure.example.com;transport=wss", "sip:dflt.example.com;transport=tls",
    "sip:dflt.example.com;transport=ws", "sip:192.0.2.1:5070", "sip:192.0.2.1",
    "sip:192.0.2.1:PORTX", "sip:127.0.0.2:5070", "sip:127.0.0.3:PORTX;transport=udp",
    "sip:127.0.0.3:PORTX;transport=ws", "sip:127.0.0.3", "sip:tcpo.example.com",
    "sip:tcpo.example.com:5090;transport=udp", "sip:[::1]:PORTX",
    "127.0.0.1", "127.0.0.1:PORTX", "ali.example.com", "dflt.example.com:5060", "localhost",
    "tel:+123",
]


def messages(port: int) -> list[str]:
    out = []
    for u in (x.replace("PORTX", str(port)) for x in URIS):
        if u.lower().startswith("sip"):
            out.append(request_text(ruri=u, frm=f"<{u}>;tag=1", to=f"<{u}>", extra=f"X-U: {u}"))
        else:  # R-URI, From, To as request_text writes them (sip:u@127.0.0.1, no port)
            out.append(request_text(extra=f"X-U: {u}"))
    return out


def compare(tmp_path: Path, cfg: str, auto_aliases: str,
            files: dict[str, str] | None = None) -> dict[str, str]:
    """URI -> kemi's answer; fails listing each URI where Kamailio answered otherwise."""
    with side_by_side(cfg.replace("AUTO_ALIASES", auto_aliases), tmp_path, files=files) as pair:
        ours = exchange(pair.kemi_port, messages(pair.kemi_port))
        theirs = exchange(pair.kamailio_port, messages(pair.kamailio_port))
    diffs = [f"{u}: kemi {o.status!r}, Kamailio {t.status!r}"
             for u, o, t in zip(URIS, ours, theirs, strict=True) if o != t]
    assert not diffs, "\n".join(diffs)
    return {u: o.status.split(" ", 2)[2] for u, o in zip(URIS, ours, strict=True)}


@pytest.mark.parametrize("auto_aliases", ["", "auto_aliases=no"])
def test_native_myself_matches_kamailio(tmp_path: Path, auto_aliases: str) -> None:
    got = compare(tmp_path, NATIVE, auto_aliases)
    # the default port: no port is 5060 for uri == myself, any of ours for is_myself()
    assert got["sip:127.0.0.1"] == "uri=n from=n to=n kex=Y"
    assert got["sip:127.0.0.1:PORTX"] == "uri=Y from=Y to=Y kex=Y"
    assert got["sip:dflt.example.com"] == "uri=Y from=Y to=Y kex=Y"
    assert got["sip:secure.example.com;transport=tls"] == "uri=Y from=Y to=Y kex=Y"
    assert got["sip:192.0.2.1:5070"] == "uri=Y from=Y to=Y kex=Y"
    assert got["sip:LOCALHOST:PORTX"].startswith("uri=Y" if not auto_aliases else "uri=n")


@pytest.mark.parametrize("auto_aliases", ["", "auto_aliases=no"])
def test_ksr_is_myself_matches_kamailio(tmp_path: Path, auto_aliases: str) -> None:
    got = compare(tmp_path, LUA, auto_aliases, files={"myself.lua": SCRIPT})
    assert got["sip:127.0.0.1"].startswith("is=Y ru=Y fu=Y tu=Y du=Y nh=Y")
    assert got["sip:127.0.0.1:PORTX;transport=tcp"].startswith("is=n ru=n")
    assert got["127.0.0.1"].startswith("is=Y") and got["127.0.0.1:PORTX"].startswith("is=n")
