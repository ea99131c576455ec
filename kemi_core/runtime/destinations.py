"""Where a message goes: reply routing (RFC 3261 18.2.2, RFC 3581) and request next hops."""

from __future__ import annotations

import functools
import socket

from kemi_core.runtime.context import RecvInfo
from kemi_core.sip.headers import Via
from kemi_core.sip.uri import SipUri, parse_uri

_DEFAULT_PORT = {"udp": 5060, "tcp": 5060, "tls": 5061, "ws": 80, "wss": 443, "sctp": 5060}


def reply_destination(via: Via, rcv: RecvInfo, force_rport: bool = False) -> tuple[str, str, int]:
    """(proto, host, port) for a reply to a request that arrived with top Via ``via``.

    Over TCP the reply goes back on the connection it came from. Over UDP it goes to the
    source address (the implicit "received"), to the source port when the client asked for
    rport (or the script forced it), else to the port in sent-by.
    """
    if rcv.proto != "udp":
        return rcv.proto, rcv.src_ip, rcv.src_port
    if force_rport or via.rport is not None:
        return "udp", rcv.src_ip, rcv.src_port
    return "udp", rcv.src_ip, via.port or 5060


def via_reply_destination(via: Via) -> tuple[str, str, int]:
    """(proto, host, port) to forward a reply to, read from the Via the previous hop put there."""
    proto = via.transport.lower()
    host = via.received or via.host
    port: int | None = via.rport if isinstance(via.rport, int) and not isinstance(via.rport, bool) else None
    if port is None:
        port = via.port or _DEFAULT_PORT.get(proto, 5060)
    return proto, host, port


@functools.lru_cache(maxsize=1024)
def resolve_host(host: str) -> str | None:
    """An IP address for ``host``: literals as they are, names through the system resolver."""
    host = host.strip("[]")
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return host
    except OSError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except OSError:
        return None
    return str(infos[0][4][0]) if infos else None


def uri_destination(uri: str | SipUri) -> tuple[str, str, int] | None:
    """(proto, ip, port) of the next hop named by a SIP URI ($du or R-URI), None if unresolvable.

    Follows RFC 3263 for the cases without DNS NAPTR/SRV: the transport parameter (default UDP,
    TLS for sips), the explicit port or the transport's default.
    """
    parsed = parse_uri(uri) if isinstance(uri, str) else uri
    proto = (parsed.params.get("transport") or ("tls" if parsed.scheme == "sips" else "udp")).lower()
    ip = resolve_host(parsed.host)
    if ip is None:
        return None
    return proto, ip, parsed.port or _DEFAULT_PORT.get(proto, 5060)
