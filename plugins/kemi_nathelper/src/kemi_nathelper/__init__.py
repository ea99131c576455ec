"""nathelper.so: NAT traversal helpers (Kamailio's nathelper module).

Detection (``nat_uac_test``), Contact fixes for UAs behind NAT (``fix_nated_contact``,
``set_contact_alias``, ``add_contact_alias``, ``handle_ruri_alias``, ``add_rcv_param``), the
received URI registrar stores (``fix_nated_register`` with ``received_avp``), SDP fixes
(``fix_nated_sdp``) and keepalive pings to registered contacts behind NAT (``natping_interval``;
SIP requests for contacts with ``sipping_bflag``, else 4-byte UDP packets), sent once per server
from worker 1 with the contacts read from usrloc's shared store. ``$rr_count`` and
``$rr_top_count``; RPC ``nathelper.enable_ping``.
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
from kemi_core.sip import SipParseError
from kemi_nathelper import contact, detect, sdpfix
from kemi_nathelper.pinger import ContactSource, Pinger, PingSettings, parse_socket

log = logging.getLogger("kemi.nathelper")

MODULE = "nathelper"

#: (name, kind, default, doc)
PARAMS: tuple[tuple[str, type, object, str], ...] = (
    ("natping_interval", int, 0, "seconds between two pings of a contact (0: no pings)"),
    ("ping_nated_only", int, 0, "ping only contacts with usrloc's nat_bflag"),
    ("natping_processes", int, 1, "accepted: one process (worker 1) sends every ping"),
    ("natping_socket", str, "", "accepted; pings leave from the contact's own socket"),
    ("force_socket", str, "", "socket the pings leave from (proto:ip:port)"),
    ("received_avp", str, "", "AVP fix_nated_register stores the received URI in"),
    ("sipping_bflag", int, -1, "branch flag: ping this contact with a SIP request"),
    ("sipping_from", str, "", "From URI of SIP pings (SIP pings need it)"),
    ("sipping_method", str, "OPTIONS", "method of SIP pings"),
    ("natping_disable_bflag", int, -1, "branch flag: never ping this contact"),
    ("nortpproxy_str", str, "a=nortpproxy:yes\r\n", "SDP line marking a fixed body"),
    ("keepalive_timeout", int, 0, "accepted; contacts are not removed for unanswered pings"),
    ("udpping_from_path", int, 0, "accepted; pings go to the first Path hop"),
    ("append_sdp_oldmediaip", int, 1, "fix_nated_sdp adds a=oldmediaip lines"),
    ("filter_server_id", int, 0, "accepted"),
    ("nat_addr_mode", int, 1, "1: 192.0.0.0/24 counts as private too"),
    ("alias_name", str, "alias", "Contact URI parameter of set_contact_alias"),
)


class _State:
    pinger: Pinger | None = None
    core: Core | None = None


_state = _State()
PING_TABLE = "nathelper:ping"


# ---- KEMI functions -------------------------------------------------------------------------
#: the export is detect's function itself: a script calls it per message, often more than once
nat_uac_test = detect.nat_uac_test


def fix_nated_contact(ctx: MsgContext) -> int:
    """Rewrite the first Contact URI's host:port to the source address: 1, -1 no Contact."""
    return contact.fix_nated_contact(ctx)


def fix_nated_register(ctx: MsgContext) -> int:
    """Store ``sip:src_ip:src_port`` in ``received_avp`` for registrar's save()."""
    return contact.fix_nated_register(ctx)


def set_contact_alias(ctx: MsgContext) -> int:
    """Add ``;alias=src_ip~src_port~proto`` to the first Contact URI."""
    return contact.set_contact_alias(ctx)


def set_contact_alias_trim(ctx: MsgContext) -> int:
    """set_contact_alias() after removing an ``;alias`` already in the Contact URI."""
    return contact.set_contact_alias(ctx, trim=1)


def add_contact_alias(ctx: MsgContext) -> int:
    """Add ``;alias`` with the source address when it differs from the Contact URI (1 added,
    2 not needed, -1 error)."""
    return contact.add_contact_alias(ctx)


def add_contact_alias_addr(ctx: MsgContext, ip: str, port: str, proto: str) -> int:
    """Add ``;alias=ip~port~proto`` (proto udp, tcp, tls, sctp, ws, wss) to the Contact URI."""
    return contact.add_contact_alias_addr(ctx, ip, port, proto)


def handle_ruri_alias(ctx: MsgContext) -> int:
    """Send to the R-URI's first ``;alias`` address ($du) and remove it from the R-URI:
    1 done, 2 no alias, -1 error."""
    return contact.handle_ruri_alias(ctx, 0)


