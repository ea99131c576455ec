"""Where a message goes: reply routing (RFC 3261 18.2.2, RFC 3581) and request next hops.

Addresses come out as ``(proto, host, port)``; a request's next hop names a host that may still
need resolving (``Resolver``), a reply's destination names what the Via says (``;received``
when the previous hop was stamped, else its sent-by host).
"""

from __future__ import annotations

import functools
import ipaddress
from typing import TYPE_CHECKING

from kemi_core.forwarding.mhomed import mhomed_local
from kemi_core.sip.errors import SipParseError
from kemi_core.sip.uri import parse_uri

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext
    from kemi_core.runtime.core import Core
    from kemi_core.sip.values import Via
    from kemi_core.transport.receiver import RecvInfo

DEFAULT_PORT = {"udp": 5060, "tcp": 5060, "tls": 5061, "ws": 80, "wss": 443, "sctp": 5060}
#: the transport a sips: URI's transport parameter comes to (TLS over TCP, WSS over WS)
SECURE = {"tcp": "tls", "tls": "tls", "ws": "wss", "wss": "wss"}
Target = tuple[str, str, int]


def reply_destination(via: Via, rcv: RecvInfo, force_rport: bool = False) -> Target:
    """(proto, host, port) for a reply to a request that arrived with top Via ``via``.

    Over TCP the reply goes back on the connection it came from. Over UDP it goes to the
    source address (the implicit "received"), to the source port when the client asked for
    rport (or the script forced it), else to the port in sent-by. Any ;rport counts, a value
    that is no port too (as in Kamailio 5.6: the reply still goes back).
    """
    if rcv.proto != "udp":
        return rcv.proto, rcv.src_ip, rcv.src_port
    if force_rport or "rport" in via.params:
        return "udp", rcv.src_ip, rcv.src_port
    return "udp", rcv.src_ip, via.port or 5060


def via_reply_destination(via: Via) -> Target:
    """(proto, host, port) to forward a reply to, read from the Via the previous hop put there
    (the host may be a name: resolve it before sending)."""
    proto = via.transport.lower()
    host = via.received or via.host
    rport = via.rport
    port = rport if type(rport) is int else None
    if port is None:
        port = via.port or DEFAULT_PORT.get(proto, 5060)
    return proto, host, port


@functools.lru_cache(maxsize=1024)
def uri_target(uri: str) -> Target | None:
    """(proto, host, port) of the next hop a SIP URI names ($du or R-URI), the host as
    written (unresolved); None when the text is no usable URI. Follows RFC 3263 for the cases
    without NAPTR/SRV: the transport parameter (default UDP, TLS for sips), the explicit port
    or the transport's default. Scripts send to a handful of URIs: each is parsed once."""
    try:
        parsed = parse_uri(uri)
    except (SipParseError, ValueError):
        return None
    if not parsed.host:
        return None
    proto = (parsed.params.get("transport") or ("tls" if parsed.scheme == "sips" else "udp"))
    proto = proto.lower()
    if parsed.scheme == "sips":  # secure whatever the transport says (RFC 3261 26.2.2)
        secure = SECURE.get(proto)
        if secure is None:
            return None  # sips over UDP does not exist
        proto = secure
    return proto, parsed.host, parsed.port or DEFAULT_PORT.get(proto, 5060)


def uri_destination(uri: str) -> Target | None:
    """(proto, ip, port) of the next hop named by a SIP URI when its address is known now (an
    IP literal, a cached name), else None. A name not cached yet starts its lookup and gives
    None this time (the event loop is never blocked): a sender that must wait for the answer
    uses ``kemi_core.forwarding.send_to`` instead."""
    from kemi_core.forwarding.resolver import RESOLVER

    target = uri_target(uri)
    if target is None:
        return None
    ip = RESOLVER.resolve(target[1])
    return (target[0], ip, target[2]) if ip is not None else None


def listen_for(core: Core, proto: str) -> tuple[str, int] | None:
    """The first listen socket of ``proto`` (where stateless replies leave from)."""
    for lst in core.config.listen:
        if lst.proto == proto:
            return (lst.host, lst.port)
    return None


#: the listen transport a send over ``proto`` leaves from (WebSockets over their streams; the
#: transport's LISTEN_PROTO)
LISTEN_OF = {"ws": "tcp", "wss": "tls"}
#: the transports a socket text ("proto:host:port") may start with
SOCKET_PROTOS = ("udp", "tcp", "tls", "sctp", "ws", "wss")


