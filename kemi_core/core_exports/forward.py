"""Stateless forwarding (KSR.forward, KSR.forward_uri) and the transport knobs that shape what
goes out: force_rport, add_local_rport, set_advertised_*, tcp aliases, close/no-connect flags,
set_drop. The forwarding itself (our Via, ;received/;rport, next hops) is kemi_core.forwarding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kemi_core.core_exports.log import script_log
from kemi_core.forwarding import forward_request
from kemi_core.kemi.exports import KemiExport, ReturnKind, export
from kemi_core.pv._util import safe

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext

_STREAM_PROTOS = ("tcp", "tls", "ws", "wss")

#: Send the request statelessly to a URI (1 on success or on its way, -1 on failure).
forward_to = forward_request


def forward(ctx: MsgContext) -> int:
    """Forward statelessly to $du, or to the R-URI when $du is not set."""
    return forward_request(ctx, ctx.dst_uri or ctx.msg.ruri)


def forward_uri(ctx: MsgContext, uri: str) -> int:
    """Forward statelessly to the address in ``uri``."""
    return forward_request(ctx, uri)


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
