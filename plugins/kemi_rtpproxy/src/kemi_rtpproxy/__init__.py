"""rtpproxy.so: media relayed through an rtpproxy (Kamailio's rtpproxy module).

rtpproxy_offer / rtpproxy_answer create the proxy's session for each media stream (rtpproxy
control protocol over UDP or a unix socket, ``rtpproxy_sock``) and rewrite the SDP to the
proxy's address and ports; rtpproxy_destroy (unforce_rtp_proxy) deletes it; rtpproxy_manage
picks one of them from the message. Works with Sippy rtpproxy and with rtpengine's
rtpproxy-compatible control port (``--listen-udp``). An unreachable proxy is logged and
disabled for ``rtpproxy_disable_tout`` seconds; the functions then return their error code and
the call goes on as the script says, as with Kamailio. ``$rtpstat`` (``$rtppstat``), RPCs
``rtpproxy.list`` and ``rtpproxy.enable``.
"""

from __future__ import annotations

import logging
from typing import Any

from kemi_core.api import (
    CfgFunction,
    Core,
    KemiError,
    KemiExport,
    ModuleError,
    MsgContext,
    export,
    hookimpl,
    shared_store,
)
from kemi_rtpproxy import engage as eng
from kemi_rtpproxy.manage import OfferMemory, manage
from kemi_rtpproxy.nodes import Node, Transport, parse_sock_param
from kemi_rtpproxy.proxies import FOREVER, Proxies

log = logging.getLogger("kemi.rtpproxy")

MODULE = "rtpproxy"
SET_KEY = "rtpproxy.set"
OFFERS_TABLE = "rtpproxy:offers"

#: (name, kind, default, doc)
PARAMS: tuple[tuple[str, type, object, str], ...] = (
    ("rtpproxy_disable_tout", int, 60, "seconds a proxy that failed stays disabled"),
    ("rtpproxy_tout", int, 1, "seconds to wait for a reply before sending again"),
    ("rtpproxy_retr", int, 5, "how many times a command is sent"),
    ("nortpproxy_str", str, "a=nortpproxy:yes\r\n", "SDP line marking a body already done"),
    ("extra_id_pv", str, "", "variable appended to the Call-ID with flag b"),
    ("rtp_inst_pvar", str, "", "variable receiving the URL of the proxy used"),
    ("timeout_socket", str, "", "accepted; timeout notifications are not used"),
    ("ice_candidate_priority_avp", str, "", "accepted; no ICE relay candidates are added"),
    ("db_url", str, "", "not supported: sets come from rtpproxy_sock"),
    ("table_name", str, "rtpproxy", "accepted (with db_url)"),
)


class _State:
    engine: eng.Engine | None = None
    proxies: Proxies | None = None
    memory: OfferMemory | None = None
    tm_loaded = False


_state = _State()


def _engine() -> eng.Engine:
    if _state.engine is None:
        raise ModuleError("rtpproxy: no rtpproxy_sock is configured")
    return _state.engine


def _set_id(ctx: MsgContext) -> int:
    return int(ctx.mod_state.get(SET_KEY, 0))


# ---- KEMI functions -------------------------------------------------------------------------
def rtpproxy_manage(ctx: MsgContext, flags: str) -> int:
    """Offer, answer or delete as the message asks (INVITE/ACK with SDP, replies, BYE, CANCEL,
    failure route), with rtpproxy_offer's flags. 1 done, -1 error, -2 SDP already done
    (nortpproxy line), -3 no rtpproxy available."""
    return _manage(ctx, flags, "")


def rtpproxy_manage0(ctx: MsgContext) -> int:
    """rtpproxy_manage() with no flags."""
    return _manage(ctx, "", "")


def rtpproxy_manage_ip(ctx: MsgContext, flags: str, ip: str) -> int:
    """rtpproxy_manage() writing ``ip`` in the SDP instead of the proxy's address."""
    return _manage(ctx, flags, ip)