@functools.lru_cache(maxsize=64)
def parse_socket(spec: str) -> Target | None:
    """``proto:host:port`` (also ``proto:[v6]:port``, ``host:port`` and ``host``; the
    transport UDP and the port 5060 when not given) as Kamailio writes a socket ($fs,
    force_send_socket, set_send_socket): its parts, None when it is not one."""
    text = spec.strip()
    proto = "udp"
    head, sep, rest = text.partition(":")
    if sep and head.lower() in SOCKET_PROTOS:
        proto, text = head.lower(), rest
    if text.startswith("["):
        host, _, tail = text[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    try:
        port = int(port_text) if port_text else 5060
    except ValueError:
        return None
    return (proto, host, port) if host else None


def forced_local(core: Core, proto: str, forced: str | None) -> tuple[str, int] | None:
    """The socket (host, port) a request sent over ``proto`` leaves from, and our Via names,
    when the script forced ``forced`` ($fs, force_send_socket(), the socket a branch was
    appended with): that listen socket, as Kamailio sends it. None when none is forced, or
    the forced one is not a listen socket of that transport (the usual socket then)."""
    if not forced:
        return None
    key = (proto, forced)
    known = core.forced_sockets
    if key in known:
        return known[key]
    if len(known) >= 256:  # a script forcing sockets from message data: stays bounded
        known.clear()
    found = known[key] = _forced_local(core, proto, forced)
    return found


def send_local(ctx: MsgContext, proto: str, forced: str | None,
               host: str) -> tuple[str, int] | None:
    """The socket (host, port) a request relayed over ``proto`` to ``host`` (an address, or
    a name: taken as IPv4) leaves from, and our Via names, as Kamailio 5.6 picks it (mhomed=0,
    learnt by running it): the one the script forced (``forced_local``); else, over UDP, the
    UDP socket the request arrived on when the destination is of its address family (a
    multi-homed proxy answers from where it was reached); else the transport's default
    socket (``default_local``). None with one UDP listen and UDP in and out: that one.
    mhomed=1 (over UDP): the listen the kernel would send from (``mhomed.mhomed_local``)
    comes first."""
    if forced:
        return forced_local(ctx.core, proto, forced)
    core = ctx.core
    inbound = core.inbound_udp
    if proto == "udp":
        if inbound is None:
            return None
        if core.config.mhomed:
            local = mhomed_local(core, host)
            if local is not None:
                return local
        rcv = ctx.rcv
        if rcv.proto == "udp":
            local = inbound.get((rcv.dst_ip, rcv.dst_port))
            if local is not None and (":" in local[0]) == (":" in host):
                return local
    return default_local(core, proto, ":" in host)


def default_local(core: Core, proto: str, v6: bool) -> tuple[str, int] | None:
    """Kamailio's default socket to send over ``proto`` to an address of the family ``v6``
    says (learnt by running it): of the listen sockets of that transport and family, the
    first whose address is not a loopback one, the last when all are; None when the
    transport has no listen of that family. Kept per (proto, family): asked per relay."""
    key = (proto, v6)
    known = core.default_sockets
    if key in known:
        return known[key]
    listen = LISTEN_OF.get(proto, proto)
    family = [(lst.host, lst.port) for lst in core.config.listen
              if lst.proto == listen and (":" in lst.host) == v6]
    found = next((addr for addr in family if not _loopback(addr[0])),
                 family[-1] if family else None)
    known[key] = found
    return found


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a name: not an address of the loopback
        return False


def inbound_udp(core: Core) -> dict[tuple[str, int], tuple[str, int]] | None:
    """Each UDP listen socket (host, port) to itself, for ``send_local``'s look-up of the
    socket a request came in on; None with fewer than two (the usual socket is that one)."""
    listens = [(lst.host, lst.port) for lst in core.config.listen if lst.proto == "udp"]
    return {addr: addr for addr in listens} if len(listens) > 1 else None


def _forced_local(core: Core, proto: str, forced: str) -> tuple[str, int] | None:
    parts = parse_socket(forced)
    if parts is None:
        return None
    fproto, host, port = parts
    if fproto != LISTEN_OF.get(proto, proto):
        return None
    listens = [(lst.host, lst.port) for lst in core.config.listen if lst.proto == fproto]
    if (host, port) not in listens:
        return None
    return (host, port)


def is_our_via(core: Core, via: Via) -> bool:
    """Whether a reply's top Via names this server (a listen address, an alias)."""
    return core.is_myself(via.host, via.port or 5060)
