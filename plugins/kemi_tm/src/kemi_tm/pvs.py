"""tm's pseudo-variables: $T_reply_code, $T_reply_reason, $T_branch_idx, $T_req(pv), $T_rpl(pv).

In Kamailio these come with tmx; kemi registers them once, here, and tmx relies on them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kemi_core.api import Core, PvValue, RouteType, get_pv
from kemi_tm.exports import status_code
from kemi_tm.state import req_state

if TYPE_CHECKING:
    from kemi_core.api import MsgContext


def reply_code(ctx: MsgContext) -> PvValue:
    """The reply's status in onreply routes, the winning one in failure routes, else the last
    status the transaction sent (0 when none)."""
    return status_code(ctx)


def reply_reason(ctx: MsgContext) -> PvValue:
    msg = ctx.msg
    if not msg.is_request:
        return msg.reason
    state = req_state(ctx)
    if state.reply_code:
        return state.reply_reason
    return None


def branch_idx(ctx: MsgContext) -> PvValue:
    """The branch a branch/onreply/failure route runs for; 0 in the request route."""
    state = req_state(ctx)
    return state.branch if state.branch >= 0 else 0


def t_req(ctx: MsgContext, spec: str) -> PvValue:
    """A pseudo-variable evaluated on the transaction's request (from reply routes)."""
    state = req_state(ctx)
    tx = state.tx
    if tx is None:
        return None
    rctx = ctx.core.new_context(tx.request, tx.rcv, RouteType.REQUEST)
    return get_pv(rctx, spec)


def t_rpl(ctx: MsgContext, spec: str) -> PvValue:
    """A pseudo-variable evaluated on the reply of a failure route (None when it was local)."""
    state = req_state(ctx)
    reply = state.reply
    if reply is None:
        return None
    rctx = ctx.core.new_context(reply, ctx.rcv, RouteType.FAILURE)
    return get_pv(rctx, spec)


def register(core: Core) -> None:
    core.pv.register("T_reply_code", reply_code, doc="status of the tm reply")
    core.pv.register("T_reply_reason", reply_reason, doc="reason of the tm reply")
    core.pv.register("T_branch_idx", branch_idx, doc="index of the current branch")
    core.pv.register("T_req", t_req, takes_arg=True, doc="a PV on the tm request")
    core.pv.register("T_rpl", t_rpl, takes_arg=True, doc="a PV on the tm reply")