def _manage(ctx: MsgContext, flags: str, ip: str) -> int:
    if _state.engine is None or _state.memory is None:
        log.error("rtpproxy: no rtpproxy_sock is configured")
        return -1
    return manage(_state.engine, _state.memory, ctx, flags, ip, _state.tm_loaded, _set_id(ctx))


def rtpproxy_offer(ctx: MsgContext, flags: str) -> int:
    """Create the proxy's sessions for the SDP offer and rewrite it (flags: 1/2/3 Via branch in
    the Call-ID, a asymmetric, b extra id, l lookup only, i/e/x bridging, f ignore the
    nortpproxy mark, r trust the SDP address, o origin, c session c= line, w symmetric,
    zNN repacketize)."""
    return _engine().force(ctx, flags, "", offer=True, set_id=_set_id(ctx))


def rtpproxy_offer0(ctx: MsgContext) -> int:
    """rtpproxy_offer() with no flags."""
    return rtpproxy_offer(ctx, "")


def rtpproxy_offer_ip(ctx: MsgContext, flags: str, ip: str) -> int:
    """rtpproxy_offer() writing ``ip`` in the SDP instead of the proxy's address."""
    return _engine().force(ctx, flags, ip, offer=True, set_id=_set_id(ctx))


def rtpproxy_answer(ctx: MsgContext, flags: str) -> int:
    """Look up the proxy's sessions for the SDP answer and rewrite it (rtpproxy_offer's flags)."""
    return _engine().force(ctx, flags, "", offer=False, set_id=_set_id(ctx))


def rtpproxy_answer0(ctx: MsgContext) -> int:
    """rtpproxy_answer() with no flags."""
    return rtpproxy_answer(ctx, "")


def rtpproxy_answer_ip(ctx: MsgContext, flags: str, ip: str) -> int:
    """rtpproxy_answer() writing ``ip`` in the SDP instead of the proxy's address."""
    return _engine().force(ctx, flags, ip, offer=False, set_id=_set_id(ctx))


def rtpproxy_destroy(ctx: MsgContext, flags: str) -> int:
    """Delete the call's proxy sessions (flags: 1/2 Via branch, b extra id, t without To tag)."""
    return _engine().unforce(ctx, flags, _set_id(ctx))


def rtpproxy_destroy0(ctx: MsgContext) -> int:
    """rtpproxy_destroy() with no flags (unforce_rtp_proxy)."""
    return rtpproxy_destroy(ctx, "")


def set_rtpproxy_set(ctx: MsgContext, setid: int) -> int:
    """Use the proxies of set ``setid`` for this message's next commands."""
    if _state.proxies is None or setid not in _state.proxies.sets:
        log.error("rtpproxy: no set %d", setid)
        return -1
    ctx.mod_state[SET_KEY] = setid
    return 1


def start_recording(ctx: MsgContext) -> int:
    """Ask the proxy to record the call's media (Sippy rtpproxy's R command)."""
    return 1 if _engine().simple(ctx, "R", _set_id(ctx)) is not None else -1


def rtpproxy_stream2uac(ctx: MsgContext, prompt: str, count: int) -> int:
    """Play a prompt to the caller ``count`` times (-1: until stopped)."""
    return 1 if _engine().simple(ctx, "P", _set_id(ctx), prompt, count, True) else -1


def rtpproxy_stream2uas(ctx: MsgContext, prompt: str, count: int) -> int:
    """Play a prompt to the callee ``count`` times (-1: until stopped)."""
    return 1 if _engine().simple(ctx, "P", _set_id(ctx), prompt, count, False) else -1


def rtpproxy_stop_stream2uac(ctx: MsgContext) -> int:
    """Stop a prompt played to the caller."""
    return 1 if _engine().simple(ctx, "S", _set_id(ctx), True) else -1


def rtpproxy_stop_stream2uas(ctx: MsgContext) -> int:
    """Stop a prompt played to the callee."""
    return 1 if _engine().simple(ctx, "S", _set_id(ctx), False) else -1


