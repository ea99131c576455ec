"""Stateless forwarding (KSR.forward, KSR.forward_uri) and the transport knobs that shape what
goes out: force_rport, add_local_rport, set_advertised_*, tcp aliases, close/no-connect flags,
set_drop."""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import socket
from typing import TYPE_CHECKING

from kemi_core.core_exports.log import script_log
from kemi_core.kemi.exports import KemiExport, ReturnKind, export
from kemi_core.pv._util import parse_uri_or_none, safe
from kemi_core.sip.errors import SipParseError

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext
    from kemi_core.sip.message import SipMsg
    from kemi_core.sip.uri import SipUri

MAGIC_COOKIE = "z9hG4bK"
#: what a lazy-parse accessor may raise on a malformed part (as pv's ``safe`` catches)
_PARSE_ERRORS = (SipParseError, AttributeError, ValueError, TypeError, IndexError, KeyError)
_STREAM_PROTOS = ("tcp", "tls", "ws", "wss")


def resolve_host(host: str) -> str | None:
    """IP literals and "localhost" only: kemi does no DNS (no SRV/NAPTR, no A lookups)."""
    host = host.strip("[]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if host.lower() != "localhost":
        return None
    try:
        infos = socket.getaddrinfo("localhost", None, type=socket.SOCK_DGRAM)
    except OSError:
        return None
    for family in (socket.AF_INET, socket.AF_INET6):
        for info in infos:
            if info[0] == family:
                return str(info[4][0])
    return None


def target_of(uri: SipUri) -> tuple[str, str, int] | None:
    """(proto, ip, port) to send to for a next-hop URI, or None when it cannot be resolved."""
    proto = uri.transport or ("tls" if uri.scheme == "sips" else "udp")
    ip = resolve_host(uri.host) if uri.host else None
    if ip is None:
        return None
    port = uri.port if uri.port is not None else (5061 if proto == "tls" else 5060)
    return proto, ip, port


@functools.lru_cache(maxsize=256)
def _target_of_text(target_uri: str) -> tuple[str, str, int] | None:
    """``target_of`` a URI text; scripts forward to a handful of $du values, parsed once."""
    uri = parse_uri_or_none(target_uri)
    return target_of(uri) if uri is not None else None


def stateless_branch(msg: SipMsg) -> str:
    """A branch that is the same for retransmissions (and for a CANCEL of the INVITE), but
    different for different requests (RFC 3261 16.11)."""
    try:
        via = msg.via
    except _PARSE_ERRORS:
        via = None
    top_branch = via.branch if via is not None else None
    if top_branch and top_branch.startswith(MAGIC_COOKIE):
        seed = f"{top_branch}|{via.host}|{via.port}"  # type: ignore[union-attr]
    else:
        cseq = safe(lambda: msg.cseq)
        seed = "|".join(str(x) for x in (
            safe(lambda: msg.to.tag), safe(lambda: msg.from_.tag), safe(lambda: msg.call_id),
            msg.ruri, via.raw if via is not None else "", cseq.number if cseq else ""))
    return MAGIC_COOKIE + hashlib.md5(seed.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def received_via(ctx: MsgContext, msg: SipMsg) -> str | None:
    """The top Via of ``msg`` with ;received (sent-by differs from the source IP, RFC 3261
    18.2.1) and ;rport= (RFC 3581, or force_rport) added, or None when it needs neither.
    Computed once per request and applied to each copy sent on (``apply_via``)."""
    try:
        via = msg.via
    except _PARSE_ERRORS:
        return None
    src_ip = ctx.rcv.src_ip
    raw = via.raw
    changed = False
    if via.received is None and via.host.strip("[]") != src_ip:
        raw += f";received={src_ip}"
        changed = True
    rport = via.rport
    if rport is True or (ctx.force_rport and "rport" not in via.params):
        if rport is True:
            raw = _fill_rport(raw, ctx.rcv.src_port)
        else:
            raw += f";rport={ctx.rcv.src_port}"
        changed = True
    return raw if changed else None


def apply_via(msg: SipMsg, raw: str | None) -> None:
    """Replace the top Via of ``msg`` by ``raw`` (from ``received_via``; None: unchanged)."""
    if raw is not None:
        msg.pop_via()
        msg.prepend_via(raw)


def stamp_received(ctx: MsgContext, msg: SipMsg, source: SipMsg | None = None) -> None:
    """Add ;received and ;rport= to the top Via of ``msg`` before it is sent on (see
    ``received_via``); ``source``: the message ``msg`` was just copied from, whose Via is
    parsed already."""
    apply_via(msg, received_via(ctx, source if source is not None else msg))


def _fill_rport(raw: str, port: int) -> str:
    """Give a value to a bare ;rport parameter."""
    parts = raw.split(";")
    return ";".join(f"{p}={port}" if p.strip().lower() == "rport" else p for p in parts)


def _our_via(ctx: MsgContext, proto: str, branch: str) -> str:
    host, port = ctx.core.local_address(proto)
    host = str(ctx.extra.get("advertised_address") or host)
    port = int(ctx.extra.get("advertised_port") or port)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    via = f"SIP/2.0/{proto.upper()} {host}:{port};branch={branch}"
    return via + ";rport" if ctx.extra.get("add_local_rport") else via


def forward_to(ctx: MsgContext, target_uri: str) -> int:
    """Send the request statelessly to ``target_uri`` (1 on success, -1 on failure)."""
    if not ctx.msg.is_request:
        script_log.error("forward: only requests can be forwarded by the script")
        return -1
    target = _target_of_text(target_uri)
    if target is None:
        script_log.error("forward - bad_uri dropping packet: %r", target_uri)
        return -1
    proto, ip, port = target
    if proto not in ("udp", "tcp"):
        script_log.error("forward: transport %s is not supported", proto)
        return -1
    out = ctx.msg.copy()
    stamp_received(ctx, out, ctx.msg)
    out.prepend_via(_our_via(ctx, proto, stateless_branch(ctx.msg)))
    # Max-Forwards is left alone, as Kamailio's core does: decrementing it is maxfwd's job
    # (KSR.maxfwd.process_maxfwd), and doing it twice would cost a hop per proxy.
    if not ctx.core.run_onsend(out, ctx.rcv, proto, ip, port):
        return 1  # dropped by onsend_route: handled, as in Kamailio
    stats = ctx.core.stats
    if not ctx.core.send(proto, ip, port, out.to_bytes()):
        script_log.error("forward: sending to %s:%s:%d failed", proto, ip, port)
        if stats is not None:
            stats.err_requests.inc()
        return -1
    if stats is not None:
        stats.fwd_requests.inc()
    return 1


def forward(ctx: MsgContext) -> int:
    """Forward statelessly to $du, or to the R-URI when $du is not set."""
    return forward_to(ctx, ctx.dst_uri or ctx.msg.ruri)


def forward_uri(ctx: MsgContext, uri: str) -> int:
    """Forward statelessly to the address in ``uri``."""
    return forward_to(ctx, uri)


def force_rport(ctx: MsgContext) -> bool:
    """Reply to the source port (as if the top Via had ;rport)."""
    ctx.force_rport = True
    return True


def add_local_rport(ctx: MsgContext) -> bool:
    """Add ;rport to the Via this server adds."""
    ctx.extra["add_local_rport"] = True
    return True


def _flag_setter(key: str, doc: str):  # type: ignore[no-untyped-def]
    def set_flag(ctx: MsgContext) -> bool:
        ctx.extra[key] = True
        return True
    set_flag.__doc__ = doc
    return set_flag


def set_advertised_address(ctx: MsgContext, addr: str) -> int:
    """Host or IP to name in the Via (and Record-Route) of what this message makes."""
    if not addr:
        script_log.error("set_advertised_address: invalid addr parameter")
        return -1
    ctx.extra["advertised_address"] = addr
    return 1


def set_advertised_port(ctx: MsgContext, port: str) -> int:
    """Port (given as a string) to name in the Via of what this message makes."""
    try:
        value = int(port)
    except ValueError:
        value = 0
    if not 0 < value < 65536:
        script_log.error("set_advertised_port: invalid port parameter %r", port)
        return -1
    ctx.extra["advertised_port"] = value
    return 1


def add_tcp_alias(ctx: MsgContext, port: int) -> int:
    """Send what goes to ``port`` at the source address over this TCP connection."""
    if ctx.rcv.proto not in _STREAM_PROTOS or not 0 < port < 65536:
        script_log.error("adding tcp alias failed (proto %s, port %d)", ctx.rcv.proto, port)
        return -1
    aliases = ctx.extra.setdefault("tcp_aliases", [])
    if port not in aliases:
        aliases.append(port)
    return 1


def add_tcp_alias_via(ctx: MsgContext) -> int:
    """add_tcp_alias with the port of the top Via."""
    via = safe(lambda: ctx.msg.via)
    if via is None:
        return -1
    return add_tcp_alias(ctx, via.port or 5060)


def set_drop(ctx: MsgContext) -> None:
    """Mark the message dropped: not sent on when the script ends (the script goes on)."""
    ctx.dropped = True


def exports() -> list[KemiExport]:
    b, i = ReturnKind.BOOL, ReturnKind.INT
    return [
        export("", "forward", forward, "", i),
        export("", "forward_uri", forward_uri, "s", i),
        export("", "force_rport", force_rport, "", b),
        export("", "add_local_rport", add_local_rport, "", b),
        export("", "set_forward_close", _flag_setter(
            "forward_close", "Close the connection after forwarding."), "", b),
        export("", "set_forward_no_connect", _flag_setter(
            "forward_no_connect", "Forward only over an existing connection."), "", b),
        export("", "set_reply_close", _flag_setter(
            "reply_close", "Close the connection after sending the reply."), "", b),
        export("", "set_reply_no_connect", _flag_setter(
            "reply_no_connect", "Reply only over an existing connection."), "", b),
        export("", "set_advertised_address", set_advertised_address, "s", i),
        export("", "set_advertised_port", set_advertised_port, "s", i),
        export("", "add_tcp_alias", add_tcp_alias, "i", i),
        export("", "add_tcp_alias_via", add_tcp_alias_via, "", i),
        export("", "set_drop", set_drop, "", ReturnKind.NONE),
    ]
