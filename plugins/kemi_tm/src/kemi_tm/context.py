"""The response context of a proxy transaction (RFC 3261 16.7): settings, branches, ranking.

``ProxySettings`` are the Kamailio tm parameters that shape it, ``BranchState`` is one branch
(its client transaction and its outcome), ``reply_priority`` ranks finals for the 16.7 step 6
choice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import attrs

from kemi_tm.client import ClientState, InviteClientTransaction, NonInviteClientTransaction
from kemi_tm.keys import client_key

if TYPE_CHECKING:
    from kemi_core.sip import SipMsg
    from kemi_tm.actions import Dest, Sink
    from kemi_tm.timers import Timers, TimerSettings

#: the reason phrase of tm's own 100 to an INVITE: Kamailio 5.6's default, as on its wire
AUTO_INV_100_REASON = "trying -- your call is important to us"

_PREFERRED_4XX = frozenset({401, 407, 415, 420, 484})  # 16.7 step 6: combinable/actionable
_CLASS_PRIO = {2: 0, 6: 1000, 3: 3000, 4: 4000, 5: 5000}


@attrs.frozen
class ProxySettings:
    """Kamailio tm parameters that shape the response context."""

    #: 0: every branch's reply competes for the best; 3: only the last serial step's (Kamailio
    #: 5.6 default). 1 and 2 are not supported.
    failure_reply_mode: int = 3
    #: added to the priority of local replies (408 timeout...): > 0 prefers received replies
    faked_reply_prio: int = 0
    #: 16.7 step 6: a 503 chosen as best is sent upstream as 500
    remap_503_500: bool = True
    auto_inv_100: bool = True
    auto_inv_100_reason: str = AUTO_INV_100_REASON
    #: after a 6xx no new branch may be added (Kamailio's default; True lifts that)
    disable_6xx_block: bool = False

    def __attrs_post_init__(self) -> None:
        if self.failure_reply_mode not in (0, 3):
            raise ValueError(f"failure_reply_mode {self.failure_reply_mode}: only 0 and 3 "
                             "are supported")


DEFAULT_PROXY = ProxySettings()


class BranchFields:
    """What a proxy keeps about one branch beside its client transaction's own state. The
    branch is its client transaction (``InviteBranch``, ``NonInviteBranch``): one object per
    branch, not two."""

    # the fields are slots of the concrete classes (one base with a layout only); mypy would
    # read this empty __slots__ as the only slots a branch has
    if not TYPE_CHECKING:
        __slots__ = ()

    index: int
    step: int  # serial forking step the branch belongs to
    cancel: NonInviteClientTransaction | None  # the CANCEL's client transaction, once sent
    status: int  # final outcome, 0 while pending
    #: the negative final reply received (None: pending, a local outcome, or a 2xx). A 2xx
    #: ends the transaction's choice (a final goes upstream at once): only its status is
    #: read after, so the message is not kept alive with the transaction (wt_timer).
    reply: SipMsg | None
    cancel_wanted: bool  # CANCELed; sent once a 1xx allows it (9.1)
    #: the script's branch flags (setbflag, lookup's contact flags): the onreply, failure and
    #: branch-failure routes of this branch see them
    flags: int
    replied: bool  # got at least one reply (t_branch_replied / t_any_replied)

    def __init__(self, index: int, step: int, request: SipMsg | bytes, dest: Dest,
                 settings: TimerSettings, branch: str, sink: Sink, method: str = "") -> None:
        self.index = index
        self.step = step
        self.cancel = None
        self.status = 0
        self.reply = None
        self.cancel_wanted = False
        self.flags = 0
        self.replied = False
        # the client transaction's fields (ClientTransaction.__init__'s, for a proxy's branch:
        # its bytes, its branch and method given) set here: a frame less per relayed request
        # (test_tm_fsm_proxy.py checks they match)
        if isinstance(request, bytes):
            self._request: SipMsg | None = None
            self.data = request
        else:
            self._request = request
            self.data = b""
            method = request.method
        self.sink = sink
        self.dest = dest
        self.settings = settings
        self.key = (branch, method) if method != "ACK" else client_key(branch, method)
        self.state = ClientState.TERMINATED  # until arm()
        self.timers: Timers = {}
        self.final_status = 0
        self.local_final = 0
        self._interval = settings.retr_timer1
        self._start = 0.0
        self.ack: bytes | None = None
        self.cancelled = False
        self._life_end = 0.0

    @property
    def pending(self) -> bool:
        return self.status == 0

    @property
    def client(self) -> BranchState:
        """The branch's client transaction: the branch itself."""
        return self  # type: ignore[return-value]


_BRANCH_SLOTS = ("index", "step", "cancel", "status", "reply", "cancel_wanted", "flags",
                 "replied")


class InviteBranch(BranchFields, InviteClientTransaction):
    """A branch of an INVITE transaction: ``BranchFields(index, step, request, dest, settings,
    branch, sink)``."""

    __slots__ = _BRANCH_SLOTS


class NonInviteBranch(BranchFields, NonInviteClientTransaction):
    """A branch of a non-INVITE transaction (as ``InviteBranch``)."""

    __slots__ = _BRANCH_SLOTS


BranchState: TypeAlias = InviteBranch | NonInviteBranch


def reply_priority(status: int, local: bool, faked_prio: int = 0) -> int:
    """Lower wins: 2xx, then 6xx, 3xx, 4xx (401/407/415/420/484 first), 5xx; lower code first."""
    cls, xx = divmod(status, 100)
    prio = _CLASS_PRIO.get(cls, 9000) + xx
    if cls == 4 and status not in _PREFERRED_4XX:
        prio += 100
    return prio + (faked_prio if local else 0)