def exports() -> list[KemiExport]:
    return [
        export(MODULE, "rtpproxy_manage0", rtpproxy_manage0, ""),
        export(MODULE, "rtpproxy_manage", rtpproxy_manage, "s"),
        export(MODULE, "rtpproxy_manage_ip", rtpproxy_manage_ip, "ss"),
        export(MODULE, "set_rtpproxy_set", set_rtpproxy_set, "i"),
        export(MODULE, "rtpproxy_destroy0", rtpproxy_destroy0, ""),
        export(MODULE, "rtpproxy_destroy", rtpproxy_destroy, "s"),
        export(MODULE, "start_recording", start_recording, ""),
        export(MODULE, "rtpproxy_offer0", rtpproxy_offer0, ""),
        export(MODULE, "rtpproxy_offer", rtpproxy_offer, "s"),
        export(MODULE, "rtpproxy_offer_ip", rtpproxy_offer_ip, "ss"),
        export(MODULE, "rtpproxy_answer0", rtpproxy_answer0, ""),
        export(MODULE, "rtpproxy_answer", rtpproxy_answer, "s"),
        export(MODULE, "rtpproxy_answer_ip", rtpproxy_answer_ip, "ss"),
        export(MODULE, "rtpproxy_stream2uac", rtpproxy_stream2uac, "si"),
        export(MODULE, "rtpproxy_stream2uas", rtpproxy_stream2uas, "si"),
        export(MODULE, "rtpproxy_stop_stream2uac", rtpproxy_stop_stream2uac, ""),
        export(MODULE, "rtpproxy_stop_stream2uas", rtpproxy_stop_stream2uas, ""),
    ]


# ---- native cfg functions ----------------------------------------------------------------------
def _fmt(ctx: MsgContext, text: str) -> str:
    return ctx.core.pv.format(text)(ctx) if "$" in text else text


def _cfg_set(ctx: MsgContext, setid: str) -> int:
    value = _fmt(ctx, setid).strip()
    return set_rtpproxy_set(ctx, int(value)) if value.lstrip("-").isdigit() else -1


def _cfg(kind: str) -> Any:
    def call(ctx: MsgContext, flags: str = "", ip: str = "") -> int:
        flags, ip = _fmt(ctx, flags), _fmt(ctx, ip)
        if kind == "manage":
            return _manage(ctx, flags, ip)
        if _state.engine is None:
            log.error("rtpproxy: no rtpproxy_sock is configured")
            return -1
        if kind == "destroy":
            return _state.engine.unforce(ctx, flags, _set_id(ctx))
        return _state.engine.force(ctx, flags, ip, offer=kind == "offer", set_id=_set_id(ctx))

    return call


def _cfg_stream(uac: bool) -> Any:
    def call(ctx: MsgContext, prompt: str, count: str) -> int:
        value = _fmt(ctx, count).strip()
        n = int(value) if value.lstrip("-").isdigit() else 1
        fn = rtpproxy_stream2uac if uac else rtpproxy_stream2uas
        return fn(ctx, _fmt(ctx, prompt), n)

    return call


CFG_FUNCTIONS: tuple[tuple[str, Any, int, int], ...] = (
    ("rtpproxy_manage", _cfg("manage"), 0, 2),
    ("rtpproxy_offer", _cfg("offer"), 0, 2),
    ("rtpproxy_answer", _cfg("answer"), 0, 2),
    ("rtpproxy_destroy", _cfg("destroy"), 0, 1),
    ("unforce_rtp_proxy", _cfg("destroy"), 0, 1),
    ("set_rtp_proxy_set", _cfg_set, 1, 1),
    ("start_recording", start_recording, 0, 0),
    ("rtpproxy_stream2uac", _cfg_stream(True), 2, 2),
    ("rtpproxy_stream2uas", _cfg_stream(False), 2, 2),
    ("rtpproxy_stop_stream2uac", rtpproxy_stop_stream2uac, 0, 0),
    ("rtpproxy_stop_stream2uas", rtpproxy_stop_stream2uas, 0, 0),
)


