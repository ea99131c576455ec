"""A request's edit that depends on the socket it leaves from, made per branch at send time.

Kamailio decides some of what a request carries only when it is sent (conditional lumps): rr's
double Record-Route is there only on a branch that leaves from another socket than the one
the request came in on. A module that needs this puts a ``SocketEdit`` in
``ctx.extra[SOCKET_EDIT]``; whatever sends the request on (tm's branches, KSR.forward) asks
it, with the branch's transport and forced socket, before the branch's bytes are built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext
    from kemi_core.sip.message import SipMsg

#: ctx.extra key of the request's ``SocketEdit``
SOCKET_EDIT = "socket_edit"

class SocketEdit(Protocol):
    """(request, transport it leaves over, force_send_socket's "proto:ip:port" or None, the
    (host, port) it leaves from, ``targets.send_local``'s, or None: the transport's usual
    socket) -> the branch's own edited copy, or None when the request goes as it is."""

    def __call__(self, msg: SipMsg, proto: str, forced: str | None,
                 local: tuple[str, int] | None = None, /) -> SipMsg | None: ...


def for_socket(ctx: MsgContext, msg: SipMsg, proto: str, forced: str | None,
               local: tuple[str, int] | None = None) -> SipMsg:
    """``msg`` as it leaves over ``proto`` (from ``forced`` when set, from ``local``): itself,
    or the copy the request's ``SocketEdit`` made."""
    edit: SocketEdit | None = ctx.extra.get(SOCKET_EDIT)
    if edit is None:
        return msg
    edited = edit(msg, proto, forced, local)
    return msg if edited is None else edited
