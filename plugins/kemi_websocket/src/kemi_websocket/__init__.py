"""websocket.so: SIP over WebSocket (RFC 7118) on the TCP and TLS listeners (Kamailio's
websocket module), framed by wsproto.

The script's xhttp event upgrades a connection with ``KSR.websocket.handle_handshake()``
(native ``ws_handle_handshake()``); SIP messages then arrive with ``$proto`` ws or wss, and
replies and requests for the client go back on the same connection (the client's contact is
reached through nathelper's ``;alias`` or the registrar's received address). Keepalives
(``keepalive_mechanism``: 1 Ping, 2 Pong; ``keepalive_timeout``), ``ws.dump``, ``ws.close``,
``ws.ping``, ``ws.pong``, ``ws.disable``, ``ws.enable``, ``event_route[websocket:closed]`` (or
the ``event_callback`` KEMI function) with ``$ws_conid``. A WebSocket message may be at most
``max_msg_size`` bytes.
"""

from __future__ import annotations

import logging
from typing import Any

from kemi_core.api import (
    CfgFunction,
    Core,
    KemiExport,
    MsgContext,
    PvValue,
    RpcFault,
    connection_of,
    export,
    hookimpl,
)
from kemi_websocket.handshake import handle_handshake
from kemi_websocket.service import MODULE, WebSocketModule
from kemi_websocket.session import NORMAL, WsReader

log = logging.getLogger("kemi.websocket")

PARAMS: tuple[tuple[str, type, Any, str], ...] = (
    ("keepalive_mechanism", int, 1, "0 none, 1 Ping, 2 Pong on idle connections"),
    ("keepalive_timeout", int, 180, "seconds idle before a keepalive"),
    ("keepalive_processes", int, 1, "accepted: each worker keeps its own connections alive"),
    ("keepalive_interval", int, 1, "accepted: keepalives are checked by the connection sweep"),
    ("ping_application_data", str, "", "payload of keepalive frames (default: Server header)"),
    ("sub_protocols", int, 1, "1: sip (msrp is not offered)"),
    ("cors_mode", int, 0, "0 none, 1 Access-Control-Allow-Origin: *, 2 echo Origin"),
    ("verbose_list", int, 0, "accepted"),
    ("event_callback", str, "", "KEMI function run for websocket:closed"),
    ("timer_interval", int, 1, "seconds between two looks at ws.close/ws.ping requests"),
    ("rm_delay_interval", int, 5, "seconds a closing connection waits for the peer's Close"),
)

SERVER_HEADER = "kemi"


class _State:
    module: WebSocketModule | None = None


_state = _State()


def _module() -> WebSocketModule:
    if _state.module is None:
        raise RuntimeError("websocket: the module is not initialised")
    return _state.module


def _ws(ctx: MsgContext, conid: int | None = None) -> tuple[WsReader, Any] | None:
    mod = _module()
    if conid is not None:
        return mod.local.get(conid)
    conn = connection_of(ctx)
    if conn is None or not isinstance(conn.reader, WsReader):
        return None
    return conn.reader, conn


# ---- KEMI functions -------------------------------------------------------------------------
def ws_handle_handshake(ctx: MsgContext) -> int:
    """Upgrade the HTTP request's connection to a WebSocket for SIP (call it from the xhttp
    event): 1 done; 0 after answering an error (503, 400, 426), which stops the script."""
    return handle_handshake(_module(), ctx)


def ws_close(ctx: MsgContext) -> int:
    """Close the WebSocket the message arrived on (1000, "Normal closure"): 1, -1 none."""
    return ws_close_conid(ctx, NORMAL, "Normal closure", -1)


def ws_close_reason(ctx: MsgContext, status: int, reason: str) -> int:
    """Close the message's WebSocket with a status code and reason (RFC 6455 7.4)."""
    return ws_close_conid(ctx, status, reason, -1)


def ws_close_conid(ctx: MsgContext, status: int, reason: str, con: int) -> int:
    """Close WebSocket connection ``con`` of this worker (-1: the message's own)."""
    found = _ws(ctx, con if con >= 0 else None)
    if found is None:
        return -1
    reader, conn = found
    reader.close(conn, int(status), reason)
    return 1


