"""relay.relay compiled for the usual new request (kemi_core/sip/_fast.c, section "tm's relayed
new request"): t_relay of a request with no transaction yet to one UDP destination ($du or the
R-URI) whose address is known, without a Python frame: the transaction, an INVITE's 100 Trying,
the branch and its send. ``relay.relay`` stays the reference and runs every other request
(tests/unit/test_tm_relay_fast.py runs both on the same requests). None when _fast is not
built or KEMI_SIP_PURE is set."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kemi_core.api import Core, received_via, send_local, uri_target, via_sent_by
from kemi_core.sip import (
    SipParseError,
    build_reply,
    reply_top_via,
    reply_via_of,
    request_relayer,
)
from kemi_tm import idents, relay, service
from kemi_tm.client import ClientState
from kemi_tm.context import InviteBranch, NonInviteBranch
from kemi_tm.keys import key_for
from kemi_tm.proxy import not_filed
from kemi_tm.server import ServerState
from kemi_tm.state import NO_OVERRIDES, Callbacks, ReqState
from kemi_tm.transaction import TmTable, TmTransaction

if TYPE_CHECKING:
    from kemi_core.api import MsgContext


def compiled_relay(svc: service.TmService) -> Callable[[MsgContext], int] | None:
    """``relay.relay(svc, ctx)`` compiled (it runs the Python form for what it does not take)."""
    if request_relayer is None or type(svc) is not service.TmService:
        return None
    s, c = ServerState, ClientState
    return request_relayer((  # type: ignore[no-any-return]
        relay.relay, svc, TmTransaction, InviteBranch, NonInviteBranch, TmTable, ReqState,
        Callbacks, service.TmService.send, Core.send, relay.log, uri_target, received_via,
        key_for, service._dest, relay._dest, send_local, via_sent_by, idents._SOURCE,
        not_filed, NO_OVERRIDES, build_reply, reply_via_of, reply_top_via, SipParseError,
        relay._malformed, relay._branch_refused, s.PROCEEDING, s.TRYING, c.CALLING,
        c.TRYING, c.TERMINATED, s.TERMINATED))