def handle_ruri_alias_mode(ctx: MsgContext, mode: int) -> int:
    """handle_ruri_alias() on the first (mode 0) or the last alias parameter."""
    return contact.handle_ruri_alias(ctx, mode)


def is_rfc1918(ctx: MsgContext, ip: str) -> int:
    """1 when ``ip`` is a private (RFC 1918 / RFC 6598) address, else -1."""
    return detect.is_rfc1918(ctx, ip)


def add_rcv_param(ctx: MsgContext, flag: int) -> int:
    """Add ``received="sip:src_ip:src_port"`` to the Contacts: header parameter (flag 0) or
    Contact URI parameter (flag not 0)."""
    return contact.add_rcv_param(ctx, flag)


def fix_nated_sdp(ctx: MsgContext, flags: int) -> int:
    """Rewrite the SDP for NAT (0x01 direction:active, 0x02 c= addresses, 0x04 nortpproxy
    line, 0x08 o= address) with the source IP: 1 replaced, 2 nothing replaced, -1 error."""
    return sdpfix.fix_nated_sdp(ctx, flags)


def fix_nated_sdp_ip(ctx: MsgContext, flags: int, ip: str) -> int:
    """fix_nated_sdp() with ``ip`` instead of the source IP."""
    return sdpfix.fix_nated_sdp(ctx, flags, ip)


def set_alias_to_pv(ctx: MsgContext, pvname: str) -> int:
    """Write the first Contact's ``;alias`` address as a SIP URI into ``pvname``."""
    return contact.set_alias_to_pv(ctx, pvname)


def exports() -> list[KemiExport]:
    return [
        export(MODULE, "nat_uac_test", nat_uac_test, "i"),
        export(MODULE, "fix_nated_contact", fix_nated_contact, ""),
        export(MODULE, "fix_nated_register", fix_nated_register, ""),
        export(MODULE, "set_contact_alias", set_contact_alias, ""),
        export(MODULE, "set_contact_alias_trim", set_contact_alias_trim, ""),
        export(MODULE, "handle_ruri_alias", handle_ruri_alias, ""),
        export(MODULE, "handle_ruri_alias_mode", handle_ruri_alias_mode, "i"),
        export(MODULE, "is_rfc1918", is_rfc1918, "s"),
        export(MODULE, "add_contact_alias", add_contact_alias, ""),
        export(MODULE, "add_contact_alias_addr", add_contact_alias_addr, "sss"),
        export(MODULE, "add_rcv_param", add_rcv_param, "i"),
        export(MODULE, "fix_nated_sdp", fix_nated_sdp, "i"),
        export(MODULE, "fix_nated_sdp_ip", fix_nated_sdp_ip, "is"),
        export(MODULE, "set_alias_to_pv", set_alias_to_pv, "s"),
    ]


# ---- native cfg functions (string arguments may hold variables) ------------------------------
def _fmt(ctx: MsgContext, text: str) -> str:
    return ctx.core.pv.format(text)(ctx) if "$" in text else text


def _int(ctx: MsgContext, text: str | int) -> int:
    if isinstance(text, int):
        return text
    value = _fmt(ctx, text).strip()
    try:
        return int(value, 0)
    except ValueError:
        log.error("nathelper: %r is not a number", value)
        return 0


def _cfg_add_contact_alias(ctx: MsgContext, *args: str) -> int:
    if not args:
        return contact.add_contact_alias(ctx)
    if len(args) != 3:
        log.error("add_contact_alias: takes no parameter or ip, port and proto")
        return -1
    ip, port, proto = (_fmt(ctx, a) for a in args)
    return contact.add_contact_alias_addr(ctx, ip, port, proto)


CFG_FUNCTIONS: tuple[tuple[str, Any, int, int], ...] = (
    ("nat_uac_test", lambda ctx, flags: detect.nat_uac_test(ctx, _int(ctx, flags)), 1, 1),
    ("fix_nated_contact", contact.fix_nated_contact, 0, 0),
    ("fix_nated_register", contact.fix_nated_register, 0, 0),
    ("set_contact_alias", lambda ctx, trim="0": contact.set_contact_alias(ctx, _int(ctx, trim)),
     0, 1),
    ("add_contact_alias", _cfg_add_contact_alias, 0, 3),
    ("handle_ruri_alias", lambda ctx, mode="0": contact.handle_ruri_alias(ctx, _int(ctx, mode)),
     0, 1),
    ("is_rfc1918", lambda ctx, ip: detect.is_rfc1918(ctx, _fmt(ctx, ip)), 1, 1),
    ("add_rcv_param", lambda ctx, flag="0": contact.add_rcv_param(ctx, _int(ctx, flag)), 0, 1),
    ("fix_nated_sdp", lambda ctx, flags, ip="": sdpfix.fix_nated_sdp(ctx, _int(ctx, flags),
                                                                     _fmt(ctx, ip)), 1, 2),
    ("set_alias_to_pv", lambda ctx, pv: contact.set_alias_to_pv(ctx, pv), 1, 1),
)