def exports() -> list[KemiExport]:
    return [
        export(MODULE, "handle_handshake", ws_handle_handshake, ""),
        export(MODULE, "close", ws_close, ""),
        export(MODULE, "close_reason", ws_close_reason, "is"),
        export(MODULE, "close_conid", ws_close_conid, "isi"),
    ]


def _ws_conid(ctx: MsgContext) -> PvValue:
    value = ctx.extra.get("ws_conid")
    return int(value) if value is not None else None


# ---- RPC commands ---------------------------------------------------------------------------
def _conn_id(params: list[Any]) -> int:
    try:
        return int(params[0])
    except (IndexError, TypeError, ValueError):
        raise RpcFault("Unknown connection ID", 500) from None


def rpc_dump(core: Core, params: list[Any]) -> dict[str, Any]:
    order = str(params[0]) if params else "id_hash"
    if order not in ("id_hash", "used_desc", "used_asc"):
        raise RpcFault("Bad order parameter", 500)
    return _module().dump(order)


def _rpc_request(what: str):  # type: ignore[no-untyped-def]
    def run(core: Core, params: list[Any]) -> None:
        if not _module().request(_conn_id(params), what):
            raise RpcFault("Unknown connection ID", 500)
    return run


def rpc_disable(core: Core, params: list[Any]) -> None:
    _module().set_enabled(False)


def rpc_enable(core: Core, params: list[Any]) -> None:
    _module().set_enabled(True)


# ---- native cfg functions -------------------------------------------------------------------
def _cfg_close(ctx: MsgContext, *args: str) -> int:
    fmt = ctx.core.pv.format
    vals = [fmt(a)(ctx) if "$" in a else a for a in args]
    try:
        if not vals:
            return ws_close(ctx)
        if len(vals) == 2:
            return ws_close_reason(ctx, int(vals[0]), vals[1])
        return ws_close_conid(ctx, int(vals[0]), vals[1], int(vals[2]))
    except ValueError:
        log.error("ws_close: status and connection id must be numbers")
        return -1


@hookimpl
def mod_register(core: Core) -> None:
    for name, kind, default, doc in PARAMS:
        core.declare_param(MODULE, name, kind, default, doc=doc)
    core.pv.register("ws_conid", _ws_conid,
                     doc="id of the WebSocket connection that closed (websocket:closed)")
    core.add_rpc("ws.dump", rpc_dump, "The first 50 WebSocket connections")
    core.add_rpc("ws.close", _rpc_request("close"), "Close WebSocket connection <id>")
    core.add_rpc("ws.ping", _rpc_request("ping"), "Send a Ping on WebSocket connection <id>")
    core.add_rpc("ws.pong", _rpc_request("pong"), "Send a Pong on WebSocket connection <id>")
    core.add_rpc("ws.disable", rpc_disable, "Refuse new WebSocket connections")
    core.add_rpc("ws.enable", rpc_enable, "Accept new WebSocket connections again")
    core.add_cfg_function(CfgFunction(MODULE, "ws_handle_handshake", ws_handle_handshake, 0, 0,
                                      doc="upgrade the HTTP connection to a WebSocket"))
    core.add_cfg_function(CfgFunction(MODULE, "ws_close", _cfg_close, 0, 3,
                                      doc="close a WebSocket connection"))


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return exports()


@hookimpl
def mod_init(core: Core) -> None:
    params = {name: core.modparam(MODULE, name) for name, _, _, _ in PARAMS}
    if int(params["sub_protocols"]) & ~1:
        log.warning("websocket: only the sip sub-protocol is offered (sub_protocols=1)")
    params["server_header"] = SERVER_HEADER
    if not params["ping_application_data"]:
        params["ping_application_data"] = SERVER_HEADER
    _state.module = WebSocketModule(core, params)


@hookimpl
def child_init(core: Core, rank: int) -> None:
    mod = _state.module
    if mod is not None and rank > 0:
        core.clock.call_every(mod.timer_interval, mod.carry_out)
