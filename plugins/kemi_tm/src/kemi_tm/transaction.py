"""A tm transaction: the sans-IO proxy transaction with what the script attached to it.

* ``TmTransaction``: ``ProxyTransaction`` plus what the script asked for the transaction
  (callbacks, flags, AVPs, overrides) and what its routes and the branch tests
  (``t_branch_replied`` ...) need to know; the branches' flags and "replied" marks are on the
  branches (``BranchState``). One object per transaction.
* ``TmTable``: the worker's ``TransactionTable``, telling its owner each transaction it frees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from kemi_core.sip import Via, reply_top_via, reply_via_of
from kemi_tm.actions import Recorder
from kemi_tm.context import DEFAULT_PROXY, ProxySettings
from kemi_tm.idents import new_ident_and_tag
from kemi_tm.keys import server_key
from kemi_tm.proxy import ProxyTransaction, not_filed
from kemi_tm.server import ServerState
from kemi_tm.state import Callbacks, Overrides
from kemi_tm.table import TransactionTable
from kemi_tm.timers import DEFAULT_TIMERS, TimerSettings

if TYPE_CHECKING:
    from kemi_core.api import RecvInfo, SocketEdit
    from kemi_core.sip import SipMsg
    from kemi_tm.actions import Dest, ProxySink
    from kemi_tm.keys import ServerKey

_PROCEEDING = ServerState.PROCEEDING
_TRYING = ServerState.TRYING


class TmTransaction(ProxyTransaction):
    """A proxy transaction with the script's state, given when it is made (the fields a plain
    UAS transaction never changes are class attributes: nothing to set per transaction)."""

    __slots__ = ("rcv", "created", "callbacks", "overrides", "flags", "avps", "xavps",
                 "force_rport", "drop_replies", "in_failure", "counted_final", "dns_pending",
                 "socket_edit", "received_via")

    def __init__(self, request: SipMsg, reply_dest: Dest, rcv: RecvInfo, created: float,
                 callbacks: Callbacks, overrides: Overrides, flags: int = 0,
                 avps: dict[str, list[Any]] | None = None,
                 xavps: dict[str, list[dict[str, Any]]] | None = None,
                 force_rport: bool = False, *,
                 settings: TimerSettings = DEFAULT_TIMERS,
                 proxy_settings: ProxySettings = DEFAULT_PROXY,
                 key: ServerKey | None = None, sink: ProxySink | None = None) -> None:
        # One frame sets every field, ServerTransaction's and ProxyTransaction's too: one is
        # made per relayed request, and their two __init__ calls cost more than the fields
        # (test_tm_transaction.py checks this sets what theirs set, field for field).
        # -- ServerTransaction's
        self.request = request
        self.method = method = request.method
        self.is_invite = is_invite = method == "INVITE"
        self.sink = sink if sink is not None else Recorder()
        self.reply_dest = reply_dest
        self.settings = settings
        self.key = key if key is not None else server_key(request)
        self.state = _PROCEEDING if is_invite else _TRYING
        self.timers = {}
        self.last_reply = None
        self.last_status = 0
        self.final_status = 0
        self._interval = settings.retr_timer1
        # -- ProxyTransaction's
        self.proxy_settings = proxy_settings
        ident, to_tag = new_ident_and_tag()
        self.ident = ident
        self.to_tag = to_tag
        self.branches = []
        self.step = 0
        self.canceled = False
        self.deciding = False
        self.got_6xx = False
        self.on_reschedule = not_filed
        self.filed_at = None
        self.refile = False
        # -- its own
        self.rcv = rcv
        self.created = created
        #: the routes armed with t_on_*: the request's own object (``ReqState.callbacks``), so
        #: t_on_* before and after the transaction is made arm the same one
        self.callbacks = callbacks
        self.overrides = overrides
        self.flags = flags
        self.avps = avps if avps is not None else {}
        self.xavps = xavps if xavps is not None else {}
        self.force_rport = force_rport
        #: t_drop_replies was called in the failure route
        self.drop_replies = False
        #: running the failure route now (a NeedsDecision from inside it is not re-entered)
        self.in_failure = False
        #: the final reply sent upstream was counted in the stats
        self.counted_final = False
        #: branches waiting for their destination's name to resolve (relay.py)
        self.dns_pending = 0
        #: the request's edit per socket a branch leaves from (rr's double Record-Route), for
        #: the branches a failure route adds (relay.py)
        self.socket_edit: SocketEdit | None = None
        #: the request's top Via as received, when the saved request's got the Via sent on
        #: (``TmService.open_transaction``); None: the saved request's own
        self.received_via: Via | None = None

    def reply_via(self) -> str | None:
        """The top Via our own replies carry (made when one is sent: most transactions send
        none, the 100 Trying is made from the request being relayed)."""
        rcv = self.rcv
        received = self.received_via
        if received is not None:
            return reply_via_of(received, rcv.src_ip, rcv.src_port, self.force_rport)
        return reply_top_via(self.request, rcv.src_ip, rcv.src_port, self.force_rport)

    @property
    def any_replied(self) -> bool:
        """Some branch got at least one reply (t_any_replied)."""
        return any(b.replied for b in self.branches)


class TmTable(TransactionTable):
    """The worker's table (``on_freed`` hears about every transaction that leaves it)."""

    def __init__(self, on_freed: Callable[[ProxyTransaction], None] | None = None) -> None:
        super().__init__()
        self.on_freed = on_freed

    def transactions(self) -> Iterator[ProxyTransaction]:
        """Every live transaction (RPC listing, tmx's t_*_callid lookups)."""
        return iter(list(self._by_ident.values()))
