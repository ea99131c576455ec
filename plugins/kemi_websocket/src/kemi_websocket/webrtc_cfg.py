"""The proxy/registrar the WebSocket and TLS end-to-end tests (and bench/tls.py) run, on kemi
and on Kamailio 5.6 alike: one kamailio.cfg with a Lua routing script (registrar, usrloc,
nathelper, rr, tm, xhttp, websocket, tls), as Kamailio's own WebSocket example routes (nathelper
aliases for WebSocket clients, double Record-Route across transports).

``write_server(directory, ports, ...)`` writes kamailio.cfg, proxy.lua and tls.cfg;
``kemi_websocket.testing.WebrtcServer`` runs them.
"""

from __future__ import annotations

import os

import attrs

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
children={children}
enable_tls=yes
listen=udp:127.0.0.1:{udp}
listen=tcp:127.0.0.1:{ws}
listen=tls:127.0.0.1:{tls}
tcp_connection_lifetime=3605
tcp_accept_no_cl=yes
{mpath}
loadmodule "tls.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "ctl.so"
loadmodule "nathelper.so"
loadmodule "xhttp.so"
loadmodule "websocket.so"
loadmodule "app_lua.so"
modparam("ctl", "binrpc", "unix:{ctl}")
modparam("tls", "config", "{tls_cfg}")
modparam("usrloc", "preload", "location")
modparam("nathelper|registrar", "received_avp", "$avp(RECEIVED)")
modparam("xhttp", "event_callback", "ksr_xhttp_event")
modparam("websocket", "event_callback", "ksr_websocket_event")
modparam("websocket", "keepalive_timeout", {ws_keepalive})
modparam("app_lua", "load", "{script}")
cfgengine "lua"
"""

TLS_CFG = """[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
private_key = {key}
certificate = {cert}
ca_list = {ca}

[client:default]
method = TLSv1.2+
verify_certificate = yes
require_certificate = yes
ca_list = {ca}
"""

LUA = r'''
-- a proxy/registrar for SIP over UDP, TLS, WS and WSS (the shape of Kamailio's WebSocket example)
function ksr_request_route()
    if KSR.maxfwd.process_maxfwd(10) < 0 then
        KSR.sl.sl_send_reply(483, "Too Many Hops")
        return 1
    end
    if KSR.nathelper.nat_uac_test(64) > 0 then
        -- WebSocket clients: reach them back on their connection (no Outbound/Path)
        KSR.force_rport()
        if KSR.is_REGISTER() then
            KSR.nathelper.fix_nated_register()
        elseif KSR.hdr.is_present("Contact") > 0 and KSR.nathelper.add_contact_alias() < 0 then
            KSR.sl.sl_send_reply(400, "Bad Request")
            return 1
        end
    end
    if KSR.is_OPTIONS() and KSR.pv.is_null("$rU") then
        KSR.sl.sl_send_reply(200, "Keepalive")
        return 1
    end
    ksr_route_withindlg()
    if KSR.is_CANCEL() then
        if KSR.tm.t_check_trans() > 0 then ksr_route_relay() end
        return 1
    end
    KSR.tm.t_check_trans()
    KSR.hdr.remove("Route")
    if KSR.is_INVITE() then KSR.rr.record_route() end
    if KSR.is_REGISTER() then
        if KSR.registrar.save("location", 0) < 0 then KSR.sl.sl_reply_error() end
        return 1
    end
    if KSR.pv.is_null("$rU") then
        KSR.sl.sl_send_reply(484, "Address Incomplete")
        return 1
    end
    local rc = KSR.registrar.lookup("location")
    if rc < 0 then
        KSR.tm.t_newtran()
        if rc == -2 then
            KSR.sl.send_reply(405, "Method Not Allowed")
        else
            KSR.sl.send_reply(404, "Not Found")
        end
        return 1
    end
    ksr_route_relay()
end

function ksr_route_relay()
    KSR.tm.t_on_reply("ksr_onreply_ws")
    if KSR.tm.t_relay() < 0 then KSR.sl.sl_reply_error() end
    KSR.x.exit()
end

function ksr_route_withindlg()
    if KSR.siputils.has_totag() < 0 then return 1 end
    if KSR.rr.loose_route() > 0 then
        if KSR.pv.is_null("$du") then
            if KSR.nathelper.handle_ruri_alias() < 0 then
                KSR.sl.sl_send_reply(400, "Bad Request")
                KSR.x.exit()
            end
        end
        ksr_route_relay()
    end
    if KSR.is_ACK() then
        if KSR.tm.t_check_trans() > 0 then ksr_route_relay() end
        KSR.x.exit()
    end
    KSR.sl.sl_send_reply(404, "Not here")
    KSR.x.exit()
end

function ksr_onreply_ws()
    if KSR.nathelper.nat_uac_test(64) > 0 and KSR.hdr.is_present("Contact") > 0 then
        KSR.nathelper.add_contact_alias()
    end
end

function ksr_xhttp_event(evname)
    local upgrade = KSR.hdr.get("Upgrade")
    local connection = KSR.hdr.get("Connection")
    if upgrade ~= nil and connection ~= nil and string.find(string.lower(upgrade), "websocket")
            and string.find(string.lower(connection), "upgrade") and KSR.is_GET() then
        if KSR.websocket.handle_handshake() > 0 then return 1 end
        return 1
    end
    KSR.xhttp.xhttp_reply(404, "Not Found", "text/plain", "no such page: " .. evname .. "\n")
end

function ksr_websocket_event(evname)
    KSR.info("websocket " .. evname .. " " .. KSR.pv.get("$si") .. ":" .. KSR.pv.get("$sp") .. "\n")
end
'''


@attrs.frozen
class Ports:
    udp: int
    ws: int
    tls: int  # SIP over TLS and wss:// share it


def write_server(directory: str | os.PathLike[str], ports: Ports, cert: str, key: str, ca: str,
                 ctl: str, mpath: str = "", children: int = 2, ws_keepalive: int = 180,
                 lua: str = LUA) -> str:
    """Write the config files into ``directory``; returns the kamailio.cfg path."""
    d = os.fspath(directory)
    tls_cfg = os.path.join(d, "tls.cfg")
    script = os.path.join(d, "proxy.lua")
    with open(tls_cfg, "w") as fh:
        fh.write(TLS_CFG.format(cert=cert, key=key, ca=ca))
    with open(script, "w") as fh:
        fh.write(lua)
    cfg = os.path.join(d, "kamailio.cfg")
    with open(cfg, "w") as fh:
        fh.write(CFG.format(udp=ports.udp, ws=ports.ws, tls=ports.tls, ctl=ctl, tls_cfg=tls_cfg,
                            script=script, mpath=mpath, children=children,
                            ws_keepalive=ws_keepalive))
    return cfg


#: the Kamailio modules the config needs (tests and the benchmark skip without them)
KAMAILIO_MODULES = ("tls.so", "websocket.so", "xhttp.so", "app_lua.so", "nathelper.so")
