"""The stateful proxy core (RFC 3261 16.6-16.10): one server transaction, N branch clients.

``ProxyTransaction(request, reply_dest, ...)`` owns the server transaction of a received request
and one client transaction per branch. It is sans-IO like the machines it joins: what goes on
the wire and what the transaction user must act on goes to its ``sink`` (``actions`` module),
time comes in as ``now``.

Life of a call through it (what the tm glue does):
  1. ``tx = ProxyTransaction(req, reply_dest)``; ``table.insert(tx)``; ``tx.start(now)`` (100
     Trying for INVITE when ``auto_inv_100``).
  2. ``tx.add_branch(req_for_branch, dest, now, sent_by="host:port")`` once per destination
     (parallel forking); it puts our Via (branch ``z9hG4bK<ident>.<n>``) on a copy; then the
     caller sends each branch's request (``branch_send_failed`` when the transport refuses it).
  3. Replies: ``table.lookup_reply(reply)`` -> ``(tx, branch)``; run onreply_route on the reply
     (edits stay: the forwarded reply is this message minus our Via); ``tx.on_response(branch,
     reply, now)``. 1xx (not 100) are forwarded at once, every 2xx too (other INVITE branches
     get CANCELed), a 6xx CANCELs the others; finals are stored in the response context.
  4. When every branch completed without a 2xx: ``sink.needs_decision`` -> run failure_route,
     which may
     ``add_branch`` (serial forking: a new step), ``reply()``; otherwise call ``relay_best(now)``
     (16.7 step 6 choice; 503 becomes 500).
  5. Retransmitted request / ACK: ``table.lookup_request(msg)`` -> ``tx.on_request(msg, now)``
     (True: an ACK of a 2xx, routed end to end).
     Caller CANCEL: ``table.lookup_cancel_target(cancel)`` -> ``tx.cancel_all(now)``.
  6. Timers: ``table.next_timer()`` / ``table.on_timer(now)``; a branch with no final in time
     counts as a local 408 (nothing is sent downstream for it; an INVITE branch that had a 1xx
     is CANCELed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from kemi_core.sip import build_reply, parse_datagram
from kemi_tm.actions import Dest, ProxySink, Recorder, TransactionStateError
from kemi_tm.client import ClientState, InviteClientTransaction, NonInviteClientTransaction
from kemi_tm.context import (
    DEFAULT_PROXY,
    BranchState,
    InviteBranch,
    NonInviteBranch,
    ProxySettings,
    reply_priority,
)
from kemi_tm.idents import new_ident_and_tag
from kemi_tm.keys import MAGIC_COOKIE, ServerKey
from kemi_tm.messages import REASONS, build_cancel
from kemi_tm.server import ServerState, ServerTransaction
from kemi_tm.timers import DEFAULT_TIMERS, TimerSettings

#: what Kamailio 5.6 answers upstream when the best final is a received 503 (remap_503_500):
#: its own 500, worded so (run: a callee's "503 Overloaded" gives "500 Service Unavailable")
REMAPPED_503_REASON = "Service Unavailable"

if TYPE_CHECKING:
    from kemi_core.sip import SipMsg

_PROCEEDING = ServerState.PROCEEDING
_TERMINATED = ServerState.TERMINATED
_CLIENT_TERMINATED = ClientState.TERMINATED
#: the timers that end their machine when they fire and send nothing: the server's H, I, J, L
#: and the clients' D, M (INVITE) and K (non-INVITE); no machine uses another's names
_LAST_WAITS = frozenset({"H", "I", "J", "L", "D", "M", "K"})

#: the local outcome of a branch onsend_route dropped (never sent): every other final of its
#: step beats it, so only a step whose every branch was dropped answers it (Kamailio 5.6)
DROPPED = 477
_DROPPED_PRIO = 1 << 30

__all__ = ["BranchState", "ProxySettings", "ProxyTransaction", "not_filed", "reply_priority"]


def not_filed(tx: ProxyTransaction) -> None:
    """``on_reschedule`` of a transaction no table holds: nothing to re-arm."""


class ProxyTransaction(ServerTransaction):
    """A server transaction joined to its branches, with the 16.7 response context.

    It is its own server transaction (a subclass, not a member): one object less per
    transaction and the server's state read without a hop on every input. Its ``on_request``,
    ``on_timer``, ``next_timer`` and ``terminated`` cover the branches too; ``reply`` is t_reply's
    (a status and a reason), the server machine's is ``send_reply`` / ``offer_reply`` (bytes)."""

    # slots: thousands of these live for seconds (wt_timer); no per-instance dict to allocate
    # and for the garbage collector to walk.
    __slots__ = ("proxy_settings", "ident", "to_tag", "branches", "step",
                 "canceled", "deciding", "got_6xx", "on_reschedule", "filed_at",
                 "refile")

    # settings, proxy_settings, key and sink may come by position: a subclass passes them on
    # without binding keywords again (one is made per relayed request)
    def __init__(self, request: SipMsg, reply_dest: Dest,
                 settings: TimerSettings = DEFAULT_TIMERS,
                 proxy_settings: ProxySettings = DEFAULT_PROXY,
                 key: ServerKey | None = None, sink: ProxySink | None = None, *,
                 ident: str | None = None, to_tag: str | None = None) -> None:
        # the server transaction's fields; ``key``: the request's server key when the caller
        # has it already (computed on the message it copied ``request`` from, whose headers
        # are parsed); where this transaction's machines send and report: ``sink``, none
        # given: a Recorder
        super().__init__(request, reply_dest, settings, key,
                         sink if sink is not None else Recorder())
        self.sink: ProxySink
        self.proxy_settings = proxy_settings
        if not ident or not to_tag:
            new_ident, new_tag = new_ident_and_tag()
            ident = ident or new_ident
            to_tag = to_tag or new_tag
        #: unique id; our branch ids are ``z9hG4bK<ident>.<index>``
        self.ident = ident
        #: To tag of the replies we generate ourselves
        self.to_tag = to_tag
        self.branches: list[BranchState] = []
        self.step = 0
        self.canceled = False
        #: a decision was asked (``sink.needs_decision``) and not yet answered
        self.deciding = False
        self.got_6xx = False
        #: the table's hook: called after every input so it can re-arm this entry's timer (a
        #: no-op until the table takes the entry: always callable, no test per input)
        self.on_reschedule: Callable[[ProxyTransaction], None] = not_filed
        #: the table's bookkeeping: the deadline it filed this entry under (None: not filed)
        self.filed_at: float | None = None
        #: the table's bookkeeping: marked for a refile at its next flush
        self.refile = False

    # ----- state -----
    @property
    def pending_branches(self) -> int:
        return sum(1 for b in self.branches if b.pending)

    @property
    def terminated(self) -> bool:
        # read after every input (the table): states compared inline, no property per machine
        if self.state is not ServerState.TERMINATED:
            return False
        for b in self.branches:
            if b.state is not ClientState.TERMINATED or (
                    b.cancel is not None and b.cancel.state is not ClientState.TERMINATED):
                return False
        return True

    def next_timer(self) -> float | None:
        # called after every input (the table re-arms this entry): the machines' timer dicts
        # read inline, no temporary lists
        timers = self.timers
        at = min(timers.values()) if timers else None
        for b in self.branches:
            timers = b.timers
            if timers:
                t = min(timers.values())
                if at is None or t < at:
                    at = t
            if b.cancel is not None:
                timers = b.cancel.timers
                if timers:
                    t = min(timers.values())
                    if at is None or t < at:
                        at = t
        return at

    def best_reply(self) -> tuple[int, SipMsg | None]:
        """The 16.7 step 6 choice among the finals considered (status 0 when none)."""
        ps = self.proxy_settings
        best: BranchState | None = None
        best_prio = 0
        for b in self.branches:
            if b.pending or (ps.failure_reply_mode == 3 and b.step != self.step):
                continue
            prio = reply_priority(b.status, b.reply is None, ps.faked_reply_prio)
            if b.status == DROPPED and b.reply is None:
                prio = _DROPPED_PRIO
            if best is None or prio < best_prio:
                best, best_prio = b, prio
        return (best.status, best.reply) if best is not None else (0, None)

    # ----- inputs -----
    # Each input sends through ``self.sink`` and reports branch finals and decisions to it
    # as it goes (``actions``); the table hears about the new deadline at the end.
    def start(self, now: float) -> None:
        """100 Trying for an INVITE when ``auto_inv_100`` and nothing was answered yet (t_relay
        calls it, as Kamailio 5.6 sends it there, not in t_newtran). No timer is armed (a
        server transaction in Trying or Proceeding has none): the table hears nothing."""
        # can_reply(100) of a new INVITE transaction: Proceeding, read inline
        if (self.is_invite and self.proxy_settings.auto_inv_100 and self.state is _PROCEEDING
                and not self.last_status):
            self._reply(100, self.proxy_settings.auto_inv_100_reason, now)

    def add_branch(self, request: SipMsg | bytes, dest: Dest, now: float, *,
                   sent_by: str, via_params: str = "", owned: bool = False,
                   top_via: str | None = None) -> int:
        """Make a branch for a copy of ``request`` to ``dest`` with our Via (``sent_by`` =
        "host[:port]", ``via_params`` after the branch, e.g. ";rport").
        ``owned``: the caller hands ``request`` over (a copy made for this branch, e.g. the
        branch route's), so its own top Via is kept as it is. Otherwise the branch's request
        is ``request``'s bytes with our Via on top (and ``top_via`` in place of its own top
        Via, as ``apply_via``). Either way no parsed copy is kept: the branch holds the bytes
        and parses them again only to build a CANCEL or an ACK.

        While other branches are pending it forks in parallel; after a decision was asked it
        opens a new serial step. Returns the branch index; the branch's client is armed and
        its request (``client.data`` to ``client.dest``) is the caller's to send, so a branch
        that fails at once cannot end the step before the others exist.
        """
        if self.method == "ACK":
            raise TransactionStateError("ACK is not relayed on a branch")
        if self.final_status:
            raise TransactionStateError(f"a {self.final_status} was already sent upstream")
        if self.canceled:
            raise TransactionStateError("the transaction was canceled")
        if self.got_6xx and not self.proxy_settings.disable_6xx_block:
            raise TransactionStateError("a 6xx reply blocks new branches")
        if self.branches and self.pending_branches == 0:
            self.step += 1  # serial forking from the failure route
        self.deciding = False
        index = len(self.branches)
        branch = f"{MAGIC_COOKIE}{self.ident}.{index}"
        ours = f"SIP/2.0/{dest.proto.upper()} {sent_by};branch={branch}{via_params}"
        wire: SipMsg | bytes
        if isinstance(request, bytes):
            wire = parse_datagram(request)
            wire.prepend_via(ours)
        elif owned:
            # the copy made for this branch (its branch route ran on it) is not kept: the
            # branch holds its bytes, parsed again only for a CANCEL or an ACK (as a branch
            # made from the request's bytes); fewer objects live as long as the transaction
            wire = request.bytes_with_via(ours)
        else:
            wire = request.bytes_with_via(ours, top_via)
        # the branch (its client transaction) owns wire from now on; it carries the
        # transaction's method
        b: BranchState = (InviteBranch if self.is_invite else NonInviteBranch)(
            index, self.step, wire, dest, self.settings, branch, self.sink, self.method)
        self.branches.append(b)
        b.arm(now)
        self.on_reschedule(self)
        return index

    def on_response(self, branch: int, reply: SipMsg, now: float) -> None:
        """A reply matched to ``branch`` (``TransactionTable.lookup_reply``)."""
        b = self.branches[branch]
        if reply.cseq.method == "CANCEL" and self.method != "CANCEL":
            if b.cancel is not None:
                b.cancel.on_response(reply, now)  # the 200 for our CANCEL ends there
        elif b.on_response(reply, now):
            self._branch_reply(b, reply, now)
        if not self.refile or self.state is _TERMINATED:  # else marked already: the table
            self.on_reschedule(self)  # has nothing new to hear (replies come in bursts)

    def on_request(self, msg: SipMsg, now: float) -> bool:
        """A retransmission of our request, or the ACK matched to it; True: an end-to-end ACK
        (of a 2xx), to be routed."""
        before = self.state
        pass_up = ServerTransaction.on_request(self, msg, now)
        if self.state is not before:  # a retransmission or a 2xx's ACK changes no timer
            self.on_reschedule(self)
        return pass_up

    def on_timer(self, now: float) -> int:
        """Fire the timers due at ``now``; 0 (a branch's local final goes to the sink)."""
        if self.ends_now(now):
            self.on_reschedule(self)  # (the table sees the end through ``terminated``)
            return 0
        timers = self.timers
        if timers and min(timers.values()) <= now:
            ServerTransaction.on_timer(self, now)  # the server machine's own
        # no branch is added while timers run (a failure route runs after, from the sink)
        for b in self.branches:
            timers = b.timers
            if timers and min(timers.values()) <= now:
                local = b.on_timer(now)
                if local:
                    self._branch_local(b, local, now)
            cancel = b.cancel
            if cancel is not None:
                timers = cancel.timers
                if timers and min(timers.values()) <= now:
                    cancel.on_timer(now)  # a CANCEL that gets no answer changes nothing
        self.on_reschedule(self)
        return 0

    def ends_now(self, now: float) -> bool:
        """Most wake-ups end the transaction: each machine's last wait timer fires and ends it.
        When that is all ``on_timer`` would do (every machine has ended or has one timer left,
        its last wait (``_LAST_WAITS``), due at ``now``, and no CANCEL was sent), every machine
        ends here at once, without a timer dispatch per machine (True; the table is not
        told). One frame: it runs for every transaction that ends."""
        timers = self.timers
        if timers:
            if len(timers) != 1:
                return False
            ((name, at),) = timers.items()
            if at > now or name not in _LAST_WAITS:
                return False
        elif self.state is not _TERMINATED:
            return False
        branches = self.branches
        for b in branches:
            if b.cancel is not None:
                return False
            timers = b.timers
            if timers:
                if len(timers) != 1:
                    return False
                ((name, at),) = timers.items()
                if at > now or name not in _LAST_WAITS:
                    return False
            elif b.state is not _CLIENT_TERMINATED:
                return False
        self.state = _TERMINATED
        self.timers.clear()
        for b in branches:
            b.state = _CLIENT_TERMINATED
            b.timers.clear()
        return True

    def branch_send_failed(self, branch: int, now: float, status: int = 503) -> None:
        """The transport refused a branch's request: it counts as a local 503 (16.9), or
        ``status`` (478: its destination does not resolve)."""
        b = self.branches[branch]
        local = b.on_transport_error(now, status)
        if local:
            self._branch_local(b, local, now)
        self.on_reschedule(self)

    def branch_dropped(self, branch: int, now: float) -> None:
        """The onsend_route dropped the request of a branch just added: it is never sent and
        ends as ``DROPPED``, with no branch-failure route (as in Kamailio 5.6)."""
        b = self.branches[branch]
        if b.on_transport_error(now, DROPPED) and b.pending:
            b.status = DROPPED
            self._check_complete()
        self.on_reschedule(self)

    def relay_best(self, now: float) -> None:
        """Send upstream the best final of the response context (after the failure route)."""
        if self.final_status:
            self.deciding = False
            return
        status, reply = self.best_reply()
        if not status:
            raise TransactionStateError("no final reply to relay")
        self.deciding = False
        self._send_final(status, reply, now)
        self.on_reschedule(self)

    def reply(self, status: int, reason: str, now: float, *,
              headers: Iterable[tuple[str, str]] = (), body: bytes = b"",
              content_type: str | None = None) -> None:
        """A reply generated here (t_reply); a final one CANCELs the pending INVITE branches."""
        if not self.can_reply(status):
            raise TransactionStateError(f"cannot reply {status}: {self.state.value}")
        self._reply(status, reason, now, headers, body, content_type)

    def cancel_all(self, now: float) -> None:
        """The caller CANCELed: CANCEL every pending branch (those without a 1xx as soon as one
        comes); they end in 487s, so the caller gets a 487 through the normal relay. With no
        branch at all, the 487 is answered here at once."""
        self.canceled = True
        if self.is_invite:
            self._cancel_pending(now)
            if not self.branches and self.can_reply(487):
                self._reply(487, REASONS[487], now)
        self.on_reschedule(self)

    def cancel_branch(self, branch: int, now: float) -> None:
        """CANCEL one pending INVITE branch (t_cancel_branches style)."""
        if self.is_invite:
            self._cancel(self.branches[branch], now)
        self.on_reschedule(self)

    def reply_via(self) -> str | None:
        """The request's top Via as the replies made here carry it (None: as it came); a
        transaction that knows where the request came from stamps ;received and ;rport="""
        return None

    # ----- internals -----
    def _reply(self, status: int, reason: str, now: float,
               headers: Iterable[tuple[str, str]] = (), body: bytes = b"",
               content_type: str | None = None) -> None:
        """``reply`` once ``can_reply(status)`` was checked (one check per reply)."""
        data = build_reply(self.request, status, reason,
                           to_tag=None if status == 100 else self.to_tag,
                           headers=list(headers), body=body, content_type=content_type,
                           top_via=self.reply_via())
        self.offer_reply(status, data, now, "local")
        if status >= 200:  # a provisional reply arms no timer: nothing for the table
            self.deciding = False
            self._cancel_pending(now)
            self.on_reschedule(self)

    def _branch_reply(self, b: BranchState, reply: SipMsg, now: float) -> None:
        status = reply.status
        if status < 200:
            if b.cancel_wanted and b.cancel is None and b.state is ClientState.PROCEEDING:
                self._send_cancel(b, now)
            if status > 100:  # sent when the state allows it (offer_reply checks)
                self.offer_reply(status, reply.bytes_without_top_via(), now, "relayed")
            return
        first = b.status == 0  # b.pending, read on every final: no property call
        if first:
            b.status = status
            if status >= 300:  # a 2xx is not kept: see BranchFields.reply
                b.reply = reply
            self.sink.branch_final(self, b.index, status, reply)
        if status < 300:
            if self.offer_reply(status, reply.bytes_without_top_via(), now, "relayed"):
                self.deciding = False
            else:
                self.sink.pass_up(reply)  # too late for the transaction: forward statelessly
            if first and len(self.branches) > 1:  # a lone branch has no other to cancel
                self._cancel_pending(now)
            return
        if not first:
            return  # already final (e.g. a local 408): the late reply only gets its ACK
        if status >= 600:
            self.got_6xx = True
            self._cancel_pending(now)
        self._check_complete()

    def _branch_local(self, b: BranchState, status: int, now: float) -> None:
        if not b.pending:
            return
        if status == 408 and b.cancel_wanted:
            status = 487  # a canceled branch that never answered was terminated by us
        b.status = status
        self.sink.branch_final(self, b.index, status, None)
        if status == 408 and self.is_invite:
            self._cancel(b, now)  # fr_inv_timer: stop the ringing downstream
        self._check_complete()

    def _check_complete(self) -> None:
        if self.deciding or self.final_status or any(b.pending for b in self.branches):
            return
        status, reply = self.best_reply()
        if status:
            self.deciding = True
            self.sink.needs_decision(self, status, reply)

    def _send_final(self, status: int, reply: SipMsg | None, now: float) -> None:
        remap = status == 503 and self.proxy_settings.remap_503_500
        if reply is not None:
            if remap:  # as Kamailio 5.6 (run): a reply of our own, none of the 503's headers
                self.reply(500, REMAPPED_503_REASON, now)
                return
            data = reply.bytes_without_top_via()  # our Via off, every other byte as received
            self.send_reply(status, data, now, "relayed")
            return
        if remap:
            status = 500
        self.reply(status, REASONS.get(status, "Error"), now)

    def _cancel_pending(self, now: float) -> None:
        if not self.is_invite:
            return
        for b in self.branches:
            if b.status == 0:  # b.pending without the property call (every final runs this)
                self._cancel(b, now)

    def _cancel(self, b: BranchState, now: float) -> None:
        b.cancel_wanted = True
        if b.cancel is None and b.state is ClientState.PROCEEDING:  # got_provisional
            self._send_cancel(b, now)

    def _send_cancel(self, b: BranchState, now: float) -> None:
        b.cancel = NonInviteClientTransaction(
            parse_datagram(build_cancel(b.request)), b.dest, self.settings, sink=self.sink)
        if isinstance(b, InviteClientTransaction):
            b.mark_cancelled(now)
        b.cancel.start(now)


