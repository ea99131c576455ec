"""The response context of a proxy transaction (RFC 3261 16.7): settings, branches, ranking.

``ProxySettings`` are the Kamailio tm parameters that shape it, ``BranchState`` is one branch
and its outcome, ``reply_priority`` ranks finals for the 16.7 step 6 choice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from kemi_tm.client import ClientTransaction, NonInviteClientTransaction

if TYPE_CHECKING:
    from kemi_core.sip import SipMsg

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
    auto_inv_100_reason: str = "Trying"
    #: after a 6xx no new branch may be added (Kamailio's default; True lifts that)
    disable_6xx_block: bool = False

    def __attrs_post_init__(self) -> None:
        if self.failure_reply_mode not in (0, 3):
            raise ValueError(f"failure_reply_mode {self.failure_reply_mode}: only 0 and 3 "
                             "are supported")


DEFAULT_PROXY = ProxySettings()


@attrs.define(slots=True, eq=False)
class BranchState:
    """One forwarded copy of the request and what came back for it."""

    index: int
    step: int  # serial forking step the branch belongs to
    client: ClientTransaction
    cancel: NonInviteClientTransaction | None = None
    status: int = 0  # final outcome, 0 while pending
    reply: SipMsg | None = None  # the final reply (None: pending or local outcome)
    cancel_wanted: bool = False  # CANCELed; sent once a 1xx allows it (9.1)
    #: the script's branch flags (setbflag, lookup's contact flags): the onreply, failure and
    #: branch-failure routes of this branch see them
    flags: int = 0
    replied: bool = False  # got at least one reply (t_branch_replied / t_any_replied)

    @property
    def pending(self) -> bool:
        return self.status == 0


def reply_priority(status: int, local: bool, faked_prio: int = 0) -> int:
    """Lower wins: 2xx, then 6xx, 3xx, 4xx (401/407/415/420/484 first), 5xx; lower code first."""
    cls, xx = divmod(status, 100)
    prio = _CLASS_PRIO.get(cls, 9000) + xx
    if cls == 4 and status not in _PREFERRED_4XX:
        prio += 100
    return prio + (faked_prio if local else 0)
