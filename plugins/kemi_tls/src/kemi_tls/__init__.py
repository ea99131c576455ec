"""tls.so: SIP over TLS (Kamailio's tls module) with Python's ``ssl``.

``enable_tls=yes`` and ``listen=tls:IP:PORT`` serve TLS; requests to ``;transport=tls`` and
``sips:`` next hops open (and then reuse) TLS connections. Profiles come from Kamailio's
tls.cfg format (``modparam("tls", "config", "tls.cfg")``: ``[server:default]``,
``[client:default]``, ``[server:IP:PORT]``, ``[client:IP:PORT]``, ``[server:any]`` with
``server_name`` for SNI; what a profile leaves unset takes the module's own values, as
Kamailio 5.6 does), or, without a tls.cfg, from the inline module parameters (``certificate``,
``private_key``, ``ca_list``, ``tls_method``, ``verify_depth`` ...). ``tls.reload`` loads the file again without a
restart (new connections use it); ``tls.list``, ``tls.info`` and ``tls.options`` answer as
Kamailio's do. ``$tls_version``, ``$tls_peer_subject_cn`` and the other ``$tls_*`` variables read
the connection a message arrived on.

Handshakes run on the worker's event loop without blocking it (memory BIOs) and must finish
within ``handshake_timeout`` seconds (kemi's parameter; a silent or slow peer loses only its
own connection).
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from kemi_core.api import (
    CfgFunction,
    ConfigError,
    Core,
    KemiExport,
    MsgContext,
    RpcFault,
    export,
    hookimpl,
)
from kemi_tls.noca import peer_verified
from kemi_tls.profiles import check_method, check_verify_client
from kemi_tls.pvs import register_pvs, tls_conn
from kemi_tls.service import MODULE, TlsModule

log = logging.getLogger("kemi.tls")

#: Module parameters that are profile attributes (Kamailio fills what tls.cfg leaves unset
#: from them): name, kind, default.
PROFILE_PARAMS: tuple[tuple[str, type, Any], ...] = (
    ("tls_method", str, "TLSv1"),
    ("certificate", str, ""),
    ("private_key", str, ""),
    ("ca_list", str, ""),
    ("ca_path", str, ""),
    ("crl", str, ""),
    ("verify_certificate", int, 0),
    ("verify_depth", int, 9),
    ("require_certificate", int, 0),
    ("cipher_list", str, ""),
    ("server_name", str, ""),
    ("verify_client", str, ""),
)

#: Accepted for compatibility; OpenSSL's buffers and Kamailio's queues have no counterpart.
ACCEPTED_PARAMS: tuple[tuple[str, type, Any], ...] = (
    ("connection_timeout", int, 600), ("tls_disable_compression", int, 1),
    ("ssl_release_buffers", int, -1), ("ssl_freelist_max_len", int, -1),
    ("ssl_max_send_fragment", int, -1), ("ssl_read_ahead", int, 0),
    ("send_close_notify", int, 0), ("con_ct_wq_max", int, 65536),
    ("ct_wq_max", int, 10485760), ("ct_wq_blk_size", int, 4096), ("tls_log", int, 3),
    ("tls_debug", int, 3), ("low_mem_threshold1", int, -1), ("low_mem_threshold2", int, -1),
    ("tls_force_run", int, 0), ("session_cache", int, 0),
    ("session_id", str, "kamailio-tls-5.x.y"), ("renegotiation", int, 0),
    ("xavp_cfg", str, ""), ("event_callback", str, ""), ("rand_engine", str, ""),
    ("engine", str, ""), ("engine_config", str, ""), ("engine_algorithms", str, ""),
)


class _State:
    module: TlsModule | None = None


_state = _State()


def _module() -> TlsModule:
    if _state.module is None:
        raise RuntimeError("tls: the module is not initialised")
    return _state.module


# ---- KEMI functions -------------------------------------------------------------------------
def is_peer_verified(ctx: MsgContext) -> int:
    """1 when the message came over TLS and the peer's certificate chain verified, else -1."""
    conn = tls_conn(ctx)
    if conn is None or conn.tls is None:
        return -1
    try:
        return 1 if peer_verified(conn.tls.obj) else -1
    except (ValueError, ssl.SSLError):
        return -1


def tls_set_connect_server_id(ctx: MsgContext, srvid: str) -> int:
    """Use the client profile with ``server_id`` = ``srvid`` for the next TLS connection this
    worker opens ("" resets)."""
    _module().next_server_id = srvid or None
    return 1


def exports() -> list[KemiExport]:
    return [
        export(MODULE, "is_peer_verified", is_peer_verified, ""),
        export(MODULE, "tls_set_connect_server_id", tls_set_connect_server_id, "s"),
    ]


# ---- RPC commands ---------------------------------------------------------------------------
def rpc_list(core: Core, params: list[Any]) -> list[dict[str, Any]]:
    import time

    mod = _module()
    now = time.time()
    life = float(core.config.tcp_connection_lifetime)
    out = []
    for rec in mod.connections():
        out.append({
            "id": rec["id"], "timeout": max(0, int(life - (now - rec["opened"]))),
            "src_ip": rec["src_ip"], "src_port": rec["src_port"],
            "dst_ip": rec["dst_ip"], "dst_port": rec["dst_port"],
            "cipher": rec["cipher"] or "unknown", "ct_wq_size": 0, "enc_rd_buf": 0,
            "flags": 2 if rec.get("server_side") else 1, "state": "established"})
    return out


