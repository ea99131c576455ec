"""TmService: one per process; the transactions' lifecycle, joining the sans-IO machines to
the network and the script.

It owns the worker's ``TmTable``: it makes transactions (``new_transaction``), is the sink the
machines send and report to (``send`` ... ``needs_decision``; ``done`` after each input), takes
replies (``on_reply``, a core reply handler)
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
import types
from collections.abc import Callable
from typing import TYPE_CHECKING

from kemi_core.api import (
    MsgContext,
    apply_via,
    forward_reply,
    received_via,
    reply_destination,
)
from kemi_core.sip import SipParseError, parse_datagram, transaction_tester
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
        self.table.on_refile = self._flush_soon
        self._timer: Timer | None = None  # the clock timer armed at the table's earliest deadline
        #: locally generated requests (t_uac_send, t_replicate), set up by kemi_tm.uac
        self.uac: object | None = None
        #: called once per transaction when its final reply has gone upstream: ``fn(tx)``
        #: (Kamailio's TMCB_RESPONSE_OUT for a final reply; the acc module registers here)
        self.final_handlers: list[Callable[[TmTransaction], None]] = []
        #: the script's tm callbacks (branch, onreply, failure, branch-failure routes)
        self.script = ScriptCallbacks(core)
        #: what the machines told the sink that waits for the end of the input (``done``):
        #: (transaction, record) in order; None when nothing waits (the usual case)
        self._held: list[tuple[TmTransaction | None, Action]] | None = None
        #: onsend_route_reply=yes: the reply being handled, whose relayed copies the script's
        #: onsend_route sees (``_relay_after_onsend``)
        self._reply_in: MsgContext | None = None
        #: t_relay compiled for the usual new request (relay_fast, set by mod_init); None:
        #: relay.relay for every request
        self.relay_fast: Callable[[MsgContext], int] | None = None
        if core.onsend_reply:  # else the plain methods: nothing to test per reply
            self.on_reply = self._on_reply_with_onsend  # type: ignore[method-assign]
            self.send = self._send_after_onsend  # type: ignore[method-assign]
        if transaction_tester is not None and type(self).has_transaction is TmService.has_transaction:
            # compiled (sl asks it for every reply): the method below for a mod_state not a dict
            self.has_transaction = transaction_tester(  # type: ignore[method-assign]
                types.MethodType(TmService.has_transaction, self))

    # ---- time ---------------------------------------------------------------------------
    def now(self) -> float:
        """The clock tm's timers run on (for other modules, e.g. tmx; tm reads ``clock.now()``)."""
        return self.clock.now()

    def _arm(self, at: float) -> None:
        at = math.ceil(at * TIMER_HZ) / TIMER_HZ  # exact: TIMER_HZ is a power of two
        timer = self._timer
        if timer is not None:
            if timer.when <= at:
                return
            timer.cancel()
        self._timer = self.clock.call_at(at, self._on_clock)

    def _flush_soon(self) -> None:
        """A transaction waits to be refiled: the clock timer fires at the next tick at the
        latest (its ``on_timer`` files it; no deadline is due before that tick)."""
        self._arm(self.clock.now())

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
        """Reply statefully on the transaction of the message (t_newtran or t_relay made it);
        -1 without one, as Kamailio 5.6 (nothing is sent)."""
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
                # as Kamailio 5.6: t_reply does not make the transaction (t_newtran or
                # t_relay does); without one it sends nothing
                log.error("t_reply: no transaction for this message (t_newtran first)")
                return -1
            headers = [_split_header(h) for h in ctx.extra.get("reply_headers", ())]
            body, ctype = ctx.extra.get("reply_body", (b"", None))
            tx.reply(code, reason, self.clock.now(), headers=headers, body=body,
                     content_type=ctype)
        except TransactionStateError as exc:
            log.error("t_reply: %s", exc)
            return -1
        except SipParseError as exc:
            log.error("t_reply: malformed request: %s", exc.reason)
            return -1
        self.done(tx)
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
                           ctx.force_rport, settings=timers, proxy_settings=proxy, key=key,
                           sink=self)
        # The key is computed: now the saved request may get ;received/;rport like what we
        # forward, so our own replies carry them too (RFC 3261 18.2.1).
        if via is not None:
            # (our replies' Via is not the one sent on: Kamailio writes each its own way; made
            # from the received one when a reply is sent, ``TmTransaction.reply_via``)
            tx.received_via = msg.via
            apply_via(tx.request, via)
        # No 100 Trying here: as in Kamailio 5.6, t_relay sends it (``relay``), not t_newtran
        # (a script that answers a t_newtran'd INVITE itself sends its final alone).
        self.table.insert(tx)
        c = self.stats.uas
        c.view[c.slot] += 1  # Counter.inc in place (see ``send``)
        state.tx = tx
        return tx

    def absorb(self, tx: ProxyTransaction, msg: SipMsg) -> None:
        """A retransmission of ``tx``'s request (or the ACK of its negative final): the
        transaction answers it (the last reply again) or takes it in."""
        assert isinstance(tx, TmTransaction)
        if tx.on_request(msg, self.clock.now()):
            self.pass_up(msg)
        self.done(tx)

    def absorb_retransmission(self, msg: SipMsg) -> bool:
        """For a draining worker's gate (kemi_core.runtime.drain): True when ``msg`` is a
        retransmission of a request with a transaction here, answered (or taken in) by it;
        False for a new request, which the gate refuses."""
        tx = self.table.lookup_request(msg)
        if tx is None:
            return False
        self.absorb(tx, msg)
        return True

    # ---- the machines' sink (actions.ProxySink) ---------------------------------------------
    # The machines call these as they go. What runs the script (a branch-failure route, the
    # failure route) waits for the end of the input that caused it (``done``), and what is
    # sent or passed up after it waits with it: everything happens in the order it was told,
    # and a route never runs in the middle of a machine's input.
    def send(self, dest: Dest, data: bytes, origin: str = "") -> bool:
        if self._held is not None:
            self._held.append((None, Send(dest, data, origin)))
            return True
        if origin:
            # tm's counters are added to in place (Counter.view/slot, what ``inc`` does): a
            # dozen per call, each a Python call less
            c = self.stats.rpl_generated if origin == "local" else self.stats.rpl_relayed
            c.view[c.slot] += 1
        if self.core.send(dest.proto, dest.host, dest.port, data, dest.local):
            return True
        log.warning("tm: sending to %s:%s:%d failed", dest.proto, dest.host, dest.port)
        return False

    def _send_after_onsend(self, dest: Dest, data: bytes, origin: str = "") -> bool:
        """``send`` with onsend_route_reply=yes: a reply relayed from the one being handled
        goes through the script's onsend_route first, as in Kamailio 5.6 (not tm's own replies,
        nor the retransmissions it answers a request's with)."""
        ctx = self._reply_in
        if (ctx is not None and origin == "relayed" and self._held is None
                and not self.core.run_onsend(ctx.msg, ctx.rcv, data, dest.proto, dest.host,
                                             dest.port, ctx)):
            return True  # dropped by the route: not sent
        return TmService.send(self, dest, data, origin)

    def _on_reply_with_onsend(self, ctx: MsgContext) -> bool:
        """``on_reply`` with onsend_route_reply=yes: what it relays runs the onsend route."""
        self._reply_in = ctx
        try:
            return TmService.on_reply(self, ctx)
        finally:
            self._reply_in = None

    def pass_up(self, msg: SipMsg) -> None:
        if self._held is not None:
            self._held.append((None, PassUp(msg)))
        else:
            self.forward_reply(msg)

    def branch_final(self, tx: TmTransaction, branch: int, status: int,
                     reply: SipMsg | None) -> None:
        if tx.callbacks.branch_failure is not None:  # else nobody listens
            self._hold(tx, BranchFinal(branch, status, reply))

    def needs_decision(self, tx: TmTransaction, status: int, reply: SipMsg | None) -> None:
        self._hold(tx, NeedsDecision(status, reply))

    def _hold(self, tx: TmTransaction, record: Action) -> None:
        if self._held is None:
            self._held = [(tx, record)]
        else:
            self._held.append((tx, record))

    def done(self, tx: TmTransaction, decide: bool = True) -> None:
        """After an input of ``tx``: run what waited for its end, in order, then count a final
        sent upstream. ``decide=False``: a decision asked for ``tx`` is not run (t_relay whose
        branches all failed at once leaves the answer to the script)."""
        held = self._held
        if held is not None:
            self._held = None  # what the routes below cause runs at once, as it comes
            for owner, record in held:  # rare: only when a route is to run
                if isinstance(record, Send):
                    self.send(record.dest, record.data, record.origin)  # nothing held: sent
                elif isinstance(record, PassUp):
                    self.forward_reply(record.msg)
                elif owner is None:
                    continue
                elif isinstance(record, BranchFinal):
                    self.script.branch_failure(owner, record)
                elif isinstance(record, NeedsDecision) and not owner.in_failure and (
                        decide or owner is not tx):
                    self.decide(owner, record)
        if tx.final_status and not tx.counted_final:
            self._count_final(tx)

    def _count_final(self, tx: TmTransaction) -> None:
        """``done`` saw a final sent upstream that was not counted yet."""
        tx.counted_final = True
        c = self.stats.by_class.get(tx.final_status // 100)  # TmStats.final, in place
        if c is not None:
            c.view[c.slot] += 1
        for handler in self.final_handlers:
            try:
                handler(tx)
            except Exception:  # a failing observer never breaks the transaction
                log.exception("tm: final reply handler %r failed", handler)

    def forward_reply(self, reply: SipMsg) -> None:
        """A reply the transaction no longer takes (a late 2xx): on to the next Via, statelessly,
        counted as relayed (Kamailio's rpl_sent counts it too)."""
        try:
            sent = forward_reply(self.core, reply, False, self._reply_in)
        except SipParseError:
            return
        if sent and not reply.is_request:
            c = self.stats.rpl_relayed
            c.view[c.slot] += 1

    def _freed(self, tx: ProxyTransaction) -> None:
        c = self.stats.freed
        c.view[c.slot] += 1  # Counter.inc written in place (one per transaction)

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
                tx.reply(500, "Server Internal Error", now)
            else:
                tx.relay_best(now)
        except TransactionStateError as exc:
            log.error("tm: cannot answer the transaction after the failure route: %s", exc)
            return
        self.done(tx)

    def on_send_failed(self, data: bytes) -> None:
        """Core send-failure handler: a request of one of our branches, which the transport
        took, could not go out after all (a stream connection another worker held was gone):
        the branch fails as a send refused at once would have (``branch_send_failed``)."""
        try:
            msg = parse_datagram(data)
            found = self.table.lookup_reply(msg) if msg.is_request else None
        except SipParseError:
            return
        if found is None:
            return
        tx, index = found
        if TYPE_CHECKING:
            assert isinstance(tx, TmTransaction)
        if msg.method != tx.method:
            return  # an ACK or CANCEL of the branch: no transaction of its own waits
        log.error("t_relay: sending branch %d to %s:%d failed", index,
                  tx.branches[index].dest.host, tx.branches[index].dest.port)
        tx.branch_send_failed(index, self.clock.now())
        self.done(tx)

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
                handoff = self.core.main_handoff  # a reply to the main process's tm.t_uac_start
                if handoff is not None and handoff(ctx):
                    return True
                return self._unmatched_reply(ctx)
        except SipParseError:
            return False
        tx, branch = found
        if TYPE_CHECKING:  # the worker's table holds TmTransactions (no check per reply)
            assert isinstance(tx, TmTransaction)
        c = self.stats.rpl_received
        c.view[c.slot] += 1  # Counter.inc in place (see ``send``)
        tx.branches[branch].replied = True
        if tx.callbacks.reply is not None and self.script.onreply(ctx, tx, branch):
            return True  # a provisional reply the onreply route dropped
        counted = tx.counted_final
        tx.on_response(branch, msg, self.clock.now())
        if self._held is not None:
            self.done(tx)
        elif tx.final_status and not tx.counted_final:
            self._count_final(tx)  # ``done`` with nothing held (a 1xx, usually: neither)
        if counted and msg.status < 300:
            self._count_2xx_again(tx, msg.status)
        return True

    def _count_2xx_again(self, tx: TmTransaction, status: int) -> None:
        """A reply after the counted final: a 2xx the INVITE relays again (the callee's
        retransmission while the ACK is late, another branch's 2xx, a 2xx after a negative
        final) counts in 2xx once more, as Kamailio 5.6 counts each 2xx it relays (its
        tm.stats can show more 2xx than transactions); its final handlers (acc) still ran
        once."""
        if status >= 200 and tx.is_invite:
            c = self.stats.again_2xx  # summed into 2xx (TmStats)
            c.view[c.slot] += 1

    def _unmatched_reply(self, ctx: MsgContext) -> bool:
        name = self.settings.on_sl_reply
        return bool(name) and self.script.unmatched_reply(ctx, name)

    def tick(self, now: float) -> None:
        """Fire the transactions' timers due at ``now``."""
        ran = self.table.on_timer(now)
        if self._held is None:
            return  # most wake-ups just end transactions: nothing waits
        for tx in ran:
            # a timer sends no final itself: only a route it asked for (a branch's timeout)
            # needs ``done``
            if self._held is not None:
                assert isinstance(tx, TmTransaction)
                self.done(tx)


@functools.lru_cache(maxsize=1024)
def _dest(proto: str, host: str, port: int, local: tuple[str, int]) -> Dest:
    """Dest is frozen: one object serves every transaction answering one address."""
    return Dest(proto, host, port, local)


def _split_header(line: str | tuple[str, str]) -> tuple[str, str]:
    if isinstance(line, tuple):
        return line
    name, _, value = line.strip().partition(":")
    return name.strip(), value.strip()


