"""Timer settings and the small named-timer set each state machine keeps.

Sans-IO: nobody here reads a clock. Every deadline is an absolute time in seconds on the
caller's clock (``now`` passed in), so tests drive the machines with a fake clock.
"""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class TimerSettings:
    """RFC 3261 timer values plus Kamailio tm's overrides (all in seconds).

    Mapping onto RFC 3261 (Kamailio semantics where Kamailio differs):
      A, E, G   start at ``retr_timer1`` and double, E and G capped at ``retr_timer2`` (UDP only)
      B, F      ``fr_timer`` (RFC: 64*T1), bounded by ``max_inv_lifetime`` / ``max_noninv_lifetime``
      after 1xx ``fr_inv_timer`` for INVITE (restarted on each 1xx if ``restart_fr_on_each_reply``)
      H         64*T1 (wait for the ACK of a negative final)
      I, K      T4 (0 on reliable transports)
      D, J      ``wt_timer`` (RFC: >32 s / 64*T1; 0 on reliable transports)
      L, M      ``wt_timer`` (RFC 6026 Accepted state, kept after a 2xx to absorb retransmissions)
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    fr_timer: float = 30.0
    fr_inv_timer: float = 120.0
    wt_timer: float = 5.0
    retr_timer1: float = 0.5
    retr_timer2: float = 4.0
    max_inv_lifetime: float = 180.0
    max_noninv_lifetime: float = 32.0
    restart_fr_on_each_reply: bool = True

    @property
    def timer_h(self) -> float:
        return 64 * self.t1

    @property
    def cancel_wait(self) -> float:
        """RFC 3261 9.1: a cancelled INVITE branch is given up 64*T1 after the CANCEL."""
        return 64 * self.t1


DEFAULT_TIMERS = TimerSettings()


#: the named one-shot deadlines of one state machine (a handful at most): a plain dict kept on
#: the machine, read and written inline (a wrapper object cost a call per access and an object
#: per machine)
Timers = dict[str, float]


def earliest(timers: Timers) -> float | None:
    """The next deadline of ``timers`` (None when none is armed)."""
    return min(timers.values()) if timers else None


def pop_due(timers: Timers, now: float) -> list[str]:
    """Names whose deadline is <= now, earliest first, removed from ``timers``."""
    if len(timers) == 1:  # the usual case: a machine's one last wait timer
        for name, at in timers.items():
            if at > now:
                return []
            timers.clear()
            return [name]
    due = [(at, name) for name, at in timers.items() if at <= now]
    if len(due) > 1:
        due.sort()
    for _, name in due:
        del timers[name]
    return [name for _, name in due]


class EndsAfterTimer:
    """For a transaction machine (``state``, ``timers``, class attribute ``TERMINATED_STATE``):
    end now, or linger until one last timer fires (D, I, J, K and the Accepted wait)."""

    __slots__ = ()  # the machines use __slots__; keep them free of a __dict__

    TERMINATED_STATE: Any
    state: Any
    timers: Timers

    def on_timer(self, now: float) -> int:
        """Fire the timers due at ``now``, earliest first; the status of the local final one
        of them reported (a client's Timer B/F/fr/give-up), else 0."""
        timers = self.timers
        if len(timers) == 1:  # the usual wake-up: the machine's one last wait timer
            ((name, at),) = timers.items()
            if at > now:
                return 0
            timers.clear()
            return self._fire(name, now)
        local = 0
        for name in pop_due(timers, now):
            if self.state is self.TERMINATED_STATE:
                break
            local = self._fire(name, now) or local
        return local

    def _fire(self, name: str, now: float) -> int:
        raise NotImplementedError

    def _finish(self) -> None:
        self.state = self.TERMINATED_STATE
        self.timers.clear()

    def _linger(self, name: str, delay: float, now: float) -> None:
        """Arm the timer that ends a completed transaction, or end it now when it is 0."""
        if delay <= 0:
            self._finish()
        else:
            self.timers[name] = now + delay