def rtpstat(ctx: MsgContext) -> str | None:
    """$rtpstat: the proxy's statistics of this call (its reply to Q), $null without a proxy."""
    if _state.engine is None:
        return None
    return _state.engine.simple(ctx, "Q", _set_id(ctx))


# ---- hooks ---------------------------------------------------------------------------------------
@hookimpl
def mod_register(core: Core) -> None:
    for name, kind, default, doc in PARAMS:
        core.declare_param(MODULE, name, kind, default, doc=doc)
    core.declare_param(MODULE, "rtpproxy_sock", str, multi=True,
                       doc="proxies: [set ==] udp:host:port | udp6:host:port | unix:/path[=weight]")
    for name, func, lo, hi in CFG_FUNCTIONS:
        core.add_cfg_function(CfgFunction(MODULE, name, func, lo, hi))
    for pv in ("rtpstat", "rtppstat"):
        core.pv.register(pv, rtpstat, doc="the rtpproxy's statistics of this call (Q)")
    core.add_rpc("rtpproxy.list", _rpc_list, "List the rtpproxies: set, URL, state, weight")
    core.add_rpc("rtpproxy.enable", _rpc_enable,
                 "Enable (1) or disable (0) the rtpproxy with this URL")


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return exports()


@hookimpl
def mod_init(core: Core) -> None:
    param = lambda name: core.modparam(MODULE, name)  # noqa: E731
    if str(param("db_url")):
        raise ModuleError("rtpproxy: loading the sets from a database (db_url) is not "
                          "supported; list the proxies with rtpproxy_sock")
    sets: dict[int, list[Node]] = {}
    for value in param("rtpproxy_sock"):
        for node in parse_sock_param(str(value)):
            sets.setdefault(node.set_id, []).append(node)
    _state.tm_loaded = "tm" in core.loaded_modules
    if not sets:
        log.warning("rtpproxy: no rtpproxy_sock: the module is disabled")
        return
    transport = Transport(float(param("rtpproxy_tout")), int(param("rtpproxy_retr")))
    _state.proxies = Proxies(core, sets, transport, float(param("rtpproxy_disable_tout")))
    _state.memory = OfferMemory(shared_store(core).table(OFFERS_TABLE))
    _state.engine = eng.Engine(_state.proxies, eng.Settings(
        nortpproxy_str=str(param("nortpproxy_str")), extra_id_pv=str(param("extra_id_pv")),
        rtp_inst_pvar=str(param("rtp_inst_pvar"))))


@hookimpl
def child_init(rank: int) -> None:
    if _state.proxies is not None and rank > 0:
        _state.proxies.test_all()


@hookimpl
def mod_destroy() -> None:
    if _state.proxies is not None:
        for node in _state.proxies.nodes():
            Transport.close(node)


def _rpc_list(core: Core, params: list[Any]) -> list[dict[str, Any]]:
    proxies = _state.proxies
    if proxies is None:
        return []
    out: list[dict[str, Any]] = []
    for node in proxies.nodes():
        st = proxies.disabled(node)
        recheck = 0 if st is None or st["recheck"] == FOREVER else int(st["recheck"])
        out.append({"setid": node.set_id, "url": node.url, "index": len(out),
                    "disabled": int(st is not None), "weight": node.weight,
                    "recheck": recheck})
    return out


def _rpc_enable(core: Core, params: list[Any]) -> dict[str, Any]:
    if len(params) < 2:
        raise KemiError("Missing parameters")
    url = str(params[0])
    try:
        on = int(str(params[1])) != 0
    except ValueError:
        raise KemiError("Invalid parameter")
    proxies = _state.proxies
    found = [n for n in proxies.nodes() if n.url == url] if proxies is not None else []
    if not found or proxies is None:
        raise KemiError("RTPProxy not found")
    for node in found:
        if on:
            proxies.enable(node)
        else:
            proxies.disable(node, until=FOREVER)
    return {}
