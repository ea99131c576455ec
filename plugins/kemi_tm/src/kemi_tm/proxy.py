"""The stateful proxy core (RFC 3261 16.6-16.10): one server transaction, N branch clients.

``ProxyTransaction(request, reply_dest, ...)`` owns the server transaction of a received request
and one client transaction per branch. It is sans-IO like the machines it joins: every input
returns ``list[Action]`` (``actions`` module), time comes in as ``now``.

Life of a call through it (what the tm glue does):
  1. ``tx = ProxyTransaction(req, reply_dest)``; ``table.insert(tx)``; ``tx.start(now)`` (100
     Trying for INVITE when ``auto_inv_100``).
  2. ``tx.add_branch(req_for_branch, dest, now, sent_by="host:port")`` once per destination
     (parallel forking); it puts our Via (branch ``z9hG4bK<ident>.<n>``) on a copy and sends it.
  3. Replies: ``table.lookup_reply(reply)`` -> ``(tx, branch)``; run onreply_route on the reply
     (edits stay: the forwarded reply is this message minus our Via); ``tx.on_response(branch,
     reply, now)``. 1xx (not 100) are forwarded at once, every 2xx too (other INVITE branches
     get CANCELed), a 6xx CANCELs the others; finals are stored in the response context.
  4. When every branch completed without a 2xx: ``NeedsDecision`` -> run failure_route, which may
     ``add_branch`` (serial forking: a new step), ``reply()``; otherwise call ``relay_best(now)``
     (16.7 step 6 choice; 503 becomes 500).
  5. Retransmitted request / ACK: ``table.lookup_request(msg)`` -> ``tx.on_request(msg, now)``.
     Caller CANCEL: ``table.lookup_cancel_target(cancel)`` -> ``tx.cancel_all(now)``.
  6. Timers: ``table.next_timer()`` / ``table.on_timer(now)``; a branch with no final in time
     counts as a local 408 (nothing is sent downstream for it; an INVITE branch that had a 1xx
     is CANCELed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from kemi_core.sip import build_reply, parse_datagram
from kemi_tm.actions import (
    Action,
    BranchFinal,
    Dest,
    LocalFinal,
    NeedsDecision,
    PassUp,
    Send,
    Terminated,
    TransactionStateError,
)
from kemi_tm.client import (
    ClientState,
    ClientTransaction,
    InviteClientTransaction,
    NonInviteClientTransaction,
)
from kemi_tm.context import DEFAULT_PROXY, BranchState, ProxySettings, reply_priority
from kemi_tm.idents import new_ident_and_tag
from kemi_tm.keys import MAGIC_COOKIE, ServerKey
from kemi_tm.messages import REASONS, build_cancel, rewrite_status
from kemi_tm.server import (
    InviteServerTransaction,
    NonInviteServerTransaction,
    ServerState,
    ServerTransaction,
)
from kemi_tm.timers import DEFAULT_TIMERS, TimerSettings

if TYPE_CHECKING:
    from kemi_core.sip import SipMsg

__all__ = ["BranchState", "ProxySettings", "ProxyTransaction", "not_filed", "reply_priority"]


def not_filed(tx: ProxyTransaction) -> None:
    """``on_reschedule`` of a transaction no table holds: nothing to re-arm."""


class ProxyTransaction:
    """A server transaction joined to its branches, with the 16.7 response context."""

    # slots: thousands of these live for seconds (wt_timer); no per-instance dict to allocate
    # and for the garbage collector to walk.
    __slots__ = ("request", "method", "is_invite", "settings", "proxy_settings", "server", "key",
                 "ident", "branch_prefix", "to_tag", "branches", "step", "canceled", "deciding",
                 "got_6xx", "on_reschedule", "filed_at")

    def __init__(self, request: SipMsg, reply_dest: Dest, *,
                 settings: TimerSettings = DEFAULT_TIMERS,
                 proxy_settings: ProxySettings = DEFAULT_PROXY,
                 ident: str | None = None, to_tag: str | None = None,
                 key: ServerKey | None = None) -> None:
        self.request = request
        self.method = request.method
        self.is_invite = self.method == "INVITE"
        self.settings = settings
        self.proxy_settings = proxy_settings
        #: ``key``: the request's server key when the caller has it already (computed on the
        #: message it copied ``request`` from, whose headers are parsed)
        self.server: ServerTransaction = (
            InviteServerTransaction(request, reply_dest, settings, key) if self.is_invite
            else NonInviteServerTransaction(request, reply_dest, settings, key))
        self.key = self.server.key
        if not ident or not to_tag:
            new_ident, new_tag = new_ident_and_tag()
            ident = ident or new_ident
            to_tag = to_tag or new_tag
        #: unique id; our branch ids are ``z9hG4bK<ident>.<index>``
        self.ident = ident
        self.branch_prefix = f"{MAGIC_COOKIE}{ident}."
        #: To tag of the replies we generate ourselves
        self.to_tag = to_tag
        self.branches: list[BranchState] = []
        self.step = 0
        self.canceled = False
        #: NeedsDecision was emitted and not yet answered
        self.deciding = False
        self.got_6xx = False
        #: the table's hook: called after every input so it can re-arm this entry's timer (a
        #: no-op until the table takes the entry: always callable, no test per input)
        self.on_reschedule: Callable[[ProxyTransaction], None] = not_filed
        #: the table's bookkeeping: the deadline it filed this entry under (None: not filed)
        self.filed_at: float | None = None

    # ----- state -----
    @property
    def final_status(self) -> int:
        """First final status sent upstream (0: none yet)."""
        return self.server.final_status

    @property
    def pending_branches(self) -> int:
        return sum(1 for b in self.branches if b.pending)

    @property
    def terminated(self) -> bool:
        # read after every input (the table): states compared inline, no property per machine
        if self.server.state is not ServerState.TERMINATED:
            return False
        for b in self.branches:
            if b.client.state is not ClientState.TERMINATED or (
                    b.cancel is not None and b.cancel.state is not ClientState.TERMINATED):
                return False
        return True

    def next_timer(self) -> float | None:
        # called after every input (the table re-arms this entry): the machines' timer dicts
        # read inline, no temporary lists
        timers = self.server.timers
        at = min(timers.values()) if timers else None
        for b in self.branches:
            timers = b.client.timers
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

    def match_reply(self, reply: SipMsg) -> int | None:
        """Index of the branch a reply belongs to (by Via branch and CSeq method), or None."""
        branch = reply.via.branch or ""
        head, _, tail = branch.rpartition(".")
        if head + "." != self.branch_prefix:
            return None
        return self.match_branch(branch, tail, reply.cseq.method)

    def match_branch(self, branch: str, tail: str, method: str) -> int | None:
        """``match_reply`` once the caller split the Via ``branch`` at its last dot (``tail``:
        our branch index, as text) and checked the rest is this transaction's prefix."""
        if not tail.isdigit():
            return None
        index = int(tail)
        branches = self.branches
        if index >= len(branches):
            return None
        b = branches[index]
        if method == "CANCEL" and self.method != "CANCEL":  # the CANCEL we sent for an INVITE branch
            return index if b.cancel is not None else None
        return index if b.client.key == (branch, method) else None

    def best_reply(self) -> tuple[int, SipMsg | None]:
        """The 16.7 step 6 choice among the finals considered (status 0 when none)."""
        ps = self.proxy_settings
        best: BranchState | None = None
        best_prio = 0
        for b in self.branches:
            if b.pending or (ps.failure_reply_mode == 3 and b.step != self.step):
                continue
            prio = reply_priority(b.status, b.reply is None, ps.faked_reply_prio)
            if best is None or prio < best_prio:
                best, best_prio = b, prio
        return (best.status, best.reply) if best is not None else (0, None)

    # ----- inputs -----
    def start(self, now: float) -> list[Action]:
        """Open the transaction: 100 Trying for an INVITE when ``auto_inv_100``."""
        if self.is_invite and self.proxy_settings.auto_inv_100 and self.server.can_reply(100):
            return self.reply(100, self.proxy_settings.auto_inv_100_reason, now)  # re-arms
        self.on_reschedule(self)
        return []

    def add_branch(self, request: SipMsg | bytes, dest: Dest, now: float, *,
                   sent_by: str, via_params: str = "",
                   owned: bool = False) -> tuple[int, list[Action]]:
        """Forward a copy of ``request`` to ``dest`` with our Via (``sent_by`` = "host[:port]",
        ``via_params`` after the branch, e.g. ";rport").
        ``owned``: the caller hands ``request`` over (a copy made for this branch), so it is
        used as it is instead of being copied again.

        While other branches are pending it forks in parallel; after ``NeedsDecision`` it opens
        a new serial step. Returns the branch index and the actions (the request to send).
        """
        if self.method == "ACK":
            raise TransactionStateError("ACK is not relayed on a branch")
        if self.server.final_status:
            raise TransactionStateError(f"a {self.final_status} was already sent upstream")
        if self.canceled:
            raise TransactionStateError("the transaction was canceled")
        if self.got_6xx and not self.proxy_settings.disable_6xx_block:
            raise TransactionStateError("a 6xx reply blocks new branches")
        if self.branches and self.pending_branches == 0:
            self.step += 1  # serial forking from the failure route
        self.deciding = False
        index = len(self.branches)
        if isinstance(request, bytes):
            msg = parse_datagram(request)
        else:
            msg = request if owned else request.copy()
        branch = f"{self.branch_prefix}{index}"
        msg.prepend_via(f"SIP/2.0/{dest.proto.upper()} {sent_by};branch={branch}{via_params}")
        # the client owns msg from now on; a branch carries the transaction's method
        client: ClientTransaction = (
            InviteClientTransaction(msg, dest, self.settings, branch) if self.is_invite
            else NonInviteClientTransaction(msg, dest, self.settings, branch))
        self.branches.append(BranchState(index=index, step=self.step, client=client))
        out = client.start(now)
        self.on_reschedule(self)
        return index, out

    def on_response(self, branch: int, reply: SipMsg, now: float) -> list[Action]:
        """A reply matched to ``branch`` (see ``match_reply`` / ``TransactionTable.lookup_reply``)."""
        b = self.branches[branch]
        if reply.cseq.method == "CANCEL" and self.method != "CANCEL":
            acts = b.cancel.on_response(reply, now) if b.cancel is not None else []
            out: list[Action] = [a for a in acts if isinstance(a, Send)]
        else:
            acts = b.client.on_response(reply, now)
            if len(acts) == 1 and type(acts[0]) is PassUp:  # the usual outcome: straight on
                out = self._branch_reply(b, reply, now)
            else:
                out = self._client_actions(b, acts, now)
        self.on_reschedule(self)
        return out

    def on_request(self, msg: SipMsg, now: float) -> list[Action]:
        """A retransmission of our request, or the ACK matched to it (PassUp: an end-to-end ACK)."""
        server = self.server
        before = server.state
        out = server.on_request(msg, now)
        if server.state is not before:  # a retransmission or a 2xx's ACK changes no timer
            self.on_reschedule(self)
        return out

    def on_timer(self, now: float) -> list[Action]:
        # Most calls end a transaction: each machine's last wait timer fires and reports
        # Terminated, which stays here (the table sees the end through ``terminated``).
        out: list[Action] = []
        server = self.server
        timers = server.timers
        if timers and min(timers.values()) <= now:
            acts = server.on_timer(now)
            if acts and type(acts[0]) is not Terminated:
                out += [a for a in acts if type(a) is not Terminated]
        # no branch is added while timers run (a failure route runs after, from the actions)
        for b in self.branches:
            client = b.client
            timers = client.timers
            if timers and min(timers.values()) <= now:
                acts = client.on_timer(now)
                if acts and type(acts[0]) is not Terminated:
                    out += self._client_actions(b, acts, now)
            cancel = b.cancel
            if cancel is not None:
                timers = cancel.timers
                if timers and min(timers.values()) <= now:
                    out += [a for a in cancel.on_timer(now) if type(a) is Send]
        self.on_reschedule(self)
        return out

    def branch_send_failed(self, branch: int, now: float, status: int = 503) -> list[Action]:
        """The transport refused a branch's request: it counts as a local 503 (16.9), or
        ``status`` (478: its destination does not resolve)."""
        b = self.branches[branch]
        out = self._client_actions(b, b.client.on_transport_error(now, status), now)
        self.on_reschedule(self)
        return out

    def relay_best(self, now: float) -> list[Action]:
        """Send upstream the best final of the response context (after the failure route)."""
        if self.final_status:
            self.deciding = False
            return []
        status, reply = self.best_reply()
        if not status:
            raise TransactionStateError("no final reply to relay")
        self.deciding = False
        out = self._send_final(status, reply, now)
        self.on_reschedule(self)
        return out

    def reply(self, status: int, reason: str, now: float, *,
              headers: Iterable[tuple[str, str]] = (), body: bytes = b"",
              content_type: str | None = None) -> list[Action]:
        """A reply generated here (t_reply); a final one CANCELs the pending INVITE branches."""
        if not self.server.can_reply(status):
            raise TransactionStateError(f"cannot reply {status}: {self.server.state.value}")
        data = build_reply(self.request, status, reason,
                           to_tag=None if status == 100 else self.to_tag,
                           headers=list(headers), body=body, content_type=content_type)
        out = self.server.send_reply(status, data, now, "local")
        if status >= 200:
            self.deciding = False
            out += self._cancel_pending(now)
        self.on_reschedule(self)
        return out

    def cancel_all(self, now: float) -> list[Action]:
        """The caller CANCELed: CANCEL every pending branch (those without a 1xx as soon as one
        comes); they end in 487s, so the caller gets a 487 through the normal relay. With no
        branch at all, the 487 is answered here at once."""
        self.canceled = True
        out: list[Action] = []
        if self.is_invite:
            out = self._cancel_pending(now)
            if not self.branches and self.server.can_reply(487):
                out += self.reply(487, REASONS[487], now)
        self.on_reschedule(self)
        return out

    def cancel_branch(self, branch: int, now: float) -> list[Action]:
        """CANCEL one pending INVITE branch (t_cancel_branches style)."""
        out = self._cancel(self.branches[branch], now) if self.is_invite else []
        self.on_reschedule(self)
        return out

    # ----- internals -----
    def _client_actions(self, b: BranchState, acts: list[Action], now: float) -> list[Action]:
        out: list[Action] = []
        for a in acts:  # exact types: these classes are final
            kind = type(a)
            if kind is Send:
                out.append(a)
            elif kind is PassUp:
                out += self._branch_reply(b, a.msg, now)  # type: ignore[union-attr]
            elif kind is LocalFinal:
                out += self._branch_local(b, a.status, now)  # type: ignore[union-attr]
        return out

    def _branch_reply(self, b: BranchState, reply: SipMsg, now: float) -> list[Action]:
        status = reply.status
        out: list[Action] = []
        if status < 200:
            if b.cancel_wanted and b.cancel is None and b.client.got_provisional:
                out += self._send_cancel(b, now)
            if status > 100 and self.server.can_reply(status):
                out += self.server.send_reply(status, reply.bytes_without_top_via(), now, "relayed")
            return out
        first = b.status == 0  # b.pending, read on every final: no property call
        if first:
            b.status, b.reply = status, reply
            out.append(BranchFinal(b.index, status, reply))
        if status < 300:
            if self.server.can_reply(status):
                out += self.server.send_reply(status, reply.bytes_without_top_via(), now, "relayed")
                self.deciding = False
            else:
                out.append(PassUp(reply))  # too late for the transaction: forward statelessly
            if first:
                out += self._cancel_pending(now)
            return out
        if not first:
            return out  # already final (e.g. a local 408): the late reply only gets its ACK
        if status >= 600:
            self.got_6xx = True
            out += self._cancel_pending(now)
        return out + self._check_complete()

    def _branch_local(self, b: BranchState, status: int, now: float) -> list[Action]:
        if not b.pending:
            return []
        if status == 408 and b.cancel_wanted:
            status = 487  # a canceled branch that never answered was terminated by us
        b.status = status
        out: list[Action] = [BranchFinal(b.index, status, None)]
        if status == 408 and self.is_invite:
            out += self._cancel(b, now)  # fr_inv_timer: stop the ringing downstream
        return out + self._check_complete()

    def _check_complete(self) -> list[Action]:
        if self.deciding or self.final_status or any(b.pending for b in self.branches):
            return []
        status, reply = self.best_reply()
        if not status:
            return []
        self.deciding = True
        return [NeedsDecision(status, reply)]

    def _send_final(self, status: int, reply: SipMsg | None, now: float) -> list[Action]:
        remap = status == 503 and self.proxy_settings.remap_503_500
        if reply is not None:
            data = _strip_via(reply)
            if remap:
                data = rewrite_status(data, 500, REASONS[500])
            return self.server.send_reply(500 if remap else status, data, now, "relayed")
        if remap:
            status = 500
        return self.reply(status, REASONS.get(status, "Error"), now)

    def _cancel_pending(self, now: float) -> list[Action]:
        if not self.is_invite:
            return []
        out: list[Action] = []
        for b in self.branches:
            if b.status == 0:  # b.pending without the property call (every final runs this)
                out += self._cancel(b, now)
        return out

    def _cancel(self, b: BranchState, now: float) -> list[Action]:
        b.cancel_wanted = True
        if b.cancel is None and b.client.got_provisional:
            return self._send_cancel(b, now)
        return []

    def _send_cancel(self, b: BranchState, now: float) -> list[Action]:
        b.cancel = NonInviteClientTransaction(
            parse_datagram(build_cancel(b.client.request)), b.client.dest, self.settings)
        if isinstance(b.client, InviteClientTransaction):
            b.client.mark_cancelled(now)
        return b.cancel.start(now)


def _strip_via(reply: SipMsg) -> bytes:
    """The reply as forwarded upstream: our top Via removed, every other byte as received."""
    return reply.bytes_without_top_via()
