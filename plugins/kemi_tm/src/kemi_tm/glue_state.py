"""What the KEMI glue keeps beside the sans-IO machines.

* ``ReqState`` lives on a message context (``ctx.mod_state["tm"]``): callbacks armed with
  ``t_on_*`` before ``t_relay``, per-transaction overrides (``t_set_fr`` & co.), and, while a
  tm callback runs, the transaction and branch it runs for.
* ``TxGlue`` lives on a transaction: what the script asked for it (callbacks, flags, AVPs) and
  what the branch tests (``t_branch_replied`` ...) need to know.
* ``TmTransaction`` is ``ProxyTransaction`` carrying its ``TxGlue``.
* ``TmTable`` is the worker's ``TransactionTable``, counting every transaction it frees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

from kemi_tm.proxy import ProxyTransaction
from kemi_tm.table import TransactionTable

if TYPE_CHECKING:
    from kemi_core.api import MsgContext, RecvInfo
    from kemi_core.sip import SipMsg

MODULE = "tm"


@attrs.define(slots=True)
class Callbacks:
    """Route names armed with t_on_branch / t_on_reply / t_on_failure / t_on_branch_failure."""

    branch: str | None = None
    reply: str | None = None
    failure: str | None = None
    branch_failure: str | None = None

    def merge_into(self, other: Callbacks) -> None:
        """Copy what is armed here onto ``other`` (t_relay copies the request's to the tx)."""
        for name in ("branch", "reply", "failure", "branch_failure"):
            value = getattr(self, name)
            if value is not None:
                setattr(other, name, value)


@attrs.define(slots=True)
class Overrides:
    """Per-transaction settings from the script (milliseconds; None = modparam default)."""

    fr_inv: int | None = None
    fr: int | None = None
    max_inv_lifetime: int | None = None
    max_noninv_lifetime: int | None = None
    retr_t1: int | None = None
    retr_t2: int | None = None
    auto_inv_100: bool | None = None
    disable_6xx: bool | None = None
    disable_failover: bool = False


@attrs.define(slots=True, eq=False)
class ReqState:
    """tm's state on one message context."""

    callbacks: Callbacks = attrs.Factory(Callbacks)
    overrides: Overrides = attrs.Factory(Overrides)
    #: the transaction of this message (t_newtran/t_relay, or the one a callback runs for)
    tx: TmTransaction | None = None
    #: branch index a branch/onreply/branch-failure route runs for (-1: none)
    branch: int = -1
    #: failure/branch-failure route: the reply (None when local) and its status
    reply: SipMsg | None = None
    reply_code: int = 0
    reply_reason: str = ""


def req_state(ctx: MsgContext) -> ReqState:
    state = ctx.mod_state.get(MODULE)
    if state is None:
        state = ctx.mod_state[MODULE] = ReqState()
    return state  # type: ignore[no-any-return]


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


class TmTransaction(ProxyTransaction):
    """A proxy transaction with the script's state attached."""

    __slots__ = ("glue",)
    glue: TxGlue


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
