"""tm's state on one message context (``ctx.mod_state["tm"]``): the callbacks armed with
``t_on_*`` before ``t_relay``, per-transaction overrides (``t_set_fr`` & co.) and, while a tm
callback runs, the transaction and branch it runs for."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from kemi_core.api import MsgContext
    from kemi_core.sip import SipMsg
    from kemi_tm.transaction import TmTransaction

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
