"""TmService.on_reply compiled for the usual relayed reply (kemi_core/sip/_fast.c, section
"tm's usual relayed reply"): a 1xx or 2xx matched to a transaction's lone branch, relayed
upstream without a Python frame. ``TmService.on_reply`` stays the reference and runs every
other reply (tests/unit/test_tm_reply_fast.py runs both on the same replies). None when _fast
is not built, KEMI_SIP_PURE is set, or the service relays through the onsend route."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kemi_core.api import Core
from kemi_core.sip import reply_relayer
from kemi_tm.client import ClientState
from kemi_tm.context import InviteBranch, NonInviteBranch
from kemi_tm.server import ServerState
from kemi_tm.service import TmService, log
from kemi_tm.transaction import TmTransaction

if TYPE_CHECKING:
    from kemi_core.api import MsgContext


def compiled_on_reply(svc: TmService) -> Callable[[MsgContext], bool] | None:
    """``svc.on_reply`` compiled (the bound Python method runs what it does not take)."""
    if reply_relayer is None or svc.core.onsend_reply or type(svc) is not TmService:
        return None
    s, c = ServerState, ClientState
    return reply_relayer((  # type: ignore[no-any-return]
        svc.on_reply, svc, TmTransaction, InviteBranch, NonInviteBranch, TmService.send,
        Core.send, log, s.TRYING, s.PROCEEDING, s.COMPLETED, s.ACCEPTED, s.TERMINATED,
        c.CALLING, c.TRYING, c.PROCEEDING, c.COMPLETED, c.ACCEPTED, c.TERMINATED))
