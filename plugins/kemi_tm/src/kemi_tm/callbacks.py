"""tm's script callbacks, in one place: branch, onreply, failure and branch-failure routes (and
``on_sl_reply``). Each builds the context the route sees (route type, the transaction's flags
and AVPs, the branch's flags, the reply) and copies back what the route may change. The
transaction layer (``service``, ``relay``) calls in here; nothing here calls back into it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kemi_core.api import SOCKET_EDIT, MsgContext, RouteType
from kemi_tm.state import ReqState, req_state

if TYPE_CHECKING:
    from kemi_core.api import Core
    from kemi_core.sip import SipMsg
    from kemi_tm.actions import BranchFinal, NeedsDecision
    from kemi_tm.transaction import TmTransaction

#: the reason a local outcome (no reply received) shows in $T_reply_reason
LOCAL_REASONS = {408: "Request Timeout", 478: "Unresolvable destination",
                 487: "Request Terminated", 503: "Service Unavailable"}


class ScriptCallbacks:
    """Runs tm's callback routes for one process's transactions."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def run(self, name: str, ctx: MsgContext) -> int:
        """Run a tm callback route (the core's contract: exit 1, drop 0 and ctx.dropped, a
        script fault logged and -1, never raised into the transaction layer)."""
        return self.core.run_route(name, ctx)

    # ---- request side -----------------------------------------------------------------------
    def branch(self, ctx: MsgContext, breq: SipMsg, dst_uri: str | None, tx: TmTransaction,
               index: int, bflags: int, send_socket: str | None) -> MsgContext | None:
        """The branch route on branch ``index``'s copy of the request, which leaves from
        ``send_socket`` unless the route forces another ($fs); the branch's context (its
        msg, $du, branch flags and socket as the route left them), None when it dropped the
        branch."""
        bctx = MsgContext(msg=breq, rcv=ctx.rcv, core=ctx.core, route_type=RouteType.BRANCH,
                          dst_uri=dst_uri, flags=ctx.flags, avps=ctx.avps, xavps=ctx.xavps,
                          force_rport=ctx.force_rport, send_socket=send_socket,
                          orig_ruri=ctx.orig_ruri, extra=dict(ctx.extra))
        bctx.bflags = bflags
        state = req_state(bctx)
        state.tx, state.branch = tx, index
        name = tx.callbacks.branch
        assert name is not None
        self.run(name, bctx)
        return None if bctx.dropped else bctx

    def request_context(self, tx: TmTransaction, route_type: RouteType) -> MsgContext:
        """A context on a copy of the transaction's request (failure routes): flags and AVPs
        are the transaction's."""
        ctx = self.core.new_context(tx.request.copy(), tx.rcv, route_type)
        ctx.flags = tx.flags
        ctx.avps = tx.avps
        ctx.xavps = tx.xavps
        ctx.force_rport = tx.force_rport
        if tx.socket_edit is not None:  # rr's double Record-Route, decided per new branch
            ctx.extra[SOCKET_EDIT] = tx.socket_edit
        req_state(ctx).tx = tx
        return ctx

    # ---- replies ------------------------------------------------------------------------------
    def onreply(self, ctx: MsgContext, tx: TmTransaction, branch: int) -> bool:
        """The onreply route armed for the transaction, on a reply of ``branch``; True when
        the route dropped a provisional reply (it goes no further)."""
        name = tx.callbacks.reply
        if name is None:
            return False
        prev_type = ctx.route_type
        ctx.route_type = RouteType.TM_ONREPLY
        state = req_state(ctx)
        state.tx, state.branch = tx, branch
        ctx.flags = tx.flags
        ctx.bflags = tx.branches[branch].flags
        self.run(name, ctx)
        tx.flags = ctx.flags
        ctx.route_type = prev_type
        if ctx.dropped and ctx.msg.status < 200:
            return True  # drop() in onreply_route discards a provisional reply
        ctx.dropped = False
        return False

    def unmatched_reply(self, ctx: MsgContext, name: str) -> bool:
        """on_sl_reply: a route that sees replies of no transaction; True when it dropped the
        reply (returned 0 or called drop)."""
        return self.run(name, ctx) == 0 or ctx.dropped

    def branch_failure(self, tx: TmTransaction, bf: BranchFinal) -> None:
        """The branch-failure route for a branch that ended with a negative final."""
        name = tx.callbacks.branch_failure
        if name is None or bf.status < 300:
            return
        if bf.reply is not None:
            ctx = self.core.new_context(bf.reply, tx.rcv, RouteType.BRANCH_FAILURE)
            ctx.flags = tx.flags
            ctx.avps = tx.avps
            state = req_state(ctx)
            state.tx = tx
        else:
            ctx = self.request_context(tx, RouteType.BRANCH_FAILURE)
            state = req_state(ctx)
        _set_reply(state, bf.branch, bf.status, bf.reply)
        ctx.bflags = tx.branches[bf.branch].flags
        self.run(name, ctx)
        tx.flags = ctx.flags

    def failure(self, tx: TmTransaction, nd: NeedsDecision) -> None:
        """The failure route, once every branch failed (one shot: the route re-arms it for the
        next serial step). It may reply, fork again (t_relay) or leave the best reply to go."""
        name = tx.callbacks.failure
        if name is None or tx.overrides.disable_failover:
            return
        tx.callbacks.failure = None
        ctx = self.request_context(tx, RouteType.FAILURE)
        state = req_state(ctx)
        best = _best_branch(tx, nd)
        _set_reply(state, best, nd.status, nd.reply)
        ctx.bflags = tx.branches[best].flags if best >= 0 else 0
        ctx.extra["tm_reply"] = nd.reply
        tx.in_failure = True
        try:
            self.run(name, ctx)
        finally:
            tx.in_failure = False
        tx.flags = ctx.flags


def _set_reply(state: ReqState, branch: int, status: int, reply: SipMsg | None) -> None:
    state.branch = branch
    state.reply = reply
    state.reply_code = status
    state.reply_reason = reply.reason if reply is not None else LOCAL_REASONS.get(status, "")


def _best_branch(tx: TmTransaction, nd: NeedsDecision) -> int:
    for b in tx.branches:
        if nd.reply is not None and b.reply is nd.reply:
            return b.index
    for b in reversed(tx.branches):
        if b.reply is None and b.status == nd.status:
            return b.index
    return len(tx.branches) - 1
