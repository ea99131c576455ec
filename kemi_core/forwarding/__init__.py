"""Forwarding: what the core, KSR.forward and tm share to send messages on.

* our Via, ;received/;rport on the sender's (``via``);
* the sending worker's rank in our branch, for its replies (``branch_rank``);
* where things go: reply destinations, next-hop URIs, the socket a request leaves from
  (``targets``; with mhomed=1 the kernel's source address: ``mhomed``);
* next-hop names resolved without blocking the event loop, cached for a bounded time
  (``resolver``);
* a request's edit per socket it leaves from, made at send time (``socket_edit``);
* sending: a stateless request forward, the one reply-forwarding path ("pop our Via and send
  the reply on"), any send to a name (``send``).
"""

from __future__ import annotations

from kemi_core.forwarding.branch_rank import MAIN_BRANCH, branch_rank, rank_mark
from kemi_core.forwarding.resolver import PENDING, RESOLVER, Resolver
from kemi_core.forwarding.send import forward_reply, forward_request, resolve_then, send_to
from kemi_core.forwarding.socket_edit import SOCKET_EDIT, SocketEdit, for_socket
from kemi_core.forwarding.targets import (
    DEFAULT_PORT,
    Target,
    default_local,
    forced_local,
    is_our_via,
    listen_for,
    parse_socket,
    reply_destination,
    send_local,
    uri_destination,
    uri_target,
    via_reply_destination,
)
from kemi_core.forwarding.via import (
    MAGIC_COOKIE,
    apply_via,
    our_via,
    received_via,
    stamp_received,
    stateless_branch,
    via_params,
    via_sent_by,
)

__all__ = [
    "DEFAULT_PORT", "MAGIC_COOKIE", "MAIN_BRANCH", "PENDING", "RESOLVER", "Resolver", "SOCKET_EDIT", "SocketEdit",
    "Target", "apply_via", "branch_rank", "default_local", "for_socket", "forced_local", "forward_reply", "forward_request",
    "is_our_via", "listen_for", "our_via", "parse_socket", "rank_mark", "received_via",
    "reply_destination", "resolve_then", "send_local", "send_to", "stamp_received", "stateless_branch",
    "uri_destination", "uri_target", "via_params", "via_reply_destination", "via_sent_by",
]
