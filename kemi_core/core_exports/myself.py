"""KSR.is_myself and its variants: does a URI or address name this server?"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from kemi_core.kemi.exports import KemiExport, ReturnKind, export
from kemi_core.pv._util import parse_uri_or_none, safe

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext
    from kemi_core.sip.uri import SipUri


def uri_is_myself(ctx: MsgContext, uri: SipUri | None) -> bool:
    """A URI is ours when its host is ours and, when it names a port, that port is ours too: a
    URI without a port matches any of our ports, as Kamailio's ``uri==myself`` does."""
    if uri is None or not uri.host:
        return False
    return ctx.core.is_myself(uri.host, uri.port)


def is_myself(ctx: MsgContext, uri: str) -> bool:
    """True when ``uri`` points at a local socket or alias: a SIP URI (its port counts), or a
    bare host name or IP address (any port). As in Kamailio, text without a scheme is a host
    only: ``127.0.0.1`` is ours, ``127.0.0.1:5060`` is not a host name and is not."""
    text = uri.strip()
    if _SCHEME.match(text):
        return uri_is_myself(ctx, parse_uri_or_none(text))
    return bool(text) and ctx.core.is_myself(text, None)


_SCHEME = re.compile(r"(?i)(sips?|tel|tels|urn):")


def is_myself_ruri(ctx: MsgContext) -> bool:
    """True when the R-URI points at this server."""
    return ctx.msg.is_request and uri_is_myself(ctx, safe(lambda: ctx.msg.uri))


def is_myself_duri(ctx: MsgContext) -> bool:
    """True when $du is set and points at this server."""
    return uri_is_myself(ctx, parse_uri_or_none(ctx.dst_uri))


def is_myself_nhuri(ctx: MsgContext) -> bool:
    """True when the next hop ($du if set, else the R-URI) is this server."""
    if ctx.dst_uri:
        return is_myself_duri(ctx)
    return is_myself_ruri(ctx)


def is_myself_furi(ctx: MsgContext) -> bool:
    """True when the From URI points at this server."""
    return uri_is_myself(ctx, safe(lambda: ctx.msg.from_.uri))


def is_myself_turi(ctx: MsgContext) -> bool:
    """True when the To URI points at this server."""
    return uri_is_myself(ctx, safe(lambda: ctx.msg.to.uri))


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
