"""tm's state on one message context (``ctx.mod_state["tm"]``): the callbacks armed with
``t_on_*`` before ``t_relay``, per-transaction overrides (``t_set_fr`` & co.) and, while a tm
callback runs, the transaction and branch it runs for."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kemi_core.api import MsgContext
    from kemi_core.sip import SipMsg
    from kemi_tm.transaction import TmTransaction

MODULE = "tm"


class Callbacks:
    """Route names armed with t_on_branch / t_on_reply / t_on_failure / t_on_branch_failure.

    A plain class whose defaults are class attributes: one is made for every request and
    every transaction, and most never arm anything, so making one sets nothing."""

    branch: str | None = None
    reply: str | None = None
    failure: str | None = None
    branch_failure: str | None = None

    def __repr__(self) -> str:
        return (f"Callbacks(branch={self.branch!r}, reply={self.reply!r}, "
                f"failure={self.failure!r}, branch_failure={self.branch_failure!r})")

    def merge_into(self, other: Callbacks) -> None:
        """Copy what is armed here onto ``other`` (t_relay copies the request's to the tx)."""
        for name, value in self.__dict__.items():
            if value is not None:
                setattr(other, name, value)


class Overrides:
    """Per-transaction settings from the script (milliseconds; None = modparam default).
    Defaults are class attributes, as for ``Callbacks``: making one sets nothing."""

    fr_inv: int | None = None
    fr: int | None = None
    max_inv_lifetime: int | None = None
    max_noninv_lifetime: int | None = None
    retr_t1: int | None = None
    retr_t2: int | None = None
    auto_inv_100: bool | None = None
    disable_6xx: bool | None = None
    disable_failover: bool = False

    def __repr__(self) -> str:
        return f"Overrides({self.__dict__!r})"

    @property
    def any_set(self) -> bool:
        """Whether the script changed anything (else the modparam settings apply as they are)."""
        return bool(self.__dict__)


#: the overrides of a transaction whose request set none (never changed: a transaction that
#: gets one later is given its own, see exports.t_set_disable_failover)
NO_OVERRIDES = Overrides()


class ReqState:
    """tm's state on one message context. The defaults are class attributes, as for
    ``Callbacks``: one is made for every request, and only a tm route sets the reply fields."""

    #: the script's per-transaction settings, None until it sets one (``overrides``)
    script_overrides: Overrides | None = None
    #: the transaction of this message (t_newtran/t_relay, or the one a callback runs for)
    tx: TmTransaction | None = None
    #: branch index a branch/onreply/branch-failure route runs for (-1: none)
    branch = -1
    #: failure/branch-failure route: the reply (None when local) and its status
    reply: SipMsg | None = None
    reply_code = 0
    reply_reason = ""

    def __init__(self) -> None:
        self.callbacks = Callbacks()

    @property
    def overrides(self) -> Overrides:
        """The script's per-transaction settings, made on first use (most requests set none)."""
        ov = self.script_overrides
        if ov is None:
            ov = self.script_overrides = Overrides()
        return ov


def req_state(ctx: MsgContext) -> ReqState:
    state = ctx.mod_state.get(MODULE)
    if state is None:
        state = ctx.mod_state[MODULE] = ReqState()
    return state  # type: ignore[no-any-return]
