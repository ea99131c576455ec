"""Sending on what we forward: stateless requests (KSR.forward) and replies (one path for the
dispatcher's stateless replies and tm's late 2xx), next hops resolved without blocking.

``send_to(core, proto, host, port, data, local)`` sends now when ``host`` is an address or a
cached name, else when its lookup answers (the event loop goes on meanwhile).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from kemi_core.forwarding.resolver import PENDING
from kemi_core.forwarding.socket_edit import for_socket
from kemi_core.forwarding.targets import (
    is_our_via,
    listen_for,
    send_local,
    uri_target,
    via_reply_destination,
)
from kemi_core.forwarding.via import our_via, received_via, stateless_branch

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext
    from kemi_core.runtime.core import Core
    from kemi_core.sip.message import SipMsg

log = logging.getLogger("kemi.forward")
#: errors a script caused (a bad URI to forward to) go where the script's own lines go
script_log = logging.getLogger("kemi.script")

#: transports a stateless forward can use
STATELESS_PROTOS = ("udp", "tcp", "tls", "ws", "wss")


def resolve_then(core: Core, host: str, send: Callable[[str | None], bool]) -> bool:
    """``send(ip)`` now when ``host``'s address is known (``send(None)``: known not to
    resolve), else once its lookup answers; True when sent or on its way."""
    resolver = core.resolver
    ip = resolver.known(host)
    if ip is not None:
        return send(ip)
    found = resolver.resolve(host, send)
    if found is PENDING:
        return True
    return send(found)


def send_to(core: Core, proto: str, host: str, port: int, data: bytes,
            local: tuple[str, int] | None = None) -> bool:
    """Send ``data`` to ``host`` (an address or a name); False when it cannot go."""
    def send(ip: str | None) -> bool:
        if ip is None:
            log.error("cannot send to %s:%s:%d: the name does not resolve", proto, host, port)
            return False
        return core.send(proto, ip, port, data, local)

    return resolve_then(core, host, send)


# ---- requests --------------------------------------------------------------------------
def forward_request(ctx: MsgContext, target_uri: str) -> int:
    """Send the request statelessly to ``target_uri`` with our Via on top (1 sent or on its
    way once the name resolves, -1 on failure)."""
    msg = ctx.msg
    if not msg.is_request:
        script_log.error("forward: only requests can be forwarded by the script")
        return -1
    target = uri_target(target_uri)
    if target is None:
        script_log.error("forward - bad_uri dropping packet: %r", target_uri)
        return -1
    proto, host, port = target
    if proto not in STATELESS_PROTOS:
        script_log.error("forward: transport %s is not supported", proto)
        return -1
    if proto in ("tls", "wss") and listen_for(ctx.core, "tls") is None:
        # as Kamailio: no TLS socket to send from (enable_tls and listen=tls:... needed)
        script_log.error("forward: no tls listen socket for %s", target_uri)
        return -1
    # Max-Forwards is left alone, as Kamailio's core does: decrementing it is maxfwd's job
    # (KSR.maxfwd.process_maxfwd), and doing it twice would cost a hop per proxy.
    core = ctx.core
    forced = ctx.send_socket
    # the socket it leaves from (a forced one, the one it came in on) names our Via and
    # sends it, as Kamailio
    local = send_local(ctx, proto, forced, host)
    ours = our_via(ctx, proto, stateless_branch(msg), local)
    top = received_via(ctx, msg)
    # as it leaves from its socket (rr's double Record-Route, say)
    data = for_socket(ctx, msg, proto, forced, local).bytes_with_via(ours, top)
    if core.onsend is not None and core.onsend_name() is not None:
        # onsend_route sees the request as routed; what it changes is not sent (Kamailio)
        def send(ip: str | None) -> bool:
            if ip is not None and not core.run_onsend(msg, ctx.rcv, data, proto, ip, port, ctx):
                return True  # dropped by onsend_route: handled, as in Kamailio
            return _send_request(core, proto, host, ip, port, data, local)

        return 1 if resolve_then(core, host, send) else -1
    ip = core.resolver.known(host)
    if ip is not None:  # the usual next hop, an address: sent now, no callback made
        return 1 if _send_request(core, proto, host, ip, port, data, local) else -1
    return 1 if resolve_then(core, host, functools.partial(
        _send_request, core, proto, host, port=port, data=data, local=local)) else -1


def _send_request(core: Core, proto: str, host: str, ip: str | None, port: int,
                  data: bytes, local: tuple[str, int] | None = None) -> bool:
    """Send a stateless forward's bytes to ``ip`` (None: ``host`` did not resolve) from
    ``local`` (None: the transport's socket), counted."""
    stats = core.stats
    if ip is None:
        script_log.error("forward: %s does not resolve: dropping the request", host)
        if stats is not None:
            stats.err_requests.inc()
        return False
    if not core.send(proto, ip, port, data, local):
        script_log.error("forward: sending to %s:%s:%d failed", proto, ip, port)
        if stats is not None:
            stats.err_requests.inc()
        return False
    if stats is not None:
        stats.fwd_requests.inc()
    return True


# ---- replies ---------------------------------------------------------------------------
def forward_reply(core: Core, reply: SipMsg, check_ours: bool = True,
                  ctx: MsgContext | None = None) -> bool:
    """Pop our Via and send the reply to the next one (RFC 3261 16.11, 18.2.2), from the
    socket ``reply_local`` picks: the dispatcher's stateless replies (``check_ours``: drop a
    reply whose top Via is not ours) and tm's replies that no transaction takes (a late 2xx).
    False when it was dropped or could not be sent (counted in the statistics either way)."""
    stats = core.stats
    vias = reply.vias
    if len(vias) < 2:
        if stats is not None:
            stats.drop_replies.inc()
        log.debug("reply %s with no Via for us to forward to: dropped", reply.status)
        return False
    top = vias[0]
    if check_ours and not is_our_via(core, top):
        if stats is not None:
            stats.drop_replies.inc()
        log.info("reply %s %s: top Via %s:%s is not ours: dropped", reply.status, reply.reason,
                 top.host, top.port)
        return False
    proto, host, port = via_reply_destination(vias[1])
    data = reply.bytes_without_top_via()
    local = reply_local(core, ctx, proto, host)
    if ctx is not None and core.onsend_reply and core.has_onsend_route():
        return _reply_after_onsend(core, ctx, proto, host, port, data, local)
    ok = send_to(core, proto, host, port, data, local)
    if stats is not None:
        (stats.fwd_replies if ok else stats.err_replies).inc()
    return ok


def reply_local(core: Core, ctx: MsgContext | None, proto: str,
                host: str) -> tuple[str, int] | None:
    """The socket a reply forwarded statelessly leaves from, as Kamailio 5.6 picks it (learnt
    by running it, three UDP listens): a request's choice (``send_local``) for the reply
    ``ctx``: the socket forced in its reply route, else over UDP the one the reply came in on
    (not the one our Via named, when the previous hop sent it elsewhere), else the transport's
    default. Without the reply's context (what tm passes up after a transaction's final, not
    compared with Kamailio): the first listen socket of the transport, as before."""
    if ctx is None:
        return listen_for(core, proto)
    return send_local(ctx, proto, ctx.send_socket, host)


def _reply_after_onsend(core: Core, ctx: MsgContext, proto: str, host: str, port: int,
                        data: bytes, local: tuple[str, int] | None) -> bool:
    """onsend_route_reply=yes: the script's onsend_route on the reply ``ctx`` forwards (it sees
    the reply as received), then ``data`` goes unless the route dropped it (native routes)."""
    stats = core.stats

    def send(ip: str | None) -> bool:
        if ip is None:
            log.error("cannot send to %s:%s:%d: the name does not resolve", proto, host, port)
            ok = False
        elif not core.run_onsend(ctx.msg, ctx.rcv, data, proto, ip, port, ctx):
            return False  # dropped (counted as such)
        else:
            ok = core.send(proto, ip, port, data, local)
        if stats is not None:
            (stats.fwd_replies if ok else stats.err_replies).inc()
        return ok

    return resolve_then(core, host, send)
