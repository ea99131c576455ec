"""TmService: one per process; the transactions' lifecycle, joining the sans-IO machines to
the network and the script.

It owns the worker's ``TmTable``: it makes transactions (``new_transaction``), performs the
actions the machines return (``perform``), takes replies (``on_reply``, a core reply handler)
and timers (``tick``), replies statefully (``t_reply``) and decides when every branch failed
(``decide``). The script's tm routes run through ``ScriptCallbacks`` (``callbacks``); the
request side (t_relay, branches) is ``relay``, which calls in here, never the other way. It is
also the service ``core.require("tm", TmService)``: sl's ``send_reply`` asks it
``has_transaction(ctx)`` and ``t_reply(ctx, code, reason)``.

Time: every ``now`` is ``core.clock.now()``. One clock timer stays armed at the table's earliest
deadline (the table reports each deadline it schedules), rounded up to tm's tick (``TIMER_HZ``),
so the transactions' timers fire when due, from a worker's loop or from a test's ``VirtualClock.advance``.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from kemi_core.api import (
    MsgContext,
    RouteType,
    apply_via,
    forward_reply,
    received_via,
    reply_destination,
)
from kemi_core.sip import SipParseError
from kemi_tm.actions import (
    Action,
    BranchFinal,
    Dest,
    NeedsDecision,
    PassUp,
    Send,
    TransactionStateError,
)
from kemi_tm.callbacks import ScriptCallbacks
from kemi_tm.keys import ServerKey, server_key
from kemi_tm.settings import TmSettings
from kemi_tm.state import NO_OVERRIDES, ReqState, req_state
from kemi_tm.stats import TmStats
from kemi_tm.transaction import TmTable, TmTransaction

if TYPE_CHECKING:
    from kemi_core.api import Core, Timer
    from kemi_core.sip import SipMsg
    from kemi_tm.proxy import ProxyTransaction

log = logging.getLogger("kemi.tm")

#: tm's timers fire on ticks of 1/TIMER_HZ s (at most this much late): the deadlines of many
#: transactions due within one tick are handled in one wakeup instead of one each (at 1,500
#: calls/s a transaction ends every 0.7 ms). Kamailio's tm timers run on 1/16 s ticks.
TIMER_HZ = 64


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
        #: the script's tm callbacks (branch, onreply, failure, branch-failure routes)
        self.script = ScriptCallbacks(core)

    # ---- time ---------------------------------------------------------------------------
    def now(self) -> float:
        return self.clock.now()

    def _arm(self, at: float) -> None:
        at = math.ceil(at * TIMER_HZ) / TIMER_HZ  # exact: TIMER_HZ is a power of two
        timer = self._timer
        if timer is not None:
            if timer.when <= at:
                return
            timer.cancel()
        self._timer = self.clock.call_at(at, self._on_clock)

    def _on_clock(self) -> None:
        self._timer = None
        self.tick(self.clock.now())
        at = self.table.next_timer()
        if at is not None:
            self._arm(at)

    # ---- the API sl (and tmx) use ---------------------------------------------------------
    def has_transaction(self, ctx: MsgContext) -> bool:
        state = ctx.mod_state.get("tm")
        return state is not None and state.tx is not None

    def t_reply(self, ctx: MsgContext, code: int, reason: str) -> int:
        """Reply statefully; in a request route the transaction is made when there is none."""
        msg = ctx.msg
        if not msg.is_request:
            log.error("t_reply: the current message is a reply")
            return -1
        if msg.method == "ACK":
            log.error("t_reply: an ACK gets no reply")
            return -1
        if not 100 <= code <= 699:
            log.error("t_reply: invalid code %d", code)
            return -1
        state = req_state(ctx)
        tx = state.tx
        try:
            if tx is None:
                if not ctx.route_type & RouteType.REQUEST:
                    log.error("t_reply: no transaction for this message")
                    return -1
                old = self.table.lookup_request(msg)
                if old is not None:
                    self.absorb(old, msg)
                    return 0
                tx = self.new_transaction(ctx)
            headers = [_split_header(h) for h in ctx.extra.get("reply_headers", ())]
            body, ctype = ctx.extra.get("reply_body", (b"", None))
            actions = tx.reply(code, reason, self.clock.now(), headers=headers, body=body,
                               content_type=ctype)
        except TransactionStateError as exc:
            log.error("t_reply: %s", exc)
            return -1
        except SipParseError as exc:
            log.error("t_reply: malformed request: %s", exc.reason)
            return -1
        self.perform(tx, actions)
        ctx.replied = True
        return 1

    def transaction_of(self, ctx: MsgContext) -> TmTransaction | None:
        state = ctx.mod_state.get("tm")
        return state.tx if state is not None else None

    # ---- transactions come and go ------------------------------------------------------------
    def new_transaction(self, ctx: MsgContext, key: ServerKey | None = None) -> TmTransaction:
        """Make, insert and start the transaction of the current request (t_newtran); ``key``:
        its server key when the caller computed it already."""
        return self.open_transaction(ctx, key if key is not None else server_key(ctx.msg),
                                     received_via(ctx, ctx.msg), req_state(ctx))

    def open_transaction(self, ctx: MsgContext, key: ServerKey, via: str | None,
                         state: ReqState) -> TmTransaction:
        """``new_transaction`` with the request's server key, its top Via as we pass it on
        (``received_via``: None when unchanged) and tm's state on it (``req_state``) computed
        by the caller, which reuses the Via for the branches (t_relay)."""
        msg = ctx.msg
        rcv = ctx.rcv
        proto, host, port = reply_destination(msg.via, rcv, ctx.force_rport)
        ov = state.script_overrides
        now = self.clock.now()
        settings = self.settings
        if ov is None:  # the script set nothing: the modparam settings as they are
            ov, timers, proxy = NO_OVERRIDES, settings.timers, settings.proxy
        elif ov.any_set:
            timers, proxy = settings.timers_for(ov), settings.proxy_for(ov)
        else:
            timers, proxy = settings.timers, settings.proxy
        # The key comes from the received request (parsed already; its copy shares that).
        tx = TmTransaction(msg.copy(), _dest(proto, host, port, (rcv.dst_ip, rcv.dst_port)),
                           rcv, now, state.callbacks, ov, ctx.flags, ctx.avps, ctx.xavps,
                           ctx.force_rport, settings=timers, proxy_settings=proxy, key=key)
        # The key is computed: now the saved request may get ;received/;rport like what we
        # forward, so our own replies carry them too (RFC 3261 18.2.1).
        apply_via(tx.request, via)
        # started before it is filed: the table reads its first deadline once, on insert
        actions = tx.start(now)
        self.table.insert(tx)
        self.stats.uas.inc()
        state.tx = tx
        self.perform(tx, actions)
        return tx

    def absorb(self, tx: ProxyTransaction, msg: SipMsg) -> None:
        """A retransmission of ``tx``'s request (or the ACK of its negative final): the
        transaction answers it (the last reply again) or takes it in."""
        assert isinstance(tx, TmTransaction)
        self.perform(tx, tx.on_request(msg, self.clock.now()))

    def absorb_retransmission(self, msg: SipMsg) -> bool:
        """For a draining worker's gate (kemi_core.runtime.drain): True when ``msg`` is a
        retransmission of a request with a transaction here, answered (or taken in) by it;
        False for a new request, which the gate refuses."""
        tx = self.table.lookup_request(msg)
        if tx is None:
            return False
        self.absorb(tx, msg)
        return True

    # ---- performing actions --------------------------------------------------------------
    def send(self, action: Send) -> bool:
        d = action.dest
        return self.core.send(d.proto, d.host, d.port, action.data, d.local)

    def perform(self, tx: TmTransaction, actions: list[Action]) -> None:
        """Do what the transaction asked, in order; then count a final sent upstream."""
        # runs for every message of every transaction: exact type tests, the common action
        # (Send) first, the script's routes only when armed
        for a in actions:
            kind = type(a)
            if kind is Send:
                origin = a.origin  # type: ignore[union-attr]
                if origin:
                    (self.stats.rpl_generated if origin == "local"
                     else self.stats.rpl_relayed).inc()
                d = a.dest  # type: ignore[union-attr]
                if not self.core.send(d.proto, d.host, d.port, a.data, d.local):  # type: ignore[union-attr]
                    log.warning("tm: sending to %s:%s:%d failed", d.proto, d.host, d.port)
            elif kind is PassUp:
                self.forward_reply(a.msg)  # type: ignore[union-attr]
            elif kind is BranchFinal:
                if tx.callbacks.branch_failure is not None:
                    self.script.branch_failure(tx, a)  # type: ignore[arg-type]
            elif kind is NeedsDecision and not tx.in_failure:
                self.decide(tx, a)  # type: ignore[arg-type]
        if tx.server.final_status and not tx.counted_final:
            self._count_final(tx)

    def _count_final(self, tx: TmTransaction) -> None:
        status = tx.server.final_status
        if status and not tx.counted_final:
            tx.counted_final = True
            self.stats.final(status)
            for handler in self.final_handlers:
                try:
                    handler(tx)
                except Exception:  # a failing observer never breaks the transaction
                    log.exception("tm: final reply handler %r failed", handler)

    def forward_reply(self, reply: SipMsg) -> None:
        """A reply the transaction no longer takes (a late 2xx): on to the next Via, statelessly."""
        try:
            forward_reply(self.core, reply, check_ours=False)
        except SipParseError:
            return

    def _freed(self, tx: ProxyTransaction) -> None:
        self.stats.freed.inc()

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

    # ---- every branch failed ----------------------------------------------------------------
    def decide(self, tx: TmTransaction, nd: NeedsDecision) -> None:
        """Every branch failed: run the failure route, then relay the best reply unless the
        route replied or forked again."""
        if tx.dns_pending:
            return  # a branch is still on its way: it decides when it ends
        self.script.failure(tx, nd)
        if tx.final_status or tx.pending_branches or tx.dns_pending:
            return
        now = self.clock.now()
        try:
            if tx.drop_replies:
                actions = tx.reply(500, "Server Internal Error", now)
            else:
                actions = tx.relay_best(now)
        except TransactionStateError as exc:
            log.error("tm: cannot answer the transaction after the failure route: %s", exc)
            return
        self.perform(tx, actions)

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
        self.stats.rpl_received.inc()
        tx.branches[branch].replied = True
        if tx.callbacks.reply is not None and self.script.onreply(ctx, tx, branch):
            return True  # a provisional reply the onreply route dropped
        self.perform(tx, tx.on_response(branch, msg, self.clock.now()))
        return True

    def _unmatched_reply(self, ctx: MsgContext) -> bool:
        name = self.settings.on_sl_reply
        return bool(name) and self.script.unmatched_reply(ctx, name)

    def tick(self, now: float) -> None:
        """Fire the transactions' timers due at ``now``."""
        for tx, actions in self.table.on_timer(now):
            assert isinstance(tx, TmTransaction)
            self.perform(tx, actions)


@functools.lru_cache(maxsize=1024)
def _dest(proto: str, host: str, port: int, local: tuple[str, int]) -> Dest:
    """Dest is frozen: one object serves every transaction answering one address."""
    return Dest(proto, host, port, local)


def _split_header(line: str | tuple[str, str]) -> tuple[str, str]:
    if isinstance(line, tuple):
        return line
    name, _, value = line.strip().partition(":")
    return name.strip(), value.strip()


