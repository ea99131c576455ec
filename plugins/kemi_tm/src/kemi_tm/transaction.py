"""A tm transaction: the sans-IO proxy transaction with what the script attached to it.

* ``TxGlue``: what the script asked for the transaction (callbacks, flags, AVPs, branch flags)
  and what the branch tests (``t_branch_replied`` ...) need to know.
* ``TmTransaction``: ``ProxyTransaction`` built with its ``TxGlue``.
* ``TmTable``: the worker's ``TransactionTable``, telling its owner each transaction it frees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

from kemi_tm.proxy import ProxyTransaction
from kemi_tm.state import Callbacks, Overrides
from kemi_tm.table import TransactionTable

if TYPE_CHECKING:
    from kemi_core.api import RecvInfo
    from kemi_core.sip import SipMsg
    from kemi_tm.actions import Dest


@attrs.define(slots=True, eq=False)
class TxGlue:
    """What the script attached to a transaction."""

    rcv: RecvInfo
    created: float
    callbacks: Callbacks = attrs.Factory(Callbacks)
    overrides: Overrides = attrs.Factory(Overrides)
    flags: int = 0
    avps: dict[str, list[Any]] = attrs.Factory(dict)
    xavps: dict[str, list[dict[str, Any]]] = attrs.Factory(dict)
    force_rport: bool = False
    #: branch flags of each branch (setbflag, lookup's contact flags), by branch index:
    #: onreply, failure and branch-failure routes see their branch's
    branch_flags: dict[int, int] = attrs.Factory(dict)
    #: branches that got at least one reply (t_branch_replied / t_any_replied)
    replied: set[int] = attrs.Factory(set)
    #: t_drop_replies was called in the failure route
    drop_replies: bool = False
    #: running the failure route now (a NeedsDecision from inside it is not re-entered)
    in_failure: bool = False
    #: the final reply sent upstream was counted in the stats
    counted_final: bool = False
    #: branches waiting for their destination's name to resolve (relay.py)
    dns_pending: int = 0


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

    def remove(self, tx: ProxyTransaction) -> None:
        present = tx in self
        super().remove(tx)
        if present and self.on_freed is not None:
            self.on_freed(tx)

    def transactions(self) -> Iterator[ProxyTransaction]:
        """Every live transaction (RPC listing, tmx's t_*_callid lookups)."""
        return iter(list(self._by_ident.values()))
