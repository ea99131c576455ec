"""KSR.is_INVITE ... is_method, is_method_in, is_UDP ... is_proto, is_IPv4, to_UDP ...,
is_src_port / is_dst_port: tests on the message and the transport it came by or goes to."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING

from kemi_core.core_exports.log import script_log
from kemi_core.kemi.exports import KemiExport, ReturnKind, export, message_fact
from kemi_core.pv._util import parse_uri_or_none

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext

_METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "SUBSCRIBE", "PUBLISH",
            "NOTIFY", "REFER", "INFO", "UPDATE", "PRACK", "MESSAGE", "KDMQ", "GET", "POST",
            "PUT", "DELETE")

#: KSR.is_method_in letters, as Kamailio documents them.
_METHOD_LETTERS = {"I": "INVITE", "A": "ACK", "B": "BYE", "C": "CANCEL", "R": "REGISTER",
                   "M": "MESSAGE", "O": "OPTIONS", "S": "SUBSCRIBE", "P": "PUBLISH",
                   "N": "NOTIFY", "U": "UPDATE", "K": "KDMQ", "G": "GET", "T": "POST",
                   "V": "PUT", "D": "DELETE"}

#: KSR.is_proto letters.
_PROTO_LETTERS = {"u": "udp", "t": "tcp", "s": "tls", "c": "sctp", "w": "ws", "W": "wss"}


def _method_is(method: str) -> Callable[[MsgContext], bool]:
    def test(ctx: MsgContext) -> bool:
        return ctx.msg.method == method
    test.__doc__ = f"True when the method (CSeq method for replies) is {method}."
    message_fact(test, "method", method)
    return test


def is_method(ctx: MsgContext, vmethod: str) -> bool:
    """True when the method is one of the comma-separated names in ``vmethod``."""
    method = ctx.msg.method.upper()
    return any(m.strip().upper() == method for m in vmethod.split(","))


#: the method names of each is_method_in string whose letters are all known (a script uses
#: a few strings, called on every message)
_LETTER_SETS: dict[str, frozenset[str]] = {}


def is_method_in(ctx: MsgContext, vmethod: str) -> bool:
    """True when the method matches one of the letters (I=INVITE, A=ACK, B=BYE ...)."""
    names = _LETTER_SETS.get(vmethod)
    if names is None and len(_LETTER_SETS) < 256 and all(c in _METHOD_LETTERS for c in vmethod):
        names = _LETTER_SETS[vmethod] = frozenset(_METHOD_LETTERS[c] for c in vmethod)
    if names is not None:
        return ctx.msg.method.upper() in names
    method = ctx.msg.method.upper()
    for letter in vmethod:
        name = _METHOD_LETTERS.get(letter)
        if name is None:
            script_log.error("is_method_in: unsupported method flag: %s", letter)
            return False
        if name == method:
            return True
    return False


message_fact(is_method_in, "method_in", _METHOD_LETTERS)


def _proto_is(*protos: str) -> Callable[[MsgContext], bool]:
    def test(ctx: MsgContext) -> bool:
        return ctx.rcv.proto in protos
    test.__doc__ = f"True when the message arrived over {' or '.join(protos).upper()}."
    return test


def is_proto(ctx: MsgContext, sproto: str) -> bool:
    """True when the arrival protocol is one of the letters (u udp, t tcp, s tls, c sctp,
    w ws, W wss)."""
    return any(_PROTO_LETTERS.get(c) == ctx.rcv.proto for c in sproto)


def _ip_version(ip: str) -> int:
    try:
        return ipaddress.ip_address(ip.strip("[]")).version
    except ValueError:
        return 0


def _src_is_ip(version: int) -> Callable[[MsgContext], bool]:
    def test(ctx: MsgContext) -> bool:
        return _ip_version(ctx.rcv.src_ip) == version
    test.__doc__ = f"True when the message came from an IPv{version} address."
    return test


def _dst_proto_and_host(ctx: MsgContext) -> tuple[str, str] | None:
    """Where the request goes next: the send info of onsend_route, else $du, else the R-URI."""
    info = ctx.extra.get("send_info")
    if isinstance(info, dict) and "proto" in info:
        return str(info["proto"]), str(info.get("host", ""))
    target = ctx.dst_uri or (ctx.msg.ruri if ctx.msg.is_request else None)
    uri = parse_uri_or_none(target)
    if uri is None:
        return None
    proto = uri.transport or ("tls" if uri.scheme == "sips" else "udp")
    return proto, uri.host


def _to_proto(*protos: str) -> Callable[[MsgContext], bool]:
    def test(ctx: MsgContext) -> bool:
        dst = _dst_proto_and_host(ctx)
        return dst is not None and dst[0] in protos
    test.__doc__ = f"True when the message is sent on over {' or '.join(protos).upper()}."
    return test


def _to_ip(version: int) -> Callable[[MsgContext], bool]:
    def test(ctx: MsgContext) -> bool:
        dst = _dst_proto_and_host(ctx)
        return dst is not None and _ip_version(dst[1]) == version
    test.__doc__ = f"True when the message is sent on to an IPv{version} address."
    return test


def is_src_port(ctx: MsgContext, vport: int) -> bool:
    """True when the message came from port ``vport``."""
    return ctx.rcv.src_port == vport


def is_dst_port(ctx: MsgContext, vport: int) -> bool:
    """True when the message arrived on local port ``vport``."""
    return ctx.rcv.dst_port == vport


def exports() -> list[KemiExport]:
    b = ReturnKind.BOOL
    out = [export("", f"is_{m}", _method_is(m), "", b) for m in _METHODS]
    out += [
        export("", "is_method", is_method, "s", b),
        export("", "is_method_in", is_method_in, "s", b),
        export("", "is_proto", is_proto, "s", b),
        export("", "is_IPv4", _src_is_ip(4), "", b),
        export("", "is_IPv6", _src_is_ip(6), "", b),
        export("", "to_IPv4", _to_ip(4), "", b),
        export("", "to_IPv6", _to_ip(6), "", b),
        export("", "is_src_port", is_src_port, "i", b),
        export("", "is_dst_port", is_dst_port, "i", b),
    ]
    for name, protos in (("UDP", ("udp",)), ("TCP", ("tcp",)), ("TLS", ("tls",)),
                         ("SCTP", ("sctp",)), ("WS", ("ws",)), ("WSS", ("wss",)),
                         ("WSX", ("ws", "wss"))):
        out.append(export("", f"is_{name}", _proto_is(*protos), "", b))
        out.append(export("", f"to_{name}", _to_proto(*protos), "", b))
    return out