def rpc_info(core: Core, params: list[Any]) -> dict[str, Any]:
    return {"max_connections": core.config.tcp_max_connections,
            "opened_connections": len(_module().connections()),
            "clear_text_write_queued_bytes": 0}


def rpc_options(core: Core, params: list[Any]) -> dict[str, Any]:
    def p(name: str) -> Any:
        value = core.modparam(MODULE, name)
        return "<null string>" if value == "" else value

    return {
        "force_run": p("tls_force_run"), "method": p("tls_method"),
        "verify_certificate": p("verify_certificate"), "verify_depth": p("verify_depth"),
        "require_certificate": p("require_certificate"),
        "verify_client": core.modparam(MODULE, "verify_client") or "off",
        "private_key": p("private_key"), "ca_list": p("ca_list"),
        "certificate": p("certificate"), "cipher_list": p("cipher_list"),
        "session_cache": p("session_cache"), "session_id": p("session_id"),
        "config": p("config"), "log": p("tls_log"), "debug": p("tls_debug"),
        "connection_timeout": p("connection_timeout"),
        "disable_compression": p("tls_disable_compression"),
        "ssl_release_buffers": p("ssl_release_buffers"),
        "ssl_freelist_max": p("ssl_freelist_max_len"),
        "ssl_max_send_fragment": p("ssl_max_send_fragment"),
        "ssl_read_ahead": p("ssl_read_ahead"), "send_close_notify": p("send_close_notify"),
        "low_mem_threshold1": p("low_mem_threshold1"),
        "low_mem_threshold2": p("low_mem_threshold2"), "ct_wq_max": p("ct_wq_max"),
        "con_ct_wq_max": p("con_ct_wq_max"), "ct_wq_blk_size": p("ct_wq_blk_size"),
        "handshake_timeout": p("handshake_timeout"),
    }


def rpc_reload(core: Core, params: list[Any]) -> str:
    try:
        _module().reload()
    except ConfigError as exc:
        raise RpcFault(str(exc), 500) from None
    return "Ok. TLS configuration reloaded."


# ---- native cfg functions -------------------------------------------------------------------
def _cfg_server_id(ctx: MsgContext, srvid: str) -> int:
    text = ctx.core.pv.format(srvid)(ctx) if "$" in srvid else srvid
    return tls_set_connect_server_id(ctx, text)


# ---- hooks ----------------------------------------------------------------------------------
@hookimpl
def mod_register(core: Core) -> None:
    for name, kind, default in PROFILE_PARAMS + ACCEPTED_PARAMS:
        core.declare_param(MODULE, name, kind, default)
    core.declare_param(MODULE, "config", str, "",
                       doc="tls.cfg: the profiles file (or a directory of them)")
    core.declare_param(MODULE, "handshake_timeout", int, 10,
                       doc="kemi: seconds a TLS handshake may take before the connection is "
                           "dropped")
    core.add_rpc("tls.list", rpc_list, "List the open TLS connections")
    core.add_rpc("tls.info", rpc_info, "TLS connection counts")
    core.add_rpc("tls.options", rpc_options, "The tls module's settings")
    core.add_rpc("tls.reload", rpc_reload,
                 "Load the TLS configuration file again (new connections use it)")
    core.add_cfg_function(CfgFunction(MODULE, "is_peer_verified", is_peer_verified, 0, 0,
                                      doc="the peer's certificate verified"))
    core.add_cfg_function(CfgFunction(MODULE, "tls_set_connect_server_id", _cfg_server_id,
                                      1, 1, doc="client profile of the next connection"))


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return exports()


def _profile_defaults(core: Core) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, kind, _ in PROFILE_PARAMS:
        value = core.modparam(MODULE, name)
        if name in ("verify_certificate", "require_certificate"):
            out[name] = bool(value)
        elif kind is str:
            out[name] = value or None
        else:
            out[name] = value
    return out


@hookimpl
def mod_init(core: Core) -> None:
    if not core.config.enable_tls:
        log.warning("tls support is disabled (set enable_tls=1 in the config to enable it)")
        return
    method = str(core.modparam(MODULE, "tls_method"))
    check_method(method, *core.param_places.get((MODULE, "tls_method"), (None, None)))
    verify_client = str(core.modparam(MODULE, "verify_client"))
    if verify_client:  # as Kamailio: a value it does not know stops the start
        check_verify_client(verify_client,
                            *core.param_places.get((MODULE, "verify_client"), (None, None)))
    mod = TlsModule(core, _profile_defaults(core), str(core.modparam(MODULE, "config")),
                    float(core.modparam(MODULE, "handshake_timeout")))
    for prof in mod.contexts.profiles.all:
        if str(prof.get("tls_method") or "").lower() == "tlsv1":
            log.warning("tls: [%s] accepts TLSv1 (1.0) only (Kamailio's default method), which "
                        "OpenSSL 3 normally refuses: set tls_method / method = TLSv1.2+",
                        prof.name)
    mod.start_bookkeeping()
    register_pvs(core, mod)
    core.provide("tls", mod)
    _state.module = mod
