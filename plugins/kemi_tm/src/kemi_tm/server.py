"""Server transactions (RFC 3261 17.2), sans-IO.

INVITE: Proceeding -> Completed -> Confirmed -> Terminated, or Proceeding -> Accepted ->
Terminated after a 2xx (RFC 6026). Non-INVITE: Trying -> Proceeding -> Completed -> Terminated.
``ServerTransaction(request, reply_dest, settings)`` is either, by the request's method: one
class, so the proxy transaction (``proxy.ProxyTransaction``) can *be* its server transaction
(a subclass: one object per transaction, its state read without a hop).

Inputs: ``send_reply(status, data, now)`` (the transaction user's reply, serialized; or
``offer_reply``, which sends only when the state allows it), ``on_request(msg, now)`` (a
retransmitted request or the ACK, as matched by ``keys.server_key``), ``on_timer(now)``. What
goes on the wire goes to the machine's ``sink`` (see ``actions``); ``on_request`` returns
whether the transaction user must see the message (an ACK of a 2xx); ``next_timer()`` is the
next deadline.

* Retransmitted requests are answered with the last reply sent (none yet: absorbed).
* Timer G retransmits a negative final of an INVITE over UDP until the ACK (or Timer H);
  the ACK is absorbed (Confirmed, Timer I).
* In Accepted, INVITE retransmissions are absorbed, more 2xx may be sent (forked 2xx) and an
  ACK is passed up: it answers a 2xx, so it is end to end and must be routed.
* Completed/Accepted linger ``wt_timer`` (Timer J, L); reliable transports do not linger in
  Completed/Confirmed (J, I = 0).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from kemi_tm.actions import Dest, Recorder, Sink, TransactionStateError
from kemi_tm.keys import ServerKey, server_key
from kemi_tm.timers import DEFAULT_TIMERS, EndsAfterTimer, Timers, TimerSettings, earliest

if TYPE_CHECKING:
    from kemi_core.sip import SipMsg


class ServerState(enum.Enum):
    TRYING = "trying"  # non-INVITE only
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"  # INVITE only
    ACCEPTED = "accepted"  # INVITE after a 2xx (RFC 6026)
    TERMINATED = "terminated"


_PROCEEDING = ServerState.PROCEEDING
_TRYING = ServerState.TRYING
_ACCEPTED = ServerState.ACCEPTED
_COMPLETED = ServerState.COMPLETED


class ServerTransaction(EndsAfterTimer):
    """An INVITE or a non-INVITE server transaction (``is_invite``, from the request)."""

    TERMINATED_STATE = ServerState.TERMINATED

    __slots__ = ("request", "method", "is_invite", "reply_dest", "settings", "key", "state",
                 "timers", "last_reply", "last_status", "final_status", "sink", "_interval")

    def __init__(self, request: SipMsg, reply_dest: Dest,
                 settings: TimerSettings = DEFAULT_TIMERS, key: ServerKey | None = None,
                 sink: Sink | None = None) -> None:
        self.request = request
        self.method = method = request.method
        self.is_invite = is_invite = method == "INVITE"
        #: where the replies go; none given: a Recorder
        self.sink: Sink = sink if sink is not None else Recorder()
        self.reply_dest = reply_dest
        self.settings = settings
        self.key: ServerKey = key if key is not None else server_key(request)
        self.state = _PROCEEDING if is_invite else _TRYING
        self.timers: Timers = {}
        #: bytes of the last reply sent (what a retransmitted request gets again)
        self.last_reply: bytes | None = None
        self.last_status = 0
        #: first final status sent (0: none yet)
        self.final_status = 0
        self._interval = settings.retr_timer1

    @property
    def terminated(self) -> bool:
        return self.state is ServerState.TERMINATED

    def next_timer(self) -> float | None:
        return earliest(self.timers)

    def can_reply(self, status: int) -> bool:
        state = self.state
        if self.is_invite:
            return state is _PROCEEDING or (state is _ACCEPTED and 200 <= status < 300)
        return state is _TRYING or state is _PROCEEDING

    def send_reply(self, status: int, data: bytes, now: float, origin: str = "") -> None:
        """Send the transaction user's reply ``data`` (TransactionStateError when the state
        forbids it); ``origin``: the sink's (statistics)."""
        if not self.offer_reply(status, data, now, origin):
            raise self._refuse(status)

    def offer_reply(self, status: int, data: bytes, now: float, origin: str = "") -> bool:
        """``send_reply`` when the state allows it, else nothing sent (False): the check and
        the send in one call, as every reply the proxy relays needs both."""
        state = self.state
        if self.is_invite:
            if state is not _PROCEEDING and (state is not _ACCEPTED or not 200 <= status < 300):
                return False
        elif state is not _TRYING and state is not _PROCEEDING:
            return False
        self.last_reply = data
        self.last_status = status
        if status >= 200 and not self.final_status:
            self.final_status = status
        self.sink.send(self.reply_dest, data, origin)
        if status < 200:
            if not self.is_invite:
                self.state = _PROCEEDING
        elif not self.is_invite:
            self.state = _COMPLETED
            self._linger("J", 0.0 if self.reply_dest.reliable else self.settings.wt_timer, now)
        elif status < 300:
            self.state = _ACCEPTED
            self.timers["L"] = now + self.settings.wt_timer
        else:
            self.state = _COMPLETED
            if not self.reply_dest.reliable:
                self._interval = self.settings.retr_timer1
                self.timers["G"] = now + self._interval
            self.timers["H"] = now + self.settings.timer_h
        return True

    def on_request(self, msg: SipMsg, now: float) -> bool:
        state = self.state
        if not self.is_invite:
            if state is _PROCEEDING or state is _COMPLETED:
                self._resend()
            return False  # Trying: nothing to answer with yet
        if msg.method == "ACK":
            if state is _COMPLETED:
                self.state = ServerState.CONFIRMED
                self.timers.pop("G", None)
                self.timers.pop("H", None)
                self._linger("I", 0.0 if self.reply_dest.reliable else self.settings.t4, now)
                return False
            return state is _ACCEPTED
        if state is _PROCEEDING or state is _COMPLETED:
            self._resend()
        return False  # Confirmed / Accepted absorb INVITE retransmissions

    def _fire(self, name: str, now: float) -> int:
        if name == "G" and self.state is _COMPLETED:
            self._interval = min(2 * self._interval, self.settings.retr_timer2)
            self.timers["G"] = now + self._interval
            self._resend()
        elif name in ("H", "I", "L", "J"):  # J: non-INVITE; the others: INVITE
            self._finish()
        return 0

    def _resend(self) -> None:
        if self.last_reply is not None:
            self.sink.send(self.reply_dest, self.last_reply)

    def _refuse(self, status: int) -> TransactionStateError:
        return TransactionStateError(
            f"cannot send a {status} reply in state {self.state.value} (already sent "
            f"{self.final_status or 'no final'})")
