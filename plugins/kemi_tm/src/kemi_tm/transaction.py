"""A tm transaction: the sans-IO proxy transaction with what the script attached to it.

* ``TxGlue``: what the script asked for the transaction (callbacks, flags, AVPs, branch flags)
  and what the branch tests (``t_branch_replied`` ...) need to know.
* ``TmTransaction``: ``ProxyTransaction`` built with its ``TxGlue``.
* ``TmTable``: the worker's ``TransactionTable``, telling its owner each transaction it frees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from kemi_tm.proxy import ProxyTransaction
from kemi_tm.state import Callbacks, Overrides
from kemi_tm.table import TransactionTable

if TYPE_CHECKING:
    from kemi_core.api import RecvInfo
    from kemi_core.sip import SipMsg
    from kemi_tm.actions import Dest


class TxGlue:
    """What the script attached to a transaction (a plain class with slots: one is made per
    transaction)."""

    __slots__ = ("rcv", "created", "callbacks", "overrides", "flags", "avps", "xavps",
                 "force_rport", "branch_flags", "replied", "drop_replies", "in_failure",
                 "counted_final", "dns_pending")

    def __init__(self, rcv: RecvInfo, created: float, callbacks: Callbacks | None = None,
                 overrides: Overrides | None = None, flags: int = 0,
                 avps: dict[str, list[Any]] | None = None,
                 xavps: dict[str, list[dict[str, Any]]] | None = None,
                 force_rport: bool = False) -> None:
        self.rcv = rcv
        self.created = created
        self.callbacks = callbacks if callbacks is not None else Callbacks()
        self.overrides = overrides if overrides is not None else Overrides()
        self.flags = flags
        self.avps = avps if avps is not None else {}
        self.xavps = xavps if xavps is not None else {}
        self.force_rport = force_rport
        #: branch flags of each branch (setbflag, lookup's contact flags), by branch index:
        #: onreply, failure and branch-failure routes see their branch's
        self.branch_flags: dict[int, int] = {}
        #: branches that got at least one reply (t_branch_replied / t_any_replied)
        self.replied: set[int] = set()
        #: t_drop_replies was called in the failure route
        self.drop_replies = False
        #: running the failure route now (a NeedsDecision from inside it is not re-entered)
        self.in_failure = False
        #: the final reply sent upstream was counted in the stats
        self.counted_final = False
        #: branches waiting for their destination's name to resolve (relay.py)
        self.dns_pending = 0


class TmTransaction(ProxyTransaction):
    """A proxy transaction with the script's state (``glue``), given when it is made."""

    __slots__ = ("glue",)

    def __init__(self, request: SipMsg, reply_dest: Dest, glue: TxGlue, **kwargs: Any) -> None:
        super().__init__(request, reply_dest, **kwargs)
        self.glue = glue


class TmTable(TransactionTable):
    """The worker's table; ``on_freed`` hears about every transaction that leaves it."""

    def __init__(self, on_freed: Callable[[ProxyTransaction], None] | None = None) -> None:
        super().__init__()
        self.on_freed = on_freed

    def remove(self, tx: ProxyTransaction) -> bool:
        removed = super().remove(tx)
        if removed and self.on_freed is not None:
            self.on_freed(tx)
        return removed

    def transactions(self) -> Iterator[ProxyTransaction]:
        """Every live transaction (RPC listing, tmx's t_*_callid lookups)."""
        return iter(list(self._by_ident.values()))