# ---- pseudo-variables ---------------------------------------------------------------------------
def rr_count(ctx: MsgContext) -> int:
    """$rr_count: the number of Record-Route entries of the message."""
    try:
        return len(ctx.msg.record_routes)
    except SipParseError:
        return 0


def rr_top_count(ctx: MsgContext) -> int:
    """$rr_top_count: 2 when the top Record-Route is a double one (;r2=on), 1 single, 0 none."""
    try:
        rrs = ctx.msg.record_routes
    except SipParseError:
        return 0
    if not rrs:
        return 0
    uri = rrs[0].uri
    return 2 if uri is not None and "r2" in uri.params else 1


# ---- hooks ----------------------------------------------------------------------------------------
@hookimpl
def mod_register(core: Core) -> None:
    for name, kind, default, doc in PARAMS:
        core.declare_param(MODULE, name, kind, default, doc=doc)
    for name, func, lo, hi in CFG_FUNCTIONS:
        core.add_cfg_function(CfgFunction(MODULE, name, func, lo, hi))
    core.pv.register("rr_count", rr_count, doc="number of Record-Route entries")
    core.pv.register("rr_top_count", rr_top_count,
                     doc="2 when the top Record-Route is double, 1 single, 0 none")
    core.add_rpc("nathelper.enable_ping", _rpc_enable_ping,
                 "Enable (1) or disable (0) the NAT keepalive pings")


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return exports()


@hookimpl
def mod_init(core: Core) -> None:
    param = lambda name: core.modparam(MODULE, name)  # noqa: E731
    detect.settings.nat_addr_mode = int(param("nat_addr_mode"))
    contact.settings.received_avp = str(param("received_avp"))
    contact.settings.alias_name = str(param("alias_name")) or "alias"
    sdpfix.settings.nortpproxy_str = str(param("nortpproxy_str"))
    sdpfix.settings.append_sdp_oldmediaip = int(param("append_sdp_oldmediaip"))
    _state.core = core
    interval = int(param("natping_interval"))
    if interval <= 0:
        return
    if "usrloc" not in core.loaded_modules:
        raise ModuleError("nathelper: natping_interval needs usrloc: loadmodule \"usrloc.so\"")
    force = str(param("force_socket"))
    if force and parse_socket(force) is None:
        raise ModuleError(f"nathelper: bad force_socket {force!r} (proto:ip:port)")
    method = str(param("sipping_method")).strip().upper() or "OPTIONS"
    settings = PingSettings(
        interval=interval, nated_only=bool(int(param("ping_nated_only"))),
        sipping_from=str(param("sipping_from")).strip(), sipping_method=method,
        sipping_mask=_mask(int(param("sipping_bflag"))),
        disable_mask=_mask(int(param("natping_disable_bflag"))),
        force_socket=parse_socket(force))
    shared_store(core).table(PING_TABLE)  # made before the fork, for the RPC and worker 1
    _state.pinger = Pinger(core, _NoContacts(), settings)
    core.add_reply_handler(_consume_ping_reply)


@hookimpl
def child_init(core: Core, rank: int) -> None:
    pinger = _state.pinger
    if pinger is None or rank != 1:
        return
    found = core.service("usrloc", ContactSource)
    if found is None:
        log.error("nathelper: usrloc offers no contacts: no NAT pings")
        return
    pinger.usrloc = found
    table = shared_store(core).table(PING_TABLE)

    def tick() -> None:
        pinger.enabled = bool(table.get("enabled", True))
        pinger.run_once()

    core.clock.call_every(1.0, tick)


def _mask(flag: int) -> int:
    return 1 << flag if 0 <= flag < 32 else 0


class _NoContacts:
    nat_bflag_mask = 0

    def get_all_contacts(self, flags: int = 0, part_idx: int = 0, part_max: int = 1,
                         now: float | None = None) -> list[Any]:
        return []


def _consume_ping_reply(ctx: MsgContext) -> bool:
    pinger = _state.pinger
    return pinger is not None and pinger.is_our_reply(ctx)


def _rpc_enable_ping(core: Core, params: list[Any]) -> dict[str, Any]:
    if not params:
        raise KemiError("Not enough parameters")
    try:
        value = int(str(params[0]))
    except ValueError:
        raise KemiError("Invalid parameter")
    if _state.pinger is None:
        raise KemiError("NAT pinging is not configured (natping_interval is 0)")
    shared_store(core).table(PING_TABLE).put("enabled", value != 0)
    return {}
