"""TmService: one per process; joins the sans-IO transactions to the network and the script.

It owns the worker's ``TmTable``, performs the actions the machines return (``perform``),
runs the script's tm callbacks (branch, onreply, failure, branch-failure routes), handles
replies (``on_reply``, a core reply handler) and timers (``tick``). It is also the service
``core.require("tm", TmService)``: sl's ``send_reply`` asks it ``has_transaction(ctx)`` and
``t_reply(ctx, code, reason)``.

Time: every ``now`` is ``core.clock.now()``. One clock timer stays armed at the table's earliest
deadline (the table reports each deadline it schedules), so the transactions' timers fire when
due, from a worker's loop or from a test's ``VirtualClock.advance``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from kemi_core.api import (
    MsgContext,
    RouteType,
    via_reply_destination,
)
from kemi_core.sip import SipParseError
from kemi_tm.actions import (
    Action,
    BranchFinal,
    NeedsDecision,
    PassUp,
    Send,
    TransactionStateError,
)
from kemi_tm.glue_state import ReqState, TmTable, TmTransaction, req_state
from kemi_tm.settings import TmSettings
from kemi_tm.stats import TmStats

if TYPE_CHECKING:
    from kemi_core.api import Core, Timer
    from kemi_core.sip import SipMsg
    from kemi_tm.proxy import ProxyTransaction

log = logging.getLogger("kemi.tm")


class TmService:
    def __init__(self, core: Core, settings: TmSettings, stats: TmStats) -> None:
        self.core = core
        self.settings = settings
        self.stats = stats
        self.clock = core.clock
        self.table = TmTable(on_freed=self._freed)
        self.table.on_deadline = self._arm
        self._timer: Timer | None = None  # the clock timer armed at the table's earliest deadline
        #: locally generated requests (t_uac_send, t_replicate), set up by kemi_tm.uac
        self.uac: object | None = None
        #: called once per transaction when its final reply has gone upstream: ``fn(tx)``
        #: (Kamailio's TMCB_RESPONSE_OUT for a final reply; the acc module registers here)
        self.final_handlers: list[Callable[[TmTransaction], None]] = []

    # ---- time ---------------------------------------------------------------------------
    def now(self) -> float:
        return self.clock.now()

    def _arm(self, at: float) -> None:
        timer = self._timer
        if timer is not None:
            if timer.when <= at:
                return
            timer.cancel()
        self._timer = self.clock.call_at(at, self._on_clock)

    def _on_clock(self) -> None:
        self._timer = None
        self.tick(self.now())
        at = self.table.next_timer()
        if at is not None:
            self._arm(at)

    # ---- the API sl (and tmx) use ---------------------------------------------------------
    def has_transaction(self, ctx: MsgContext) -> bool:
        state = ctx.mod_state.get("tm")
        return state is not None and state.tx is not None

    def t_reply(self, ctx: MsgContext, code: int, reason: str) -> int:
        from kemi_tm.relay import t_reply

        return t_reply(self, ctx, code, reason)

    def transaction_of(self, ctx: MsgContext) -> TmTransaction | None:
        state = ctx.mod_state.get("tm")
        return state.tx if state is not None else None

    # ---- performing actions --------------------------------------------------------------
    def send(self, action: Send) -> bool:
        d = action.dest
        return self.core.send(d.proto, d.host, d.port, action.data, d.local)

    def perform(self, tx: TmTransaction, actions: list[Action]) -> None:
        """Do what the transaction asked, in order; then count a final sent upstream."""
        for a in actions:
            if isinstance(a, Send):
                if a.origin:
                    self.stats.incr("rpl_generated" if a.origin == "local" else "rpl_relayed")
                if not self.send(a):
                    log.warning("tm: sending to %s:%s:%d failed", a.dest.proto, a.dest.host,
                                a.dest.port)
            elif isinstance(a, PassUp):
                self.forward_reply(a.msg)
            elif isinstance(a, BranchFinal):
                self._branch_final(tx, a)
            elif isinstance(a, NeedsDecision) and not tx.glue.in_failure:
                self.decide(tx, a)
        self._count_final(tx)

    def _count_final(self, tx: TmTransaction) -> None:
        glue = tx.glue
        if tx.final_status and not glue.counted_final:
            glue.counted_final = True
            self.stats.final(tx.final_status)
            for handler in self.final_handlers:
                try:
                    handler(tx)
                except Exception:  # a failing observer never breaks the transaction
                    log.exception("tm: final reply handler %r failed", handler)

    def forward_reply(self, reply: SipMsg) -> None:
        """A reply the transaction no longer takes (a late 2xx): on to the next Via, statelessly."""
        fwd = reply.copy()
        fwd.pop_via()
        try:
            proto, host, port = via_reply_destination(fwd.via)
        except SipParseError:
            return
        self.core.send(proto, host, port, fwd.to_bytes())

    def _freed(self, tx: ProxyTransaction) -> None:
        self.stats.incr("freed")

    # ---- what the core asks at shutdown and after a worker died --------------------------------
    def work_in_progress(self) -> int:
        """Transactions still waiting for their final reply (a stopping worker waits for them;
        those only absorbing retransmissions after their final reply do not count)."""
        return sum(1 for tx in self.table.transactions() if not tx.final_status)

    def worker_gone(self, rank: int) -> None:
        """In the main process: the worker of ``rank`` died; its transactions died with it."""
        lost = self.stats.forget_current(rank)
        if lost:
            log.debug("tm: %d transactions of worker %d are gone with it", lost, rank)

    # ---- script callbacks ----------------------------------------------------------------
    def run_callback(self, name: str, ctx: MsgContext) -> int:
        """Run a tm callback route (the core's contract: exit 1, drop 0 and ctx.dropped, a
        script fault logged and -1, never raised into the transaction layer)."""
        return self.core.run_route(name, ctx)

    def request_context(self, tx: TmTransaction, route_type: RouteType) -> MsgContext:
        """A context on a copy of the transaction's request (failure routes): flags and AVPs are
        the transaction's."""
        glue = tx.glue
        ctx = self.core.new_context(tx.request.copy(), glue.rcv, route_type)
        ctx.flags = glue.flags
        ctx.avps = glue.avps
        ctx.xavps = glue.xavps
        ctx.force_rport = glue.force_rport
        state = req_state(ctx)
        state.tx = tx
        return ctx

    def _branch_final(self, tx: TmTransaction, bf: BranchFinal) -> None:
        name = tx.glue.callbacks.branch_failure
        if name is None or bf.status < 300:
            return
        if bf.reply is not None:
            ctx = self.core.new_context(bf.reply, tx.glue.rcv, RouteType.BRANCH_FAILURE)
            ctx.flags = tx.glue.flags
            ctx.avps = tx.glue.avps
            state = req_state(ctx)
            state.tx = tx
        else:
            ctx = self.request_context(tx, RouteType.BRANCH_FAILURE)
            state = req_state(ctx)
        self._set_reply(state, bf.branch, bf.status, bf.reply)
        ctx.bflags = tx.glue.branch_flags.get(bf.branch, 0)
        self.run_callback(name, ctx)
        tx.glue.flags = ctx.flags

    @staticmethod
    def _set_reply(state: ReqState, branch: int, status: int, reply: SipMsg | None) -> None:
        state.branch = branch
        state.reply = reply
        state.reply_code = status
        state.reply_reason = reply.reason if reply is not None else _LOCAL_REASONS.get(status, "")

    def decide(self, tx: TmTransaction, nd: NeedsDecision) -> None:
        """Every branch failed: run the failure route, then relay the best reply unless the
        route replied or forked again."""
        glue = tx.glue
        name = glue.callbacks.failure
        if name is not None and not glue.overrides.disable_failover:
            glue.callbacks.failure = None  # one shot: the route re-arms it for the next step
            ctx = self.request_context(tx, RouteType.FAILURE)
            state = req_state(ctx)
            best = self._best_branch(tx, nd)
            self._set_reply(state, best, nd.status, nd.reply)
            ctx.bflags = glue.branch_flags.get(best, 0)
            ctx.extra["tm_reply"] = nd.reply
            glue.in_failure = True
            try:
                self.run_callback(name, ctx)
            finally:
                glue.in_failure = False
            glue.flags = ctx.flags
        if tx.final_status or tx.pending_branches:
            return
        now = self.now()
        try:
            if glue.drop_replies:
                actions = tx.reply(500, "Server Internal Error", now)
            else:
                actions = tx.relay_best(now)
        except TransactionStateError as exc:
            log.error("tm: cannot answer the transaction after the failure route: %s", exc)
            return
        self.perform(tx, actions)

    @staticmethod
    def _best_branch(tx: TmTransaction, nd: NeedsDecision) -> int:
        for b in tx.branches:
            if nd.reply is not None and b.reply is nd.reply:
                return b.index
        for b in reversed(tx.branches):
            if b.reply is None and b.status == nd.status:
                return b.index
        return len(tx.branches) - 1

    # ---- replies and timers (core handlers) ----------------------------------------------
    def on_reply(self, ctx: MsgContext) -> bool:
        """Core reply handler: True when the reply belonged to one of our transactions."""
        msg = ctx.msg
        uac = self.uac
        try:
            found = self.table.lookup_reply(msg)
            if found is None:
                if uac is not None and uac.on_reply(msg):  # type: ignore[attr-defined]
                    return True
                return self._unmatched_reply(ctx)
        except SipParseError:
            return False
        tx, branch = found
        assert isinstance(tx, TmTransaction)
        self.stats.incr("rpl_received")
        glue = tx.glue
        glue.replied.add(branch)
        name = glue.callbacks.reply
        if name is not None:
            prev_type = ctx.route_type
            ctx.route_type = RouteType.TM_ONREPLY
            state = req_state(ctx)
            state.tx, state.branch = tx, branch
            ctx.flags = glue.flags
            ctx.bflags = glue.branch_flags.get(branch, 0)
            self.run_callback(name, ctx)
            glue.flags = ctx.flags
            ctx.route_type = prev_type
            if ctx.dropped and msg.status < 200:
                return True  # drop() in onreply_route discards a provisional reply
            ctx.dropped = False
        self.perform(tx, tx.on_response(branch, msg, self.now()))
        return True

    def _unmatched_reply(self, ctx: MsgContext) -> bool:
        """on_sl_reply: a route that sees replies of no transaction; returning 0 drops them."""
        name = self.settings.on_sl_reply
        if not name:
            return False
        ret = self.run_callback(name, ctx)
        return ret == 0 or ctx.dropped

    def tick(self, now: float) -> None:
        """Fire the transactions' timers due at ``now``."""
        for tx, actions in self.table.on_timer(now):
            assert isinstance(tx, TmTransaction)
            self.perform(tx, actions)


_LOCAL_REASONS = {408: "Request Timeout", 487: "Request Terminated", 503: "Service Unavailable"}
