"""KSR.is_myself and its variants: does a URI or address name this server?"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kemi_core.kemi.exports import KemiExport, ReturnKind, export
from kemi_core.pv._util import safe

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext


def is_myself(ctx: MsgContext, uri: str) -> bool:
    """True when ``uri`` points at a local socket or alias: a ``sip:``/``sips:`` URI (its port
    and transport count when given; no port matches any of ours), or a bare host name or IP
    address (any port). As in Kamailio, text without a scheme is a host only: ``127.0.0.1`` is
    ours, ``127.0.0.1:5060`` is not a host name and is not."""
    return ctx.core.myself.uri_or_host(uri)


# The variants below judge the URI's text as is_myself() does, as Kamailio's do (so a scheme
# written in upper case, "SIP:", makes it no URI there either).
def is_myself_ruri(ctx: MsgContext) -> bool:
    """True when the R-URI points at this server."""
    return ctx.msg.is_request and ctx.core.myself.uri_or_host(ctx.msg.ruri)


def is_myself_duri(ctx: MsgContext) -> bool:
    """True when $du is set and points at this server."""
    return ctx.core.myself.uri_or_host(ctx.dst_uri)


def is_myself_nhuri(ctx: MsgContext) -> bool:
    """True when the next hop ($du if set, else the R-URI) is this server."""
    if ctx.dst_uri:
        return is_myself_duri(ctx)
    return is_myself_ruri(ctx)


def is_myself_furi(ctx: MsgContext) -> bool:
    """True when the From URI points at this server."""
    return ctx.core.myself.uri_or_host(safe(lambda: ctx.msg.from_.uri_text))


def is_myself_turi(ctx: MsgContext) -> bool:
    """True when the To URI points at this server."""
    return ctx.core.myself.uri_or_host(safe(lambda: ctx.msg.to.uri_text))


def is_myself_suri(ctx: MsgContext) -> bool:
    """True when the source address (ip, port) is one of our sockets."""
    return ctx.core.is_myself(ctx.rcv.src_ip, ctx.rcv.src_port)


def is_myself_srcip(ctx: MsgContext) -> bool:
    """True when the source IP is one of our addresses (any port)."""
    return ctx.core.is_myself(ctx.rcv.src_ip)


def exports() -> list[KemiExport]:
    b = ReturnKind.BOOL
    return [
        export("", "is_myself", is_myself, "s", b),
        export("", "is_myself_ruri", is_myself_ruri, "", b),
        export("", "is_myself_duri", is_myself_duri, "", b),
        export("", "is_myself_nhuri", is_myself_nhuri, "", b),
        export("", "is_myself_furi", is_myself_furi, "", b),
        export("", "is_myself_turi", is_myself_turi, "", b),
        export("", "is_myself_suri", is_myself_suri, "", b),
        export("", "is_myself_srcip", is_myself_srcip, "", b),
    ]
